"""A `torch.compile` backend of our own: it prints the FX graph Dynamo captured and times it, node by node.

    python -m ch14.custom_backend [--size tiny|small] [--json OUT]

A backend is a function `(gm: torch.fx.GraphModule, example_inputs) -> callable`: Dynamo hands it each
graph it captured, and calls whatever it returns in place of that graph. Inductor is one such function;
`aot_eager` another. (XLA's backend, `openxla`, is one too, but torch_xla is not maintained for NVIDIA
GPUs: what it shows, a graph handed to a compiler, is shown here with the interface itself.)

`inspecting_backend` keeps each graph's readable code and a count of its operators, and returns a wrapper
that times every call of the graph; once per graph it also runs `NodeTimer`, an `fx.Interpreter` that
executes the graph node by node with a synchronize after each, to show where a graph's time goes (the
per-node times include launch and sync costs: they rank nodes, they do not add up to the fused time).
The graph itself is run unchanged (`gm.forward`): the outputs must equal eager's.

Bound: none of its own: the graph runs as eager PyTorch would, plus the wrapper's timing.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import torch
import torch.fx


class NodeTimer(torch.fx.Interpreter):
    """Runs a graph one node at a time and records each call_* node's wall time (synchronized)."""

    def __init__(self, gm):
        super().__init__(gm)
        self.times: dict[str, float] = {}

    def run_node(self, n):
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        sync()
        t0 = time.perf_counter()
        out = super().run_node(n)
        sync()
        if n.op.startswith("call"):
            self.times[f"{n.name}: {n.target if isinstance(n.target, str) else getattr(n.target, '__name__', n.target)}"] = \
                (time.perf_counter() - t0) * 1e3
        return out


class InspectingBackend:
    """The backend: records graphs, node timings and per-call times; runs each graph as captured."""

    def __init__(self, verbose: bool = True):
        self.graphs: list[dict] = []
        self.verbose = verbose

    def __call__(self, gm: torch.fx.GraphModule, example_inputs):
        ops = collections.Counter(str(getattr(n.target, "__name__", n.target)) for n in gm.graph.nodes
                                  if n.op.startswith("call"))
        record = {"index": len(self.graphs), "nodes": len(gm.graph.nodes), "ops": dict(ops.most_common()),
                  "code": gm.print_readable(print_output=False), "call_ms": [], "slowest_nodes": None}
        self.graphs.append(record)
        if self.verbose:
            print(f"--- graph {record['index']}: {record['nodes']} nodes; top ops {ops.most_common(6)}")
            print("\n".join(record["code"].splitlines()[:40]))

        def run(*args):
            if record["slowest_nodes"] is None:  # once: where the time goes, node by node
                timer = NodeTimer(gm)
                timer.run(*args)
                record["slowest_nodes"] = sorted(timer.times.items(), key=lambda kv: -kv[1])[:10]
            t0 = time.perf_counter()
            out = gm.forward(*args)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            record["call_ms"].append((time.perf_counter() - t0) * 1e3)
            return out

        return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "small"), default="small")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    from ch13.train_common import BATCH, make_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = make_model(args.size, device).eval()
    b, t = BATCH[args.size]
    tokens = torch.randint(0, model.cfg.vocab, (b, t), device=device)
    backend = InspectingBackend(verbose=not args.quiet)
    compiled = torch.compile(model, backend=backend)
    with torch.no_grad():
        ref = model(tokens)
        outs = [compiled(tokens) for _ in range(3)]
    err = max(float((o.float() - ref.float()).norm() / ref.float().norm()) for o in outs)
    for g in backend.graphs:
        print(f"graph {g['index']}: {g['nodes']} nodes, calls {['%.2f' % ms for ms in g['call_ms']]} ms; slowest nodes:")
        for name, ms in g["slowest_nodes"] or []:
            print(f"    {ms:8.3f} ms  {name}")
    print(f"outputs vs eager: max relative L2 error {err:.1e}")
    if args.json:
        from harness.device import provenance

        args.json.parent.mkdir(parents=True, exist_ok=True)
        graphs = [{k: v for k, v in g.items() if k != "code"} | {"code_lines": len(g["code"].splitlines())}
                  for g in backend.graphs]
        args.json.write_text(json.dumps({"provenance": provenance(device, size=args.size), "rel_err_vs_eager": err,
                                         "graphs": graphs}, indent=1))
    return 0 if err == 0.0 else 1


if __name__ == "__main__":
    sys.exit(main())

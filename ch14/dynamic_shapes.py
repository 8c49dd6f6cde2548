"""Dynamic shapes and recompilations: one compile per new sequence length, or one for all of them.

    python -m ch14.dynamic_shapes [--size tiny|small] [--lengths 12] [--backend inductor] [--json OUT]

A compiled function is guarded on its inputs' shapes. Called with a sequence length it has not seen,
`torch.compile(dynamic=False)` compiles again: one graph per length, until `recompile_limit` (8) is hit and
the function falls back to eager for good. The default (`dynamic=None`, "automatic dynamic") compiles the
first length statically, and on the first change recompiles once with that dimension symbolic. Marking the
dimension dynamic up front (`torch._dynamo.mark_dynamic(x, 1)`) or `dynamic=True` compiles once.

The function is the decoder's forward at `ch13.train_common`'s `small` widths with 2 blocks (so that a
dozen compiles fit in a minute; `tiny` on a CPU) over a batch of 4 sequences whose length changes every
call (`--lengths` distinct lengths, each a multiple of 16).
Counted: compiles (a counting wrapper around the backend: every graph handed to it), and the total time of
the first pass over all lengths (compiles included) and of a second pass (compiled code only, or eager
after a fallback). Every output is compared with eager's. TORCH_LOGS=recompiles prints each recompile's
reason (the guard that failed) when set in the environment.

Bound: per call ~2 x 63 M x tokens FLOPs (2 blocks + embedding and head; 4 x 512 tokens: 0.26 TFLOP,
~0.4 ms); the recompiles cost seconds each, so a static compile over N lengths pays N compiles before it
runs anything faster.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

MODES = ("eager", "static", "automatic", "mark_dynamic")


def counting_backend(name: str, counter: list[int]):
    import torch._dynamo

    inner = torch._dynamo.lookup_backend(name)

    def backend(gm, example_inputs):
        counter[0] += 1
        return inner(gm, example_inputs)

    return backend


def run_mode(mode: str, model, seqs: list[torch.Tensor], backend: str) -> dict:
    import torch._dynamo

    torch._dynamo.reset()
    compiles = [0]
    if mode == "eager":
        fn = model
    else:
        dynamic = {"static": False, "automatic": None, "mark_dynamic": None}[mode]
        fn = torch.compile(model, backend=counting_backend(backend, compiles), dynamic=dynamic)
    sync = torch.cuda.synchronize if seqs[0].is_cuda else (lambda: None)
    outs, passes = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        for tokens in seqs:
            if mode == "mark_dynamic":
                torch._dynamo.mark_dynamic(tokens, 1)
            outs.append(fn(tokens))
        sync()
        passes.append(time.perf_counter() - t0)
    return {"mode": mode, "compiles": compiles[0], "first_pass_s": passes[0], "second_pass_s": passes[1],
            "outputs": outs[len(seqs):]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("tiny", "small"), default="small")
    parser.add_argument("--lengths", type=int, default=12)
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.lengths < 2:
        parser.error("--lengths must be at least 2")
    import dataclasses

    from ch13.train_common import BATCH, CONFIGS, make_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = dataclasses.replace(CONFIGS[args.size], n_layers=2)
    model = make_model(args.size, device, cfg=cfg).eval()
    longest = BATCH[args.size][1]
    step = max(16, longest // args.lengths // 16 * 16)
    lengths = [longest - i * step for i in range(args.lengths) if longest - i * step >= 16]
    g = torch.Generator(device=device).manual_seed(0)
    seqs = [torch.randint(0, model.cfg.vocab, (4, t), device=device, generator=g) for t in lengths]
    rows, ok = [], True
    tol = 3e-2 if device.type == "cuda" else 1e-4
    with torch.no_grad():
        for mode in MODES:
            r = run_mode(mode, model, seqs, args.backend)
            outs = r.pop("outputs")
            if mode == "eager":
                ref = outs
            err = max(float((o.float() - e.float()).norm() / e.float().norm()) for o, e in zip(outs, ref, strict=True))
            r.update(max_rel_err_vs_eager=err, verified=err <= tol)
            ok = ok and r["verified"]
            rows.append(r)
            print(f"{mode:>13}: {r['compiles']:2d} compile(s) for {len(seqs)} lengths, first pass "
                  f"{r['first_pass_s']:.2f} s, second pass {1e3 * r['second_pass_s']:.1f} ms, verified {r['verified']}")
    if args.json:
        from harness.device import provenance

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"provenance": provenance(device, size=args.size, backend=args.backend),
                                         "lengths": lengths, "rows": rows}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

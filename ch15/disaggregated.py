"""Disaggregated prefill and decode, for real: a router process, a prefill worker and a decode worker (each its own
process and CUDA context, each with the model), the KV pages of every request moved from one to the other through
CUDA IPC (`ch15/kv_handoff.py`), against the same engine colocated (prefill chunks and decodes interleaved in one
process, one worker). Both are driven by one seeded load (long prompts and long outputs) and measured alike:
TTFT, TPOT, end-to-end latency, throughput, goodput under an SLO, and the KV transfer per request.

    python -m ch15.disaggregated --size full --json disagg.json --plot disagg.png
    python -m ch15.disaggregated --size tiny --device cpu --modes disaggregated --rates inf

Why disaggregate: a prefill chunk in the same step as the running decodes makes those decodes wait (TPOT jitter),
and a burst of long prompts makes every decode wait; separate workers let prefill run at large token budgets and
decode at large batches, each on its own GPUs, and the decode's TPOT no longer sees prefill. What it costs: a copy
of the weights per worker, the KV transfer (bytes in `kv_handoff`'s docstring), and a hop of queueing.
On ONE GPU the two workers time-share the same SMs and HBM (CUDA time-slices contexts of different processes;
without MPS), so prefill still interrupts decode, only now at the driver's granularity rather than the
scheduler's; weights are held twice; the comparison shows the cost of the machinery, not the benefit of
separate hardware. `--devices cuda:0,cuda:1` puts each worker on its own GPU (the multi-GPU run).

Bound: each worker's step is the engine's (inference/scheduler.py: max of FLOPs over peak and weight + KV bytes
over HBM bandwidth); on one GPU the two workers' steps add up, since they share the chip; the transfer adds
about 4 x KV bytes / HBM bandwidth per request (kv_handoff.py).

TTFT is stamped by the prefill worker (it produces the first token); TPOT includes the transfer and the wait for
a decode slot. Timestamps come from CLOCK_MONOTONIC (`time.monotonic`), one clock for every process of the host.
Greedy decoding only (sampling would need the generator's state handed over too).

Processes: spawn context, daemon children; every child exits on its own when its parent is gone (PR_SET_PDEATHSIG
on Linux and a parent check every loop) or past its deadline; the router kills what is left on any exit,
Ctrl-C included.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from ch15.disagg_workers import PAGE_SIZE, PREFILL_KV_SHARE, worker
from inference.loadgen import Workload, poisson_requests
from inference.metrics import per_request, summarize
from inference.scheduler import Request

SIZES = {
    "tiny": dict(config="tiny", requests=12, prompt_mean=48, output_mean=24, max_prompt=128, max_output=64,
                 kv_tokens=8192, max_batch=8, token_budget=128, rates="20,inf"),
    "small": dict(config="small", requests=32, prompt_mean=512, output_mean=128, max_prompt=1024, max_output=256,
                  kv_tokens=65536, max_batch=16, token_budget=1024, rates="4,inf"),
    "full": dict(config="1b", requests=32, prompt_mean=1536, output_mean=256, max_prompt=3072, max_output=512,
                 kv_tokens=131072, max_batch=32, token_budget=2048, rates="4,inf"),
}
SLO = {"ttft_s": 2.0, "tpot_s": 0.1}


# ----------------------------------------------------------------------------------------------- router
class Cluster:
    """The worker processes of one mode, started together and always stopped together."""

    def __init__(self, mode: str, spec: dict, devices: list[str], startup_s: float, deadline_s: float):
        ctx = mp.get_context("spawn")
        self.inbox, self.handoff, self.release, self.results = (ctx.Queue() for _ in range(4))
        roles = ["colocated"] if mode == "colocated" else ["prefill", "decode"]
        deadline = time.monotonic() + startup_s + deadline_s
        self.procs = []
        for i, role in enumerate(roles):
            s = dict(spec, device=devices[i % len(devices)])
            p = ctx.Process(target=worker, name=f"ch15-{role}", daemon=True,
                            args=(role, s, self.inbox, self.handoff, self.release, self.results, os.getpid(), deadline))
            p.start()
            self.procs.append(p)
        self.pids = {}
        t_end = time.monotonic() + startup_s
        try:
            while len(self.pids) < len(roles):
                msg = self._poll(0.05)
                if msg is None and time.monotonic() > t_end:
                    raise TimeoutError(f"workers not ready after {startup_s:.0f} s")
                if msg and msg[0] == "ready":
                    self.pids[msg[1]] = msg[2]
        except BaseException:
            self.close(graceful=False)
            raise

    def _poll(self, timeout: float):
        """The next message from the workers, or None after timeout; a worker's failure is raised here."""
        try:
            msg = self.results.get(timeout=timeout)
        except queue.Empty:
            dead = [p for p in self.procs if not p.is_alive()]
            if dead:
                raise RuntimeError(f"worker {dead[0].name} exited with code {dead[0].exitcode}") from None
            return None
        if msg[0] == "error":
            raise RuntimeError(f"{msg[1]} worker failed:\n{msg[2]}")
        return msg

    def serve(self, reqs: list[Request], deadline_s: float) -> tuple[float, dict]:
        """Send each request at its arrival time; collect the finished ones. Returns (makespan, rid -> result)."""
        pending = sorted(reqs, key=lambda r: r.arrival)
        ids = {r.rid for r in reqs}
        t0 = time.monotonic()
        done, i = {}, 0
        while len(done) < len(reqs):
            now = time.monotonic() - t0
            if now > deadline_s:
                break
            while i < len(pending) and pending[i].arrival <= now:
                r = pending[i]
                self.inbox.put({"rid": r.rid, "prompt": r.prompt, "max_new_tokens": r.max_new_tokens,
                                "arrival": t0 + r.arrival})
                i += 1
            wait = min(0.05, pending[i].arrival - now) if i < len(pending) else 0.05
            msg = self._poll(max(wait, 0.001))
            if msg is not None and msg[1]["rid"] in ids:  # not a late one from a point cut short before
                done[msg[1]["rid"]] = msg[1]
        return time.monotonic() - t0, {rid: m | {"t0": t0} for rid, m in done.items()}

    def close(self, graceful: bool) -> None:
        """Graceful: the workers finish what they hold and exit (10 s at most); else they are killed at once."""
        if graceful:
            self.inbox.put(None)
            t_end = time.monotonic() + 10
            for p in self.procs:
                p.join(max(0.0, t_end - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.kill()
                p.join(5)


def run_mode(mode: str, spec: dict, devices: list[str], workloads: list[Workload], vocab: int,
             deadline_s: float, on_ready=None, on_point=None) -> tuple[list[dict], dict]:
    """Each workload in turn on one set of workers; returns ([point per workload], {rid: output tokens})."""
    cluster = Cluster(mode, spec, devices, startup_s=300.0, deadline_s=deadline_s * len(workloads) + 60)
    finished = False
    try:
        if on_ready:
            on_ready(cluster)
        points, outputs = [], {}
        for j, w in enumerate(workloads):
            reqs = poisson_requests(w, vocab)
            for r in reqs:
                r.rid += 1_000_000 * j  # unique across the points one set of workers serves
            makespan, done = cluster.serve(reqs, deadline_s)
            for r in reqs:
                m = done.get(r.rid)
                if m:
                    r.output, r.preemptions = m["output"], m["preemptions"]
                    r.first_token_time, r.finish_time = m["first_token_time"] - m["t0"], m["finish_time"] - m["t0"]
            point = {"rate": w.as_dict()["rate"], "workload": w.as_dict(), **summarize(reqs, makespan, **_slo()),
                     "per_request": per_request(reqs)}  # TTFT / TPOT / e2e of each: the distributions
            if mode == "disaggregated":
                point["kv_transfer"] = _transfer_stats(list(done.values()))
            points.append(point)
            outputs.update({r.rid: r.output for r in reqs})
            if on_point:
                on_point(outputs)
            _print(mode, point)
        finished = True
        return points, outputs
    finally:
        cluster.close(graceful=finished)


def _slo() -> dict:
    return {"slo_ttft": SLO["ttft_s"], "slo_tpot": SLO["tpot_s"]}


def _transfer_stats(done: list[dict]) -> dict:
    import numpy as np
    secs = np.array([m["transfer_s"] for m in done]) if done else np.zeros(0)
    nbytes = np.array([m["transfer_bytes"] for m in done]) if done else np.zeros(0)
    wait = np.array([m["handoff_wait_s"] for m in done]) if done else np.zeros(0)
    pct = lambda a, q: float(np.percentile(a, q)) if a.size else None  # noqa: E731
    checked = [m["kv_equal"] for m in done if m["kv_equal"] is not None]
    return {"requests": len(done), "bytes_total": int(nbytes.sum()), "bytes_p50": pct(nbytes, 50),
            "transfer_s_p50": pct(secs, 50), "transfer_s_p99": pct(secs, 99),
            "gbps_mean": float(nbytes.sum() / secs.sum() / 1e9) if secs.sum() > 0 else None,
            "handoff_wait_s_p50": pct(wait, 50), "handoff_wait_s_p99": pct(wait, 99),
            "kv_verified": f"{sum(checked)}/{len(checked)}" if checked else None,
            "per_request": [{k: m[k] for k in ("rid", "transfer_s", "transfer_bytes", "handoff_wait_s")} for m in done]}


def _print(mode: str, p: dict) -> None:
    ms = lambda x: "-" if x is None else f"{x * 1e3:.0f} ms"  # noqa: E731
    line = (f"{mode:>14} rate {p['rate']}/s: {p['output_tokens_per_s'] or 0:8.1f} out tok/s, TTFT p50 "
            f"{ms(p['ttft_s']['p50'])} p99 {ms(p['ttft_s']['p99'])}, TPOT p50 {ms(p['tpot_s']['p50'])} p99 "
            f"{ms(p['tpot_s']['p99'])}, goodput {p['goodput_requests_per_s'] or 0:.2f} req/s, "
            f"finished {p['finished']}/{p['requests']}")
    if "kv_transfer" in p:
        t = p["kv_transfer"]
        line += (f"; KV transfer p50 {ms(t['transfer_s_p50'])} ({(t['bytes_p50'] or 0) / 1e6:.1f} MB), "
                 f"{t['gbps_mean'] or 0:.1f} GB/s, verified {t['kv_verified']}")
    print(line, flush=True)


# ----------------------------------------------------------------------------------------------- CLI
def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for mode, points in report["series"].items():
        x = [str(p["rate"]) for p in points]
        for ax, key in zip(axes[:2], ("ttft_s", "tpot_s"), strict=True):
            line, = ax.plot(x, [p[key]["p50"] for p in points], "o-", label=f"{mode} p50")
            ax.plot(x, [p[key]["p99"] for p in points], "s--", color=line.get_color(), label=f"{mode} p99")
        axes[2].plot(x, [p["output_tokens_per_s"] or 0 for p in points], "o-", label=mode)
        axes[3].plot(x, [p["goodput_requests_per_s"] or 0 for p in points], "o-", label=mode)
    names = ("TTFT (s)", "TPOT (s)", "output tokens/s", "goodput (requests/s within the SLO)")
    for ax, name in zip(axes, names, strict=True):
        ax.set_xlabel("arrival rate (requests/s)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    fig.suptitle(f"colocated vs disaggregated prefill/decode: {report['config']} on {report['devices']} "
                 f"(SLO: TTFT <= {SLO['ttft_s']} s, TPOT <= {SLO['tpot_s']} s)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _goal() -> dict | None:
    from harness.targets import load_targets
    spec = load_targets(Path(__file__).parent).get("disaggregated", {}).get("gbps")
    return spec


def _run_modes(args, modes, spec, devices, workloads, vocab, series, outputs) -> None:
    for mode in modes:
        def ready(cluster, mode=mode):
            print(f"workers ({mode}): " + " ".join(f"{r}={pid}" for r, pid in cluster.pids.items()), flush=True)

        def dump(done, mode=mode):
            if args.outputs:
                args.outputs.parent.mkdir(parents=True, exist_ok=True)
                args.outputs.write_text(json.dumps(outputs | {mode: done}))
        series[mode], outputs[mode] = run_mode(mode, spec, devices, workloads, vocab, args.deadline, ready, dump)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="full", choices=list(SIZES))
    ap.add_argument("--device", help="default: cuda when a GPU is visible, else cpu")
    ap.add_argument("--devices", help="comma-separated, one per worker in turn (default: on cuda, every visible GPU "
                    "in turn: prefill on cuda:0, decode on cuda:1 when there are two)")
    ap.add_argument("--modes", default="colocated,disaggregated")
    ap.add_argument("--rates", help="requests/s, comma-separated ('inf': all at t=0); default: the size's")
    ap.add_argument("--requests", type=int, help="default: the size's")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads per worker")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds per point before it is cut short")
    ap.add_argument("--verify-kv", action="store_true", help="compare every transferred page bit for bit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--outputs", type=Path, help="write every request's output tokens here (JSON) after each point")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    s = SIZES[args.size]
    if args.device is None:  # asked only now: `--device cpu` never touches CUDA (the router may be a forked child)
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        modes = args.modes.split(",")
        if not modes or not set(modes) <= {"colocated", "disaggregated"}:
            raise ValueError("--modes: colocated and/or disaggregated")
        rates = [float(r) for r in (args.rates or s["rates"]).split(",")]
        n_req = args.requests or s["requests"]
        if min(rates) <= 0 or n_req < 1 or args.deadline <= 0:
            raise ValueError("rates, --requests and --deadline must be positive")
        devices = (args.devices or args.device).split(",")
        if not args.devices and args.device == "cuda" and torch.cuda.is_available():
            devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        for d in devices:
            dev = torch.device(d)
            if dev.type == "cuda" and not torch.cuda.is_available():
                raise ValueError("--device cuda but no CUDA GPU is visible")
            if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
                raise ValueError(f"{d}: only {torch.cuda.device_count()} GPU(s) visible")
    except (ValueError, RuntimeError) as e:
        print(f"disaggregated: {e}", file=sys.stderr)
        return 2
    from inference.model import CONFIGS
    cfg = CONFIGS[s["config"]]
    spec = {"config": s["config"], "seed": args.seed, "threads": args.threads, "kv_tokens": s["kv_tokens"],
            "max_batch": s["max_batch"], "token_budget": s["token_budget"], "verify_kv": args.verify_kv}
    workloads = [Workload(rate=r, n_requests=n_req, prompt_mean=s["prompt_mean"], output_mean=s["output_mean"],
                          max_prompt=s["max_prompt"], max_output=s["max_output"], seed=args.seed) for r in rates]
    series, outputs = {}, {}
    try:
        _run_modes(args, modes, spec, devices, workloads, cfg.vocab, series, outputs)
    except KeyboardInterrupt:
        print("disaggregated: interrupted (workers stopped)", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as e:
        print(f"disaggregated: {e}", file=sys.stderr)
        return 1
    report = {"name": "disaggregated", "config": s["config"], "size": args.size, "devices": devices, "slo": SLO,
              "engine": spec | {"page_size": PAGE_SIZE, "prefill_kv_share": PREFILL_KV_SHARE}, "series": series}
    if len(outputs) == 2:  # greedy: the same tokens whichever way the KV got there (up to bf16 near-ties)
        a, b = outputs["colocated"], outputs["disaggregated"]
        same = sum(a[k] == b.get(k) for k in a)
        report["identical_outputs"] = f"{same}/{len(a)}"
        print(f"decode outputs identical to colocated: {same}/{len(a)}")
    goal = _goal()
    if goal and "disaggregated" in series and devices[0].startswith("cuda"):
        from harness.device import arch_key, gpu_name
        arch = arch_key(gpu_name(torch.device(devices[0])))
        target = goal.get(arch, goal.get("default"))
        value = min((p["kv_transfer"]["gbps_mean"] or 0) for p in series["disaggregated"])
        met = value >= target
        report["goals"] = [{"what": "KV transfer GB/s (mean over requests, worst point)", "value": value, "op": ">=",
                            "target": target, "met": met, "source": goal.get("source")}]
        print(f"goal: KV transfer >= {target} GB/s: {value:.1f} -> {'met' if met else 'MISSED'}")
    from harness.device import provenance
    threads = {"threads": args.threads, "cores": os.cpu_count()} if devices[0] == "cpu" else None
    report["provenance"] = provenance(torch.device(devices[0]), size=args.size, threads=threads)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(report, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

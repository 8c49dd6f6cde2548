"""What Chapter 17's commands share: sizes, the command line, the model, the workload, goals from targets.toml and
the JSON report with provenance."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

from inference.bench import build_model, warmup
from inference.loadgen import Workload

# Per size: the model, the engine's limits per worker (KV tokens, batch, token budget), the shared-prefix workload,
# the context lengths the step model is measured at, how many real workers and requests, the simulated cluster sizes.
SIZES = {
    "tiny": dict(config="tiny", token_budget=64, max_batch=8, page_size=8, kv_tokens=768, contexts=(32,),
                 prefix_len=48, prefixes_per_worker=2, prompt_mean=12, max_prompt=24, output_mean=8, max_output=16,
                 real_workers=3, real_requests=18, sim_workers=(8,), sim_requests_per_worker=20),
    "small": dict(config="small", token_budget=512, max_batch=16, page_size=16, kv_tokens=8192, contexts=(256,),
                  prefix_len=256, prefixes_per_worker=4, prompt_mean=32, max_prompt=64, output_mean=32, max_output=64,
                  real_workers=4, real_requests=48, sim_workers=(8, 32), sim_requests_per_worker=40),
    "full": dict(config="1b", token_budget=2048, max_batch=16, page_size=16, kv_tokens=24576, contexts=(512, 1536),
                 prefix_len=1024, prefixes_per_worker=4, prompt_mean=64, max_prompt=256, output_mean=64, max_output=128,
                 real_workers=4, real_requests=64, sim_workers=(8, 16, 32, 64), sim_requests_per_worker=40),
}
# An interactive SLO: first token within 1 s, then at least 20 tokens/s. Tiny (CPU) steps are ~ms of Python.
SLO = {"tiny": {"ttft_s": 0.02, "tpot_s": 0.01}, "small": {"ttft_s": 1.0, "tpot_s": 0.05},
       "full": {"ttft_s": 1.0, "tpot_s": 0.05}}
TARGETS = Path(__file__).parent / "targets.toml"


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--size", default="full", choices=list(SIZES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path, help="where to write the result (JSON)")
    ap.add_argument("--plot", type=Path, help="where to write the plot (PNG)")
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def load_model(args, name: str):
    """The size's model on the device (bf16 on a GPU, fp32 on the CPU), warmed up; None (and a message) if not."""
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"{name}: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return None
    if args.device == "cpu":  # a fixed, small pool: on a shared CPU more threads spin
        torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    model = build_model(SIZES[args.size]["config"], args.device, dtype, args.seed)
    warmup(model, model.cfg.vocab)
    return model


def workload(size: str, n_workers: int, rate: float, n_requests: int, seed: int = 0, shared: bool = True) -> Workload:
    """Requests sharing system prompts (shared=True): prefixes_per_worker x n_workers distinct prompts, more than
    one worker's KV cache holds, so where a prefix is sent decides whether it hits."""
    s = SIZES[size]
    return Workload(rate=rate, n_requests=n_requests, prompt_mean=s["prompt_mean"], output_mean=s["output_mean"],
                    max_prompt=s["max_prompt"], max_output=s["max_output"],
                    prefix_len=s["prefix_len"] if shared else 0,
                    n_prefixes=s["prefixes_per_worker"] * n_workers if shared else 1, seed=seed)


def worker_rate(sm, size: str, shared: bool = True) -> float:
    """Requests/s one colocated worker sustains, estimated from the step model: each request costs its prompt
    tokens at the marginal per-token time (no prefix hits assumed) plus output x t(B) / B of decode steps at the
    engine's batch limit B. Offered loads are stated as multiples of N x this."""
    s = SIZES[size]
    prompt = s["prompt_mean"] + (s["prefix_len"] if shared else 0)
    b, context = s["max_batch"], prompt + s["output_mean"] / 2
    per_request = prompt * sm.per_token_s + s["output_mean"] * sm.decode_step_time(b, context) / b
    return 1.0 / per_request


def get_step_model(args, model):
    """The step model: read from --step-model (a ch17.step_model JSON) or measured now on `model`."""
    from ch17 import step_model
    if getattr(args, "step_model", None):
        try:
            return step_model.load(args.step_model)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"cannot read the step model {args.step_model}: {e}") from e
    s = SIZES[args.size]
    samples = step_model.measure(model, budget=s["token_budget"], max_batch=s["max_batch"], contexts=s["contexts"])
    return step_model.fit(samples, s["token_budget"], s["max_batch"])[0]


def model_and_step_model(args, modes: list[str], name: str):
    """(model, step model) for a command: the model only where real engines run or the step model must be
    measured; None (and a one-line message) on bad input."""
    try:
        sm = get_step_model(args, None) if args.step_model else None
    except ValueError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return None
    model = None  # a simulation from a given step model needs no model
    if "real" in modes or sm is None:
        model = load_model(args, name)
        if model is None:
            return None
    return model, sm or get_step_model(args, model)


def goal(name: str, what: str, value: float | None, arch: str) -> dict:
    """Judge `value` against targets.toml's [name.speedup] for this architecture (`default` on any GPU; on the
    CPU only a `cpu` value applies: tiny CPU runs time Python, not serving)."""
    import tomllib
    spec = tomllib.loads(TARGETS.read_text()).get(name, {}).get("speedup", {})
    key = arch if arch in spec else ("default" if arch != "cpu" and "default" in spec else None)
    target = spec.get(key) if key else None
    op = spec.get("op", ">=")
    met = None if value is None or target is None else bool(value >= target if op == ">=" else value <= target)
    shown = "-" if value is None else f"{value:.3g}"
    print(f"goal: {what} {op} {target}: {shown} -> "
          f"{'met' if met else 'MISSED' if met is False else 'not judged here'}")
    return {"what": what, "value": value, "op": op, "target": target, "met": met,
            "source": spec.get(f"source_{key}", spec.get("source", "")) if key else ""}


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def arch_of(device: str) -> str:
    if not device.startswith("cuda"):
        return "cpu"
    name = torch.cuda.get_device_name()
    return next((a for a in ("H100", "H200", "B200", "A100") if a in name), "unknown")


def finite(x):
    """The report with every infinity / NaN as None (JSON has neither)."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def write(args, name: str, model, **report) -> dict:
    from harness.device import provenance
    threads = {"threads": torch.get_num_threads(), "cores": os.cpu_count()} if args.device == "cpu" else None
    out = {"name": name, "provenance": provenance(torch.device(args.device), size=args.size, threads=threads),
           "size": args.size, "config": SIZES[args.size]["config"],
           "dtype": None if model is None else str(model.output.weight.dtype), **report}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(finite(out), indent=1))
    return out

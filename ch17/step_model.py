"""The engine's step time as a function of what the step carries, measured and fitted: the number every routing,
admission and capacity decision in this chapter rests on.

    python -m ch17.step_model --size full --json step_model.json

One step of the engine (`inference.scheduler.Engine.step`) is one forward pass over a packed row of tokens. Its
time is modelled as

    t(tokens, kv, rows) = fixed + per_token * tokens + per_kv * kv + per_row * rows

fixed: launches, Python scheduling and reading every weight once (a decode step at batch 1 is almost all of this);
per_token: the FLOPs of each packed token (2 * n_params); per_kv: attention over the keys/values each row reads
(`kv` = the context lengths of all rows summed); per_row: what each sequence in the step adds (its own attention
call per layer for a prefill chunk, its bookkeeping). The fit is least squares over measured prefill steps (one
prompt of 16..budget tokens; k prompts sharing a full budget) and decode steps (batch 1..max_batch at each
context length), clipped to non-negative terms.

What it gives the rest of the chapter: prefill capacity (tokens/s at a full budget), decode step time vs batch,
and a clock for the simulated workers (`ch17.cluster.SimWorker`), so the simulation scales to 64 workers with
step times that came from the real engine on the real device.

Bound: a decode step cannot beat weight bytes / HBM bandwidth (2.5 GB at 1B in bf16: ~0.5 ms on an H200 at
4.8 TB/s); a prefill token cannot beat 2 * n_params / peak FLOP/s (~2.5 GFLOP at 1B: ~3 us at ~800 TFLOP/s).
The measured `fixed` and `per_token` say how far the engine is from both.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from inference.generate import new_paged_cache
from inference.scheduler import Engine, Request


@dataclass(frozen=True)
class StepModel:
    fixed_s: float
    per_token_s: float
    per_kv_s: float
    budget: int = 512         # the engine's token budget per step it was measured with
    max_batch: int = 64
    per_row_s: float = 0.0

    def step_time(self, tokens: int, kv: float = 0, rows: int = 1) -> float:
        return self.fixed_s + self.per_token_s * tokens + self.per_kv_s * kv + self.per_row_s * rows

    def decode_step_time(self, batch: int, context: float) -> float:
        """A decode step of `batch` sequences of mean length `context`."""
        return self.step_time(batch, batch * context, batch)

    def prefill_time(self, prompt: int) -> float:
        """One prompt prefilled alone, in chunks of the budget (each chunk reads the keys before it)."""
        t, done = 0.0, 0
        while done < prompt:
            n = min(self.budget, prompt - done)
            t += self.step_time(n, done + n)
            done += n
        return t

    def prefill_tokens_per_s(self, context: int = 0) -> float:
        """Prefill capacity: full-budget steps back to back."""
        return self.budget / self.step_time(self.budget, context + self.budget)

    def describe(self) -> str:
        return (f"{self.fixed_s * 1e3:.3f} ms + {self.per_token_s * 1e6:.3f} us/token + {self.per_kv_s * 1e9:.3f} "
                f"ns/kv-token + {self.per_row_s * 1e6:.3f} us/row")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StepModel:
        return cls(**{k: d[k] for k in ("fixed_s", "per_token_s", "per_kv_s", "budget", "max_batch")},
                   per_row_s=d.get("per_row_s", 0.0))


def fit(samples: list[tuple[int, float, int, float]], budget: int, max_batch: int) -> tuple[StepModel, float]:
    """Least squares of (tokens, kv, rows, seconds) samples; returns the model and its worst relative error."""
    a = np.array([[1.0, n, kv, rows] for n, kv, rows, _ in samples])
    y = np.array([t for *_, t in samples])
    keep = np.ones(4, dtype=bool)
    coef = np.linalg.lstsq(a, y, rcond=None)[0]
    while (coef[keep] < 0).any():  # a negative term is noise: drop the most negative and refit the rest
        keep[np.flatnonzero(keep)[np.argmin(coef[keep])]] = False
        coef = np.zeros(4)
        coef[keep] = np.linalg.lstsq(a[:, keep], y, rcond=None)[0]
    model = StepModel(float(coef[0]), float(coef[1]), float(coef[2]), budget, max_batch, float(coef[3]))
    worst = max(abs(model.step_time(n, kv, rows) - t) / t for n, kv, rows, t in samples)
    return model, worst


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def measure(model, *, budget: int, max_batch: int, contexts: tuple[int, ...], page_size: int = 16,
            reps: int = 5) -> list[tuple[int, int, float]]:
    """(tokens, kv, rows, seconds) per measured step: one prompt of 16..budget tokens; k = 2, 4, .. prompts
    sharing a full budget; decode steps at batch 1..max_batch for each context length. Each point is the median
    of `reps` steps."""
    vocab, device = model.cfg.vocab, model.output.weight.device
    samples = []
    sizes = sorted({min(budget, 16 << i) for i in range(16) if (16 << i) <= 2 * budget} | {budget})
    for n in sizes:  # one prompt of n tokens: its prefill is one step
        times = []
        for rep in range(reps + 1):  # the first is a warm-up (allocator growth, new shapes)
            eng = Engine(model, new_paged_cache(model, -(-(n + 1) // page_size) + 1, page_size), token_budget=budget)
            eng.add(Request(rep, [(7 * i + rep) % vocab for i in range(n)], 1))
            _sync(device)
            t0 = time.perf_counter()
            eng.step()
            times.append(time.perf_counter() - t0)
        samples.append((n, n, 1, statistics.median(times[1:])))
    for k in (2, 4, 8):  # k prompts prefilled in one step: the same tokens in more rows
        if k > max_batch or budget // k < 1:
            continue
        n, times = budget // k, []
        for rep in range(reps + 1):  # the first is a warm-up (allocator growth, new shapes)
            eng = Engine(model, new_paged_cache(model, k * (-(-(n + 1) // page_size)) + 1, page_size),
                         max_batch=k, token_budget=budget)
            for i in range(k):
                eng.add(Request(i, [(5 * i + 3 * j + rep) % vocab for j in range(n)], 1))
            _sync(device)
            t0 = time.perf_counter()
            eng.step()
            times.append(time.perf_counter() - t0)
        samples.append((k * n, k * n, k, statistics.median(times[1:])))
    batches = sorted({min(max_batch, 1 << i) for i in range(12) if (1 << i) <= 2 * max_batch})
    for ctx in contexts:
        for b in batches:
            # enough new tokens that the first sequences are still decoding when the last prompt is prefilled
            n_new = -(-b * ctx // max(1, budget - b)) + reps + 3
            pages = b * (-(-(ctx + n_new) // page_size)) + 1
            eng = Engine(model, new_paged_cache(model, pages, page_size), max_batch=b, token_budget=max(budget, b))
            for i in range(b):
                eng.add(Request(i, [(13 * i + j) % vocab for j in range(ctx)], n_new))
            while any(r.n_computed < len(r.prompt) for r in eng.running) or eng.waiting:
                eng.step()  # prefill all of them (their first token comes with it)
            times, kvs, rows = [], [], []
            for _ in range(reps):
                kvs.append(sum(len(r.prompt) + len(r.output) for r in eng.running))
                rows.append(len(eng.running))  # b, unless a sequence has finished already
                _sync(device)
                t0 = time.perf_counter()
                eng.step()
                times.append(time.perf_counter() - t0)
            samples.append((statistics.median(rows), statistics.median(kvs), statistics.median(rows),
                            statistics.median(times)))
    return samples


def main(argv=None) -> int:
    from ch17 import common
    ap = common.parser(__doc__)
    args = ap.parse_args(argv)
    model = common.load_model(args, "step_model")
    if model is None:
        return 2
    s = common.SIZES[args.size]
    t0 = time.perf_counter()
    samples = measure(model, budget=s["token_budget"], max_batch=s["max_batch"], contexts=s["contexts"])
    sm, worst = fit(samples, s["token_budget"], s["max_batch"])
    print(f"step time = {sm.describe()} (worst relative error {worst:.0%}, {len(samples)} points, "
          f"{time.perf_counter() - t0:.1f} s)")
    print(f"prefill capacity {sm.prefill_tokens_per_s():.0f} tokens/s; decode step at batch 1 / {s['max_batch']} "
          f"(context {s['contexts'][0]}): {sm.decode_step_time(1, s['contexts'][0]) * 1e3:.2f} / "
          f"{sm.decode_step_time(s['max_batch'], s['contexts'][0]) * 1e3:.2f} ms")
    common.write(args, "step_model", model, step_model=sm.as_dict(), worst_relative_error=worst,
                 samples=[{"tokens": n, "kv": kv, "rows": rows, "seconds": t} for n, kv, rows, t in samples])
    return 0


def load(path: Path) -> StepModel:
    return StepModel.from_dict(json.loads(Path(path).read_text())["step_model"])


if __name__ == "__main__":
    sys.exit(main())

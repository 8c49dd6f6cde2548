"""Contiguous vs paged KV cache at one memory budget: how many sequences run at once, and what it buys.

    python -m ch16.kv_paging --size full --json kv_paging.json

A contiguous cache reserves a sequence's maximum length (prompt limit + output limit) when the sequence starts,
because it cannot grow in place; most of that is never written (internal fragmentation). A paged cache
(`inference.paged_kv`) commits one page (16 tokens) at a time, so the same bytes hold as many sequences as their
actual lengths allow; when a growing batch runs out of pages, the youngest sequence is preempted and recomputed.
Both run in the same engine: the contiguous layout is a paged cache whose page is the whole maximum length.

All requests arrive at t=0 and the batch limit is high, so the KV budget alone sets the concurrency.

Bound: max concurrent sequences = budget / reserved tokens per sequence: budget / max_len for contiguous,
about budget / (mean length + page_size / 2) for paged; decode tokens/s rises with it while a step stays
bandwidth-bound (weights read once per step, shared by every sequence in it).

Goal (project claim, the vLLM paper reports 2-4x): paged peak concurrency >= 2x contiguous at the same budget.
"""
from __future__ import annotations

import sys

from ch16 import serving
from inference.paged_kv import PagedKVCache

SEQS_CONTIGUOUS = {"tiny": 4, "small": 16, "full": 16}  # the budget: this many maximum-length sequences


def main(argv=None) -> int:
    args = serving.parser(__doc__).parse_args(argv)
    model = serving.load_model(args, "kv_paging")
    if model is None:
        return 2
    w = serving.workload(args.size)
    max_len = w.max_prompt + w.max_output
    budget = SEQS_CONTIGUOUS[args.size] * max_len
    series = serving.run_series(model, ["contiguous", "paged"], [w], args, kv_tokens=budget, max_batch=1024)
    cont, paged = series["contiguous"][0], series["paged"][0]
    for name, p in series.items():
        e = p[0]["engine"]
        print(f"{name:>10}: peak {e['peak_running']} sequences, KV slots used {e['kv_slot_utilization']:.0%}, "
              f"{p[0]['preemptions']} preemptions")
    goals = [serving.goal("paged / contiguous peak concurrent sequences",
                          serving.ratio(paged["engine"]["peak_running"], cont["engine"]["peak_running"]), ">=", 2.0,
                          "project claim (vLLM paper: 2-4x): pages follow actual lengths, not the maximum"),
             serving.goal("paged / contiguous output tokens/s", serving.ratio(
                 paged["output_tokens_per_s"], cont["output_tokens_per_s"]), ">=", 1.0,
                 "project claim: more sequences per step, same weights read")]
    bpt = PagedKVCache.bytes_per_token(model.cfg, model.output.weight.dtype)
    serving.write(args, "kv_paging", model, series, goals,
                  budget={"tokens": budget, "bytes": budget * bpt, "max_len": max_len})
    return 0


if __name__ == "__main__":
    sys.exit(main())

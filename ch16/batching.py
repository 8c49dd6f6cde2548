"""Static vs continuous batching at the same arrival rates: throughput and tail latency.

    python -m ch16.batching --size full --json batching.json --plot batching.png     # 1B, bf16, GPU

Static batching admits a batch only when the previous one has fully finished: a slot whose request is done sits
idle until the longest request of its batch ends, and arrivals wait for the whole batch. Continuous batching
(`inference.scheduler.Engine`) refills a slot the step after it frees and prefills new prompts in chunks beside
the running decodes. With log-normal output lengths (the longest of 32 is ~3x the mean) a static batch is busy
about a third of its slot-steps once the load saturates it, so continuous batching can approach ~2-3x the
output tokens/s there; at a light load both run nearly one request at a time and match.

Bound: a decode step reads the weights once (2.5 GB in bf16 at 1B: ~0.5 ms at 4.8 TB/s on an H200) plus the
live KV, whatever the batch; tokens/s grows with the number of sequences a step carries, which is what the
scheduler controls.

Goals (project claims; a miss is reported as missed): continuous >= 1.5x static output tokens/s when all
requests arrive at once, and continuous p99 end-to-end latency <= static's at every rate.
"""
from __future__ import annotations

import sys

from ch16 import serving

RATES = {"tiny": [50.0, float("inf")], "small": [20.0, 80.0, float("inf")], "full": [12.0, 48.0, float("inf")]}
VARIANTS = ["static", "continuous"]


def main(argv=None) -> int:
    args = serving.parser(__doc__).parse_args(argv)
    model = serving.load_model(args, "batching")
    if model is None:
        return 2
    series = serving.run_series(model, VARIANTS, [serving.workload(args.size, rate=r) for r in RATES[args.size]], args)
    static, cont = series["static"], series["continuous"]
    goals = [serving.goal("continuous / static output tokens/s, all requests at t=0",
                          serving.ratio(cont[-1]["output_tokens_per_s"], static[-1]["output_tokens_per_s"]), ">=", 1.5,
                          "project claim: idle slots of a static batch are refilled at once"),
             serving.goal("max over rates of continuous / static p99 end-to-end latency",
                          max((serving.ratio(c["e2e_s"]["p99"], s["e2e_s"]["p99"]) or float("inf"))
                              for c, s in zip(cont, static, strict=True)), "<=", 1.0,
                          "project claim: no request waits for another batch's longest request")]
    serving.write(args, "batching", model, series, goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())

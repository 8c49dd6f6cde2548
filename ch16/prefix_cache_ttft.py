"""Prefix cache off vs on for requests that share system prompts: time to first token.

    python -m ch16.prefix_cache_ttft --size full --json prefix_cache.json

Chat and agent requests often start with the same long system prompt. Without a prefix cache every request
prefills it again; with the radix-tree cache (`inference.prefix_cache`) a request whose prompt starts with
cached pages attaches them (reference-counted, no copy) and prefills only the rest. Here 4 system prompts of
`prefix_len` tokens are shared by all requests, each adding a short unique question.

Bound: prefill costs ~2 * n_params FLOPs per token (2.5 GFLOP per token at 1B: a 1024-token prefix is ~2.5 TFLOP,
~4 ms at ~700 TFLOP/s dense bf16); a hit skips all full pages of the shared part, so TTFT falls towards the cost of
the unique part plus queueing, and the saved prefill frees step budget for decodes.

Goal (project claim): TTFT p50 with the cache <= 0.5x without, at a rate the engine sustains.
"""
from __future__ import annotations

import sys

from ch16 import serving

SHARED = {"tiny": dict(rate=50.0, prefix_len=48, prompt_mean=8, max_prompt=16),
          "small": dict(rate=16.0, prefix_len=512, prompt_mean=32, max_prompt=128),
          "full": dict(rate=16.0, prefix_len=1024, prompt_mean=64, max_prompt=256)}


def main(argv=None) -> int:
    args = serving.parser(__doc__).parse_args(argv)
    model = serving.load_model(args, "prefix_cache_ttft")
    if model is None:
        return 2
    w = serving.workload(args.size, n_prefixes=4, **SHARED[args.size])
    series = serving.run_series(model, ["continuous", "continuous+prefix"], [w], args)
    off, on = series["continuous"][0], series["continuous+prefix"][0]
    print(f"prefix cache: {on['prefix_hit_tokens']} of {on['prompt_tokens']} prompt tokens served from cached pages")
    goals = [serving.goal("prefix cache on / off, TTFT p50", serving.ratio(on["ttft_s"]["p50"], off["ttft_s"]["p50"]),
                          "<=", 0.5, "project claim: the shared part of each prompt is not prefilled again")]
    serving.write(args, "prefix_cache_ttft", model, series, goals,
                  hit_rate=on["prefix_hit_tokens"] / max(1, on["prompt_tokens"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

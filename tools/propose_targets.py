"""Propose per-architecture target values from a recorded run, for a person to paste into targets.toml.

    python tools/propose_targets.py ch7 --gpu h200 --arch H200

For every target that the recorded run met, it proposes `<ARCH> = margin x measured` (rounded down to two
significant figures) and a `source_<ARCH>` naming the run, where that is above the claim that applied.
A target the run missed gets no proposal, and no proposal is below the claim: a value from a run may
tighten a claim, never loosen it or hide a miss.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

from harness.device import REPO_ROOT
from harness.expectations import entry_result


def round_down(x: float, digits: int = 2) -> float:
    if x <= 0:
        return x
    scale = 10 ** (digits - 1 - math.floor(math.log10(x)))
    return math.floor(x * scale) / scale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter")
    parser.add_argument("--gpu", required=True, help="expectations file name, e.g. h200")
    parser.add_argument("--arch", required=True, help="targets key, e.g. H200")
    parser.add_argument("--margin", type=float, default=0.85, help="fraction of the measured value (default 0.85)")
    args = parser.parse_args(argv)
    path = REPO_ROOT / args.chapter / "expectations" / f"{args.gpu}.json"
    if not path.exists():
        print(f"propose_targets: no {path.relative_to(REPO_ROOT)}", file=sys.stderr)
        return 2
    for ex_id, entry in json.loads(path.read_text())["examples"].items():
        prov = entry["provenance"]
        for t in entry_result(entry).targets:
            header = f"[{ex_id.split('/')[1]}.{t.metric}]"
            if t.met is not True or t.op not in (">=", ">"):
                print(f"# {header}: not proposed (met: {t.met})")
                continue
            value = round_down(args.margin * t.measured)
            if value <= t.value:  # a value from a run may tighten a claim, never loosen it
                print(f"# {header}: not proposed ({args.margin:g} x measured is not above the claim {t.value:g})")
                continue
            print(f"{header}\n{args.arch} = {value}\n"
                  f'source_{args.arch} = "{args.margin:g} x {t.measured:.3g} measured on {prov["device"]["name"]}, '
                  f'git {(prov["git_sha"] or "?")[:7]}, {prov["started_at"][:10]}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())

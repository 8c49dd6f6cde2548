"""Every chapter's targets.toml: each table names a real example and variant (or a command of its own), has a
source, and carries no H100/H200 value that a recorded run did not give (those come from `--record` runs)."""
import importlib.util

import pytest

from harness import targets
from harness.device import REPO_ROOT
from harness.example import load_example

CHAPTERS = sorted(p.parent.name for p in REPO_ROOT.glob("ch*/targets.toml"))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_targets_name_real_examples_and_variants(chapter):
    folder = REPO_ROOT / chapter
    claims = targets.load_targets(folder)
    assert claims, f"{chapter}/targets.toml is empty"
    variants = {}
    for example, metrics in claims.items():
        for metric, spec in metrics.items():
            assert spec.get("source"), f"[{example}.{metric}] needs a source"
            for gpu in ("H100", "H200"):
                assert gpu not in spec or f"source_{gpu}" in spec, f"[{example}.{metric}] {gpu} value needs source_{gpu}"
            if "command" in spec:
                module = spec["command"].split()[-1]
                assert importlib.util.find_spec(module), f"[{example}.{metric}] names no module {module}"
        path = folder / f"{example}.py"
        if path.exists() and not all("command" in s for s in metrics.values()):
            variants[example] = {v.name for v in load_example(path).variants()}
    targets.check_names(claims, folder / "targets.toml", variants)

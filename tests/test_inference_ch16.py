"""Chapter 16's serving comparisons run end to end at the tiny size on the CPU and write their JSON (the figures
themselves are GPU results: no speed is asserted here)."""
import json

import pytest
import torch

from ch16 import batching, kv_paging, prefix_cache_ttft


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("module", [batching, kv_paging, prefix_cache_ttft], ids=lambda m: m.__name__)
def test_runs_at_tiny_size(module, tmp_path):
    out = tmp_path / "r.json"
    assert module.main(["--size", "tiny", "--device", "cpu", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["provenance"]["argv"] is not None and report["goals"]
    for points in report["series"].values():
        assert all(p["finished"] == p["requests"] for p in points)
    if module is prefix_cache_ttft:
        assert report["hit_rate"] > 0.5
    if module is kv_paging:  # structural, not a speed: pages follow actual lengths
        peaks = {name: p[0]["engine"]["peak_running"] for name, p in report["series"].items()}
        assert peaks["paged"] > peaks["contiguous"] == 4


def test_bad_input_exits_2(capsys):
    if not torch.cuda.is_available():
        assert batching.main(["--size", "tiny", "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        batching.main(["--size", "huge"])
    assert e.value.code == 2

"""harness/recorded.py: recorded CLI JSONs become README tables (scalars as columns, provenance on top)."""
import json

from harness import recorded

PROV = {"git_sha": "abc1234", "started_at": "2026-11-30T03:00:00+00:00", "argv": ["--size", "full"],
        "device": {"name": "NVIDIA H200", "driver": "580", "cuda": "13.0"}, "versions": {"torch": "2.11"}}


def test_rows_as_list_and_as_dict_and_scalars_only(tmp_path):
    run = tmp_path / "recorded" / "h200-2026-11-30"
    run.mkdir(parents=True)
    (run / "fp8.json").write_text(json.dumps({"provenance": PROV, "rows": [
        {"run": "bf16", "median_step_ms": 145.04, "losses": [1.0, 0.9], "tracks_bf16": True, "trace": "/tmp/t.gz"},
        {"run": "fp8", "median_step_ms": 298.0, "losses": [1.0, 0.9], "tracks_bf16": False}]}))
    (run / "steps.json").write_text(json.dumps({"provenance": PROV, "variants": {"eager": {"ms": 2.5}},
                                                "nested": {"a": {"inner": {"x": 1}}},
                                                "explain": {"a": {"graphs": 3}}, "note": "x"}))
    (run / "sweep.json").write_text(json.dumps({"provenance": PROV, "results": [
        {"kernel": "k1", "correct": True, "checks": [{"ok": True}], "rows": [{"n": 4096, "ms": 0.24}, {"n": 8192, "ms": 1.5}]}]}))
    (run / "curve.png").write_bytes(b"\x89PNG")
    (run / "not_a_run.json").write_text(json.dumps({"rows": [{"a": 1}]}))   # no provenance: not shown
    text = recorded.block(tmp_path)
    assert "**fp8** (`--size full`): NVIDIA H200 (driver 580, CUDA 13.0, torch 2.11), git abc1234, 2026-11-30" in text
    assert "| run | median_step_ms | tracks_bf16 |" in text          # no list column, no path column
    assert "| bf16 | 145 | yes |" in text and "| fp8 | 298 | NO |" in text
    assert "**steps: variants**" in text and "| eager | 2.5 |" in text and "**steps: explain**" in text
    assert "steps: nested" not in text                              # a table of names alone is left out
    assert "![curve](recorded/h200-2026-11-30/curve.png)" in text
    assert "| kernel | correct | n | ms |" in text and "| k1 | yes | 8192 | 1.5 |" in text   # nested rows, flattened
    assert "not_a_run" not in text


def test_no_runs_says_so(tmp_path):
    assert recorded.block(tmp_path).startswith("Not yet measured")

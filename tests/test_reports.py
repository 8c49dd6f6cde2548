import subprocess
import sys

from harness.device import REPO_ROOT
from harness.report import expectations_markdown, summary_markdown
from tools.render_results import replace_block

ENTRY = {
    "size": "full", "speedup": 4.0,
    "targets": [{"metric": "speedup", "op": ">=", "value": 31.0, "measured": 4.0, "met": False, "source": "B200: book"}],
    "variants": [{"name": "loop", "role": "baseline", "verified": True, "median_ms": 4.0, "iqr_ms": 0.1, "gbps": 10.0},
                 {"name": "bmm", "role": "optimized", "verified": True, "median_ms": 1.0, "iqr_ms": 0.01, "tflops": 50.0}],
    "provenance": {"started_at": "2026-11-21T04:00:00+00:00", "git_sha": "0123456789abcdef", "host": "h",
                   "device": {"name": "NVIDIA H200", "driver": "580", "cuda": "13.0"},
                   "versions": {"torch": "2.11", "triton": "3.6", "python": "3.12"}},
}


def test_expectations_table_shows_provenance_and_missed_targets():
    md = expectations_markdown({"gpu": "NVIDIA H200", "examples": {"ch1/x": ENTRY}})
    assert "git 0123456789ab on 2026-11-21" in md and "driver 580" in md
    assert "| ch1/x | loop | baseline | 4 ms | 10 GB/s | baseline | - | - |  |" in md   # v1 kept no percentiles
    assert "| ch1/x | bmm | optimized | 1 ms | 50 TFLOP/s | yes | 4.00x | - | speedup >= 31: 4 MISSED |" in md


def test_replace_block_keeps_the_markers():
    text = "a\n<!-- b -->\nold\n<!-- e -->\nz"
    assert replace_block(text, "<!-- b -->", "<!-- e -->", "new") == "a\n<!-- b -->\nnew\n<!-- e -->\nz"


def test_summary_markdown_lists_every_example():
    run = {"started_at": "t", "git_sha": "s", "size": "tiny", "device": {"name": "cpu", "cpu": "x"},
           "versions": {"torch": "2", "triton": "3", "python": "3.11"}}
    md = summary_markdown({"run": run, "examples": [{**ENTRY, "id": "ch1/x", "status": "ok", "reason": ""}]})
    assert "| ch1/x | ok |" in md and "MISSED" in md


def test_readme_tables_match_the_recorded_expectations():
    p = subprocess.run([sys.executable, "tools/render_results.py", "--check"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr

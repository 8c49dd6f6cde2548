"""Chapter 4: DDP over gloo on the CPU, two spawned ranks. Every way of training ends with the baseline's
weights on every rank; bucket size sets the number of all-reduces per step; no_sync cuts them to one per
optimizer step. Nothing here depends on how fast the machine is, and nothing can hang: each run has a
deadline after which every rank is killed."""
from __future__ import annotations

import time

import pytest

from ch4 import ddp_overlap as ddp


@pytest.fixture(scope="module")
def report():
    return ddp.run(2, "gloo", "cpu", "tiny", buckets=(0.02, 25.0), timeout=180)


def test_every_way_verified_and_identical_on_all_ranks(report):
    assert report["verified"]
    for row in report["rows"]:
        assert row["same_weights_on_all_ranks"] in (True, None), row
        assert row["matches"] is None or row["matches"]["ok"], row


def test_bucket_size_sets_all_reduces_per_step(report):
    calls = {r["way"]: r["allreduce_calls_per_step"] for r in report["rows"]}
    assert calls["compute_only"] == 0 and calls["allreduce_after_backward"] == 1
    assert calls["ddp_bucket_0.02mb"] > calls["ddp_bucket_25mb"] >= 1   # 0.26 MB of gradients: many small buckets
    micro = report["config"]["micro"]
    assert calls["accumulate_sync_every_micro"] == micro * calls["accumulate_no_sync"] == micro


def test_a_run_past_its_deadline_is_killed_not_left_behind():
    psutil = pytest.importorskip("psutil")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        ddp.run(2, "gloo", "cpu", "tiny", timeout=0.5)
    assert time.monotonic() - t0 < 60
    time.sleep(0.2)
    left = [p for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != "zombie"]
    # multiprocessing's resource tracker serves this whole process (spawned once, on first use): not a rank
    assert [p for p in left if "resource_tracker" not in " ".join(p.cmdline())] == []


def test_bad_arguments_exit_2(capsys):
    for bad in (["--world", "0"], ["--buckets", "x"], ["--backend", "nccl"], ["--size", "huge"]):
        with pytest.raises(SystemExit) as info:
            ddp.main(bad)
        assert info.value.code == 2
    assert all(line.startswith("ddp_overlap:") for line in capsys.readouterr().err.strip().splitlines())

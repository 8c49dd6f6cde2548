"""Chapter 5: the sharded dataset reads back what was written, its loaders leave no worker processes behind,
the loader sweep verifies every setting, and dedup finds the planted duplicates."""
from __future__ import annotations

import gc
import json

import numpy as np
import pytest
import torch

from ch5 import data_pipeline as dp
from ch5 import dedup
from ch5.sharded_dataset import DatasetDir, ShardedImageBatches, ShardedImages, shutdown_workers, synthetic_images

psutil = pytest.importorskip("psutil")


def live_children():
    kids = [p for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != "zombie"]
    return [p for p in kids if "resource_tracker" not in " ".join(p.cmdline())]


def test_shards_read_back_exactly():
    images, labels = synthetic_images(37, 16, seed=3)
    d = DatasetDir()
    d.write_shards(images, labels, shards=4)
    assert len(d.paths) == 4 and d.nbytes > 0
    one, batched = ShardedImages(d.paths), ShardedImageBatches(d.paths)
    assert len(one) == 37
    for i in (0, 9, 10, 36):
        img, lab = one[i]
        assert torch.equal(img, torch.from_numpy(images[i])) and lab == labels[i]
    imgs, labs = batched.__getitems__([36, 0, 17])
    assert torch.equal(imgs, torch.from_numpy(images[[36, 0, 17]])) and labs.tolist() == labels[[36, 0, 17]].tolist()
    root = d.root
    d.close()
    assert not root.exists()


def test_loaders_leave_no_worker_processes():
    before = {p.pid for p in live_children()}
    x = dp.setup("tiny", torch.device("cpu"), 0)
    with torch.no_grad():
        ref = dp.single_process(x)
        for fn in (dp.workers_pinned, dp.workers_pinned_batched, dp.persistent_workers_batched,
                   dp.persistent_workers_batched):
            assert torch.allclose(fn(x), ref, rtol=1e-5, atol=1e-5), fn.__name__
    assert len(live_children()) > len(before)        # the persistent workers are alive between epochs ...
    root = x["data"].root
    del x, fn
    gc.collect()
    assert {p.pid for p in live_children()} <= before  # ... and gone with the inputs, files too
    assert not root.exists()


def test_persistent_workers_stop_on_close():
    x = dp.setup("tiny", torch.device("cpu"), 1)
    with torch.no_grad():
        dp.persistent_workers_batched(x)
    workers = [p for p in live_children()]
    assert workers
    x["data"].close()
    psutil.wait_procs(workers, timeout=10)
    assert not [p for p in workers if p.is_running() and p.status() != "zombie"]
    shutdown_workers(x["persistent"])   # a second shutdown is harmless


def test_loader_sweep_verifies_every_setting(capsys):
    from ch5 import loader_sweep

    assert loader_sweep.main(["--device", "cpu", "--size", "tiny", "--epochs", "1", "--json", "-"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["verified"] and len(r["rows"]) >= 4 and r["best"]["samples_per_s"] > 0
    assert all(0 < row["step_utilization"] <= 1 for row in r["rows"])
    with pytest.raises(SystemExit) as info:
        loader_sweep.main(["--epochs", "0"])
    assert info.value.code == 2


def test_quality_rules():
    corpus = dedup.make_corpus(200, seed=5)
    for i in corpus.low_quality:
        assert not dedup.quality_ok(corpus.docs[i]), corpus.docs[i][:80]
    originals = [i for i in range(len(corpus.docs)) if i not in corpus.low_quality]
    assert sum(dedup.quality_ok(corpus.docs[i]) for i in originals) / len(originals) > 0.97


def test_dedup_finds_the_planted_duplicates():
    pytest.importorskip("datasketch", reason="datasketch is in requirements.txt")
    r = dedup.run(400, seed=2, all_pairs=True)
    assert r["planted"]["exact"] > 0 and r["planted"]["near"] > 0
    s = r["stages"]
    assert s["exact_dedup"]["recall"] == 1.0 and s["exact_dedup"]["precision"] == 1.0
    assert s["near_dedup_minhash_lsh"]["precision"] >= 0.95 and s["near_dedup_minhash_lsh"]["recall"] >= 0.7
    assert s["near_dedup_all_pairs"]["recall"] >= s["near_dedup_minhash_lsh"]["recall"]
    assert r["overall"]["precision"] >= 0.95 and r["overall"]["recall"] >= 0.85
    assert dedup.run(400, seed=2)["stages"]["near_dedup_minhash_lsh"]["removed"] == s["near_dedup_minhash_lsh"]["removed"]


def test_exact_dedup_folds_case_and_whitespace():
    docs = {0: "Hello  world\nagain", 1: "hello world again", 2: "hello world, again"}
    assert dedup.exact_duplicates(docs) == {1}


def test_dedup_command_line(capsys):
    pytest.importorskip("datasketch")
    assert dedup.main(["--docs", "120", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["docs"] == 120
    for bad in (["--docs", "3"], ["--threshold", "1.5"], ["--all-pairs", "--docs", "9000"]):
        with pytest.raises(SystemExit) as info:
            dedup.main(bad)
        assert info.value.code == 2


def test_synthetic_images_are_deterministic():
    a, la = synthetic_images(4, 8, seed=9)
    b, lb = synthetic_images(4, 8, seed=9)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and a.dtype == np.uint8

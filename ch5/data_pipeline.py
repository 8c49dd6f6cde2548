"""Feeding the model: a single-process loader vs worker processes, pinned memory, prefetching, persistent workers.

One call is one epoch over a synthetic sharded dataset on disk (written by setup: zlib-compressed
uint8 images, so each sample costs a read and a decode) into a small CNN's forward pass on the device,
in a fixed shuffled order; every variant returns the same logits. The baseline reads and decodes in
the training process (`num_workers=0`): the model waits for every batch. Worker processes decode in
parallel with the step and with each other; `pin_memory` puts batches in page-locked memory so the
host-to-device copy is a DMA that overlaps the step (`non_blocking=True`); `prefetch_factor` keeps that
many batches per worker in flight; `persistent_workers` keeps the workers alive from one epoch to the
next instead of starting them again (a cost paid per epoch, large for short epochs or heavy datasets);
`__getitems__` decodes a whole batch in one call into one array, without the per-sample collate.
The uint8 batch is normalized on the device (batched there, 4x fewer bytes over the link than float).
On the CPU the step runs on one thread, leaving the other cores to the workers.

Bound: the decode work (zlib, a few hundred MB/s per core) divided by the worker count, or the model
step, whichever is slower; `python -m ch5.loader_sweep` reports how busy the step is (GPU utilization
of the consuming step) for a grid of these settings. Samples/s below are the figure to read.
"""
import contextlib
import os

import torch

from ch5.sharded_dataset import DatasetDir, ShardedImageBatches, ShardedImages, collate_batched, synthetic_images
from harness import Example, main

# images, side, shards, batch, loader workers, the CNN's channels
SIZES = {"tiny": dict(n=128, hw=32, shards=4, batch=32, workers=2, channels=(4, 8, 8)),
         "small": dict(n=1024, hw=64, shards=8, batch=64, workers=4, channels=(32, 64, 64)),
         "full": dict(n=2048, hw=96, shards=16, batch=128, workers=8, channels=(128, 256, 256))}
MEAN, STD = 127.5, 64.0


def make_model(seed: int, channels=(128, 256, 256)) -> torch.nn.Module:
    """Three 3x3 convolutions: at full size ~2 GFLOP per 96x96 image, so the step is real work on an H200."""
    torch.manual_seed(seed)
    c1, c2, c3 = channels
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, c1, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c1, c2, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c2, c3, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(4),
        torch.nn.Flatten(), torch.nn.Linear(c3 * 16, 10)).eval()


def workers_for(size: str) -> int:
    return max(1, min(SIZES[size]["workers"], (os.cpu_count() or 2)))


def setup(size, device, seed):
    cfg = SIZES[size]
    images, labels = synthetic_images(cfg["n"], cfg["hw"], seed)
    data = DatasetDir()
    data.write_shards(images, labels, cfg["shards"])
    order = torch.randperm(cfg["n"], generator=torch.Generator().manual_seed(seed)).tolist()
    x = {"data": data, "dataset": ShardedImages(data.paths),
         "dataset_batched": ShardedImageBatches(data.paths), "order": order, "cfg": cfg, "device": device,
         "workers": workers_for(size), "model": make_model(seed, cfg["channels"]).to(device)}
    # Built once and kept: the point of persistent workers is that they outlive an epoch.
    x["persistent"] = loader(x, workers=x["workers"], pin=True, prefetch=4, persistent=True, batched=True)
    data.keep_loader(x["persistent"])
    return x


def loader(x, workers=0, pin=False, prefetch=None, persistent=False, batched=False):
    pin = pin and x["device"].type == "cuda"   # pinning needs a CUDA device to pin for
    batch_sampler = torch.utils.data.BatchSampler(x["order"], x["cfg"]["batch"], drop_last=False)
    return torch.utils.data.DataLoader(
        x["dataset_batched" if batched else "dataset"], batch_sampler=batch_sampler, num_workers=workers, pin_memory=pin,
        prefetch_factor=prefetch if workers else None, persistent_workers=persistent and workers > 0,
        collate_fn=collate_batched if batched else None)


@contextlib.contextmanager
def step_threads(device):
    """On the CPU the step gets one core; the loader's workers get the others."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def model_step(x, images_on_device) -> torch.Tensor:
    return x["model"](images_on_device.float().sub_(MEAN).div_(STD))


def epoch(x, batches) -> torch.Tensor:
    with step_threads(x["device"]):
        return torch.cat([model_step(x, images.to(x["device"], non_blocking=True)) for images, _labels in batches])


def single_process(x):
    return epoch(x, loader(x))


def workers_pinned(x):
    return epoch(x, loader(x, workers=x["workers"], pin=True, prefetch=2))


def workers_pinned_batched(x):
    return epoch(x, loader(x, workers=x["workers"], pin=True, prefetch=4, batched=True))


def persistent_workers_batched(x):
    return epoch(x, x["persistent"])


EXAMPLE = Example(
    title="Data loading: single process vs workers, pinned memory, prefetch, batched decode, persistent workers",
    setup=setup,
    baseline=single_process,
    baseline_name="single_process",
    optimized={"workers_pinned": workers_pinned, "workers_pinned_batched": workers_pinned_batched,
               "persistent_workers_batched": persistent_workers_batched},
    items=lambda x: x["cfg"]["n"],
    items_unit="samples",
    bytes_moved=lambda x: x["data"].nbytes,    # compressed bytes read from the files per epoch
    fresh_inputs=False,   # setup writes a dataset to disk and starts workers: once per input set, not per call
    keeps_threads=True,   # a DataLoader's pin-memory thread and persistent workers outlive the call, by design
)

if __name__ == "__main__":
    main(EXAMPLE)

"""A synthetic image dataset on disk, in shards, as a training job reads one: the pieces Chapter 5's examples share.

`write_shards` writes N images (uint8, 3 x H x W, smooth patterns plus noise so they compress like
photographs rather than like random bytes) and their labels into S shard files. Each shard is one file:
a small JSON index (offsets and labels) and the zlib-compressed samples back to back, so that reading a
sample is one `pread` and one decompression, the CPU work a real decoder does. `ShardedImages` is the
map-style Dataset over them, one sample per `__getitem__`; `ShardedImageBatches` adds `__getitems__`,
which the DataLoader then calls once per batch (decoding straight into one array, no per-sample collate). `DatasetDir` owns a
temporary folder and removes it, and shuts down any persistent loader workers first, when it is dropped.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
import weakref
import zlib
from pathlib import Path

import numpy as np
import torch

HEADER = struct.Struct("<Q")   # length of the JSON index that follows it


def synthetic_images(n: int, hw: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n images 3 x hw x hw, uint8: per-image gradients and blobs, plus a little noise; labels 0..9."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:hw, 0:hw].astype(np.float32) / hw
    freq = rng.uniform(1, 6, size=(n, 3, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 6.3, size=(n, 3, 1, 1)).astype(np.float32)
    base = 127.5 + 100 * np.sin(freq * (xx + yy * rng.uniform(0.2, 2, size=(n, 1, 1, 1))) * 3.1416 + phase)
    noise = rng.normal(0, 6, size=(n, 3, hw, hw))
    images = np.clip(base + noise, 0, 255).astype(np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    return images, labels


def write_shards(root: Path, images: np.ndarray, labels: np.ndarray, shards: int, level: int = 1) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for s, idx in enumerate(np.array_split(np.arange(len(images)), shards)):
        blobs = [zlib.compress(images[i].tobytes(), level) for i in idx]
        offsets = np.cumsum([0] + [len(b) for b in blobs]).tolist()
        index = json.dumps({"shape": list(images.shape[1:]), "first": int(idx[0]) if len(idx) else 0,
                            "offsets": offsets, "labels": labels[idx].tolist()}).encode()
        path = root / f"shard-{s:05d}.bin"
        with open(path, "wb") as f:
            f.write(HEADER.pack(len(index)))
            f.write(index)
            f.write(b"".join(blobs))
        paths.append(path)
    return paths


class ShardedImages(torch.utils.data.Dataset):
    """Samples read from shard files; file descriptors are opened lazily, so each worker has its own."""

    def __init__(self, paths: list[Path]):
        self.paths = [str(p) for p in paths]
        self.index = []          # per shard: (data start, offsets, labels, shape)
        self.where = []          # global sample -> (shard, position)
        for s, path in enumerate(self.paths):
            with open(path, "rb") as f:
                (n,) = HEADER.unpack(f.read(HEADER.size))
                meta = json.loads(f.read(n))
            self.index.append((HEADER.size + n, meta["offsets"], meta["labels"], tuple(meta["shape"])))
            self.where += [(s, j) for j in range(len(meta["labels"]))]
        self._fds: dict[int, int] = {}
        self._pid = None

    def __len__(self) -> int:
        return len(self.where)

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():   # a forked worker must not share the parent's file offsets
            self._fds, self._pid = {}, os.getpid()
        if shard not in self._fds:
            self._fds[shard] = os.open(self.paths[shard], os.O_RDONLY)
        return self._fds[shard]

    def _read(self, i: int) -> tuple[np.ndarray, int]:
        shard, j = self.where[i]
        start, offsets, labels, shape = self.index[shard]
        blob = os.pread(self._fd(shard), offsets[j + 1] - offsets[j], start + offsets[j])
        return np.frombuffer(zlib.decompress(blob), dtype=np.uint8).reshape(shape), labels[j]

    def __getitem__(self, i: int):
        image, label = self._read(i)
        return torch.from_numpy(image.copy()), label

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass


class ShardedImageBatches(ShardedImages):
    """The same samples, fetched a batch at a time: the DataLoader calls `__getitems__` once per batch."""

    def __getitems__(self, indices: list[int]):
        """A whole batch: decode into one preallocated array, return it already collated."""
        first, label = self._read(indices[0])
        out = np.empty((len(indices), *first.shape), dtype=np.uint8)
        labels = [label]
        out[0] = first
        for k, i in enumerate(indices[1:], 1):
            out[k], label = self._read(i)
            labels.append(label)
        return torch.from_numpy(out), torch.tensor(labels)


def collate_batched(batch):
    """`__getitems__` already returns (images, labels): pass it through."""
    return batch


class DatasetDir:
    """A temporary folder of shards that removes itself (after stopping any loaders registered with it)."""

    def __init__(self, prefix: str = "aisp_ch5_"):
        self._tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.root = Path(self._tmp.name)
        self.paths: list[Path] = []
        self._loaders: list = []
        self._finalizer = weakref.finalize(self, DatasetDir._cleanup, self._loaders, self._tmp)

    @property
    def nbytes(self) -> int:
        return sum(p.stat().st_size for p in self.paths)

    def write_shards(self, images: np.ndarray, labels: np.ndarray, shards: int) -> list[Path]:
        self.paths = write_shards(self.root, images, labels, shards)
        return self.paths

    def keep_loader(self, loader) -> None:
        """A persistent-worker loader lives as long as the dataset; its workers stop before the files go."""
        self._loaders.append(loader)

    @staticmethod
    def _cleanup(loaders, tmp):
        for loader in loaders:
            shutdown_workers(loader)
        loaders.clear()
        tmp.cleanup()

    def close(self) -> None:
        self._finalizer()


def shutdown_workers(loader) -> None:
    """Stop a DataLoader's worker processes now (persistent ones otherwise live until the loader is collected)."""
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    loader._iterator = None

"""JPEG decode on the GPU (nvJPEG, batched) vs PIL on CPU worker processes.

Setup writes a folder of JPEGs (4:4:4, quality 90) from synthetic images. One call decodes all of them
and hands the consumer what a vision model's stem would reduce them to: the image scaled to [0, 1]
and averaged over 8x8 pixel blocks, on the GPU. The baseline is the usual input pipeline: DataLoader
workers open each file with PIL, decode on the CPU, and send uint8 batches (pinned) to the GPU. The
optimized variant has the workers only read the compressed bytes and decodes each batch on the GPU
with `torchvision.io.decode_jpeg(device="cuda")` (nvJPEG): the link carries ~10x fewer bytes and the
CPU cores are free. `torchvision_cpu_workers` decodes with torchvision's libjpeg-turbo path on the same
workers, for reference. NVIDIA DALI, the book's other GPU pipeline, is not on the Python package index
(it installs from NVIDIA's own index), so it is not used here.

Two decoders may round an IDCT differently by a level or two per pixel; averaged over the 8x8 block
(the JPEG block itself) the difference is well under one level, hence atol 2/255 on the [0, 1] scale.

Bound: decode throughput (images/s): on the CPU about 1-3 ms per 384x384 image per core, so the worker
count sets it; on the GPU nvJPEG's batched decode. Bytes below are the compressed bytes read.
"""
import io

import torch

from ch5.sharded_dataset import DatasetDir, synthetic_images
from harness import Example, Requires, main

SIZES = {"tiny": dict(n=16, hw=64, batch=8, workers=2), "small": dict(n=128, hw=256, batch=32, workers=4),
         "full": dict(n=256, hw=384, batch=64, workers=8)}
QUALITY = 90


class JpegFiles(torch.utils.data.Dataset):
    """Paths of JPEG files; `mode` says what a worker does with one: 'bytes', 'pil' or 'torchvision'."""

    def __init__(self, paths, mode):
        self.paths, self.mode = [str(p) for p in paths], mode

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        with open(self.paths[i], "rb") as f:
            data = f.read()
        if self.mode == "bytes":
            return torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if self.mode == "torchvision":
            from torchvision.io import decode_jpeg
            return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        import numpy as np
        from PIL import Image
        with Image.open(io.BytesIO(data)) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)


def _as_list(batch):
    return batch


def setup(size, device, seed):
    from PIL import Image

    cfg = SIZES[size]
    images, _ = synthetic_images(cfg["n"], cfg["hw"], seed)
    folder = DatasetDir(prefix="aisp_jpeg_")
    paths = []
    for i, im in enumerate(images):
        path = folder.root / f"{i:06d}.jpg"
        Image.fromarray(im.transpose(1, 2, 0)).save(path, quality=QUALITY, subsampling=0)
        paths.append(path)
    folder.paths = paths
    x = {"folder": folder, "paths": paths, "cfg": cfg, "device": device,
         "nbytes": sum(p.stat().st_size for p in paths)}
    for mode, pin in (("pil", True), ("torchvision", True), ("bytes", False)):
        # Persistent workers, started once: the comparison is decode throughput, not process start-up.
        loader = torch.utils.data.DataLoader(
            JpegFiles(paths, mode), batch_size=cfg["batch"], num_workers=cfg["workers"], persistent_workers=True,
            prefetch_factor=4, pin_memory=pin and device.type == "cuda",
            collate_fn=_as_list if mode == "bytes" else None)
        folder.keep_loader(loader)
        x[mode] = loader
    return x


def stem(uint8_batch: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] uint8 -> [B, 3, H/8, W/8] float32 in [0, 1]: what the model consumes."""
    return torch.nn.functional.avg_pool2d(uint8_batch.float().div_(255.0), 8)


def cpu_decoded(x, mode):
    return torch.cat([stem(batch.to(x["device"], non_blocking=True)) for batch in x[mode]])


def pil_cpu_workers(x):
    return cpu_decoded(x, "pil")


def torchvision_cpu_workers(x):
    return cpu_decoded(x, "torchvision")


def nvjpeg_gpu_batched(x):
    from torchvision.io import decode_jpeg

    outs = []
    for encoded in x["bytes"]:
        decoded = decode_jpeg(encoded, device=x["device"])     # one batched nvJPEG call per batch
        outs.append(stem(torch.stack(decoded)))
    return torch.cat(outs)


EXAMPLE = Example(
    title="JPEG decode: PIL on CPU workers vs nvJPEG on the GPU, batched",
    setup=setup,
    baseline=pil_cpu_workers,
    baseline_name="pil_cpu_workers",
    optimized={"nvjpeg_gpu_batched": nvjpeg_gpu_batched},
    references={"torchvision_cpu_workers": torchvision_cpu_workers},
    items=lambda x: x["cfg"]["n"],
    items_unit="images",
    bytes_moved=lambda x: x["nbytes"],
    tolerance=(0.0, 2.0 / 255.0),   # two decoders' IDCT rounding, averaged over the 8x8 block (see above)
    requires=Requires(cuda=True, packages=("torchvision", "PIL")),
    fresh_inputs=False,   # setup encodes every image and starts three pools of workers
    keeps_threads=True,   # the loaders' persistent workers and pin-memory threads live across calls
)

if __name__ == "__main__":
    main(EXAMPLE)

"""Dynamic parallelism (CDP2): a kernel that launches kernels, vs the same refinement driven by the host.

Mariani-Silver renders the Mandelbrot set by refining only where it varies: a block computes the
dwells on its region's border; a uniform border means a uniform region (filled at once); otherwise
the region splits into 4 x 4 subregions, down to a minimum size (kernels/mariani_silver.cuh).
`host_multipass` runs one kernel per level: blocks append the regions to refine to a work list with an
atomic counter, and the host reads the count back (a copy and a synchronize per level, three levels at
`full`) to size the next launch. `cdp` lets each block that must refine launch a child grid for its
16 subregions from the device (kernels/rdc/, built with -rdc=true and cudadevrt), with no host round
trip and no work list, but one device-side launch per refined region, each for a grid of only 16
blocks. Both make the same decisions and compute the same pixels: the images are equal.

Which wins depends on how many regions refine and on how cheap a device launch is relative to a host
round trip; the measured result is reported whichever way it goes. Bound: compute-bound on the
escape-time iterations of the border and leaf pixels (4 B written per pixel).
"""
import torch

from ch12.kernels import ext, rdc
from harness import Example, Requires, main

SIZES = {"tiny": 512, "small": 2048, "full": 8192}
WINDOW = (-2.0, -1.25, 0.5, 1.25)  # x0, y0, x1, y1 in the complex plane
MAX_DWELL = {"tiny": 128, "small": 256, "full": 512}


def setup(size, device, seed):
    # The image is a function of the window; the seed moves it by a few pixels so inputs differ per call.
    g = torch.Generator().manual_seed(seed)
    shift = float(torch.rand(2, generator=g)[0]) * 1e-3
    x0, y0, x1, y1 = WINDOW
    return {"window": torch.tensor([x0 + shift, y0 + shift, x1 + shift, y1 + shift], dtype=torch.float32),
            "size": SIZES[size], "max_dwell": MAX_DWELL[size]}


def _args(x):
    return (x["size"], *map(float, x["window"].tolist()), x["max_dwell"])


# no edge distributions: the output is integer dwell counts, equal to the bit in both variants whatever the
# window; the atomic counter only orders the work list, and every region is listed once either way.
EXAMPLE = Example(
    title="Dynamic parallelism (CDP2): Mariani-Silver refined by child kernels vs host-driven passes",
    setup=setup,
    baseline=lambda x: ext().mariani_silver_multipass(*_args(x)),
    baseline_name="host_multipass",
    optimized={"cdp": lambda x: rdc().mariani_silver_cdp(*_args(x))},
    bytes_moved=lambda x: 4 * x["size"] ** 2,
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)

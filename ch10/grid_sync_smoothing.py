"""Cooperative groups: many dependent steps in one launch with a grid barrier vs one launch per step.

`steps` rounds of x[i] <- (x[i-1] + x[i] + x[i+1]) / 3 (ends fixed). Each round needs the whole previous
round, so something must separate them. The baseline lets the kernel boundary do it: one launch per step.
The optimized kernel (ch10/kernels/cluster.cu) is launched once, cooperatively, with exactly as many
blocks as fit on the GPU at once, and separates steps with `cooperative_groups::this_grid().sync()`.
The vector is small (1 Mi floats, 4 MiB: it stays in L2), so the cost per step is mostly the barrier:
launch gap vs grid sync. A PyTorch loop of slices is the reference (the same sums; PyTorch may divide by 3
as a multiply by 1/3, an ulp apart per step, well inside the fp32 tolerance).

Bound: per step 8 bytes per element through L2 (4 MiB read, 4 MiB written): ~1-2 us at L2 bandwidth;
a kernel launch back to back costs ~2-4 us, a grid barrier ~1-2 us on 132 SMs.
"""
import torch

from ch10.kernels import ext
from harness import Example, Requires, Variant, main

SIZES_STEPS = {"tiny": (4096, 8), "small": (1 << 18, 50), "full": (1 << 20, 200)}


def setup(size, device, seed):
    n, steps = SIZES_STEPS[size]
    g = torch.Generator(device=device).manual_seed(seed)
    return {"x": torch.randn(n, device=device, generator=g), "steps": steps}


def torch_loop(x):
    cur = x["x"]
    for _ in range(x["steps"]):
        nxt = cur.clone()
        nxt[1:-1] = (cur[:-2] + cur[1:-1] + cur[2:]) / 3
        cur = nxt
    return cur


# no edge distributions: averages of three neighbours cannot overflow or cancel badly; the lesson's edge is the
# grid barrier (a missing sync shows on any input, as a read of a half-updated neighbour).
EXAMPLE = Example(
    title="Iterative smoothing: a launch per step vs one cooperative launch with grid.sync()",
    setup=setup,
    baseline=lambda x: ext().smooth_per_step(x["x"], x["steps"]),
    baseline_name="launch_per_step",
    optimized={"cooperative_grid_sync": Variant(lambda x: ext().smooth_grid_sync(x["x"], x["steps"]),
                                                note="one cooperative launch, blocks = what fits at once")},
    references={"torch_slices": Variant(torch_loop, note="one clone and three slices per step")},
    bytes_moved=lambda x: 8 * x["x"].numel() * x["steps"],
    items=lambda x: x["steps"],
    items_unit="steps",
    requires=Requires(cuda=True),
)

if __name__ == "__main__":
    main(EXAMPLE)

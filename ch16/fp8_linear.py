"""FP8 linear layers for inference: bf16 weights and activations vs e4m3 through `torch._scaled_mm`.

A decode step at batch 32 multiplies a few dozen token rows by every weight matrix: it is bound by reading the
weights, so storing them in e4m3 (1 byte) halves the bytes; a prefill is bound by FLOPs, and Hopper's tensor
cores run e4m3 at twice the bf16 rate. Weights are quantized once, offline, with one scale per output channel
(amax of the row / 448, e4m3's largest value); activations are quantized on the fly with one scale per token
(row), and `torch._scaled_mm` (cuBLASLt) applies both scales to the fp32 accumulator and writes bf16.
`fp8_tensorwise` uses one scale per tensor for both instead: cheaper to compute, coarser.

Verification: FP8 is not bf16. e4m3 keeps 3 mantissa bits (a relative rounding of up to 2^-4 on each operand),
so outputs differ from the bf16 layer by a few percent of their scale; the tolerance below (rtol 0.1,
atol 0.25 on outputs of unit scale; whole-output relative L2 error at most 4 x rtol) accepts that and nothing
worse. What the rounding does to a whole model's logits is `python -m ch16.fp8_inference` (top-1 agreement,
logit error, and the decode/prefill step times at the 8B config).

Distributions (of the activations, quantized on the fly; the weights take the inverse scale, so outputs
stay of unit scale): `normal`; `large` (x 1000: far past e4m3's 448, so a cast without a scale, or a scale
calibrated once on unit-scale data, gives NaN); `tiny` (x 1e-3: below e4m3's smallest normal, 2^-6, and
mostly below its smallest subnormal, 2^-9, so without a scale nearly every value flushes to 0).

Bound (full: 32 tokens x 4096 -> 14336, the 8B MLP's gate projection at decode batch 32): weights 117 MB in
bf16, 59 MB in e4m3: ~25 vs ~12 us at ~4.8 TB/s, plus the activation's quantization (a few tiny kernels,
~10 us of launches in eager mode, which eats much of the saving at this size). GPU: e4m3 `_scaled_mm` needs sm_89+.
"""
import torch
import torch.nn.functional as F
from torch import nn

from harness import Example, Requires, Variant, main

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
SHAPES = {"tiny": (16, 64, 128), "small": (32, 2048, 8192), "full": (32, 4096, 14336)}  # (tokens, in, out)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """e4m3 values and one fp32 scale per row (rows, 1): the row's largest magnitude lands on 448."""
    scale = x.abs().amax(-1, keepdim=True).float().clamp(min=1e-12) / E4M3_MAX
    return (x.float() / scale).to(E4M3), scale


def quantize_tensor(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = x.abs().amax().float().clamp(min=1e-12) / E4M3_MAX
    return (x.float() / scale).to(E4M3), scale


def fp8_matmul(x: torch.Tensor, w8: torch.Tensor, w_scale: torch.Tensor, rowwise: bool = True) -> torch.Tensor:
    """x (tokens, in) bf16 @ w8 (out, in) e4m3 ^T with w_scale (1, out) rowwise or () tensorwise -> bf16."""
    x8, x_scale = quantize_rows(x) if rowwise else quantize_tensor(x)
    return torch._scaled_mm(x8, w8.t(), scale_a=x_scale, scale_b=w_scale, out_dtype=x.dtype)


class Fp8Linear(nn.Module):
    """A drop-in for a bias-free nn.Linear whose weight is stored in e4m3 (per-channel or per-tensor scales)."""

    def __init__(self, linear: nn.Linear, rowwise: bool = True):
        super().__init__()
        assert linear.bias is None, "the engine's linear layers have no bias"
        self.rowwise = rowwise
        w8, scale = quantize_rows(linear.weight.detach()) if rowwise else quantize_tensor(linear.weight.detach())
        self.register_buffer("weight8", w8)
        self.register_buffer("scale", scale.t().contiguous() if rowwise else scale)  # (1, out): one per column of C
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = fp8_matmul(x.reshape(-1, self.in_features), self.weight8, self.scale, self.rowwise)
        return y.view(*x.shape[:-1], self.out_features)


ACTIVATION_SCALE = {"normal": 1.0, "large": 1e3, "tiny": 1e-3}


def setup(size, device, seed, dist="normal"):
    m, k, n = SHAPES[size]
    g = torch.Generator(device=device).manual_seed(seed)
    x = (torch.randn(m, k, device=device, generator=g) * ACTIVATION_SCALE[dist]).to(torch.bfloat16)
    # outputs of unit scale in every distribution (the weights take the inverse of the activations' scale), so
    # the tolerance's atol means the same in each
    w = (torch.randn(n, k, device=device, generator=g) * k ** -0.5 / ACTIVATION_SCALE[dist]).to(torch.bfloat16)
    w8_rows, s_rows = quantize_rows(w)  # offline, as a deployed model stores its weights
    w8_tensor, s_tensor = quantize_tensor(w)
    return {"x": x, "w": w, "w8_rows": w8_rows, "scale_rows": s_rows.t().contiguous(),
            "w8_tensor": w8_tensor, "scale_tensor": s_tensor}


FP8 = Requires(cuda=True, min_capability=(8, 9))
EXAMPLE = Example(
    title="Linear layer for inference: bf16 vs FP8 e4m3 weights and activations (torch._scaled_mm)",
    setup=setup,
    baseline=lambda inp: F.linear(inp["x"], inp["w"]),
    baseline_name="bf16_linear",
    optimized={
        "fp8_rowwise": Variant(lambda inp: fp8_matmul(inp["x"], inp["w8_rows"], inp["scale_rows"], True),
                               note="per-token activation scales, per-channel weight scales"),
        "fp8_tensorwise": Variant(lambda inp: fp8_matmul(inp["x"], inp["w8_tensor"], inp["scale_tensor"], False),
                                  note="one scale per tensor for activations and weights"),
    },
    flops=lambda inp: 2 * inp["x"].shape[0] * inp["w"].numel(),
    flops_dtype="bf16",
    bytes_moved=lambda inp: inp["w"].numel() * 2 + inp["x"].numel() * 2 + inp["x"].shape[0] * inp["w"].shape[0] * 2,
    tolerance=(0.1, 0.25),  # e4m3 rounding of both operands: see the docstring
    distributions=tuple(ACTIVATION_SCALE),
    requires=FP8,  # the lesson is the GPU's FP8 path (tests/test_ch16_examples.py checks the numbers on a CPU)
)

if __name__ == "__main__":
    main(EXAMPLE)

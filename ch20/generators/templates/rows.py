"""Search template: row reductions in Triton: row sum, log-softmax, and scaled, causally masked softmax.

Two shapes of kernel, as in the softmax template: "single" holds a whole row in registers (one read, one
write), "looped" streams it in BLOCK_N-wide pieces (an online max and sum for the softmaxes, then a
second pass that writes: one more read, no register limit on the row). The log-softmax is
x - max - log(sum(exp(x - max))), never log(softmax(x)), which underflows to -inf. The masked softmax
applies the scale and the causal mask (column > row's position) in registers, so the masked scores are
never written. Rows wider than 16384 are always streamed (a 32768-wide float32 row in registers would
spill). Floor: one read and one write of the matrix (row sum: one read). Knobs: mode, num_warps, rows per
program, BLOCK_N.
"""
from __future__ import annotations

# The same knobs as the softmax template: the kernels below take the same two shapes.
from ch20.generators.templates.softmax import PLAIN, label, space, valid  # noqa: F401 (the template interface)

HEAD = '''"""Triton {what} from the search template: {label}."""
import torch
import triton
import triton.language as tl
from torch import nn

MODE = "{mode}"
NUM_WARPS = {num_warps}
ROWS = {rows}          # rows per program
BLOCK_N = {block_n}    # columns per step of the looped kernel
MAX_ROW = 16384        # "single" holds a row in registers only up to this width; wider rows are streamed
'''

ROW_SUM = '''

@triton.jit
def row_sum_kernel(x_ptr, y_ptr, n_rows, n_cols, stride, BLOCK: tl.constexpr, ROWS: tl.constexpr):
    for r in range(ROWS):
        row = tl.program_id(0) * ROWS + r
        acc = tl.zeros([BLOCK], tl.float32)          # BLOCK partial sums, folded once at the end
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            acc += tl.load(x_ptr + row.to(tl.int64) * stride + cols, mask=(cols < n_cols) & (row < n_rows),
                           other=0.0).to(tl.float32)
        tl.store(y_ptr + row, tl.sum(acc, axis=0).to(y_ptr.dtype.element_ty), mask=row < n_rows)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x2 = x.reshape(-1, x.shape[-1]).contiguous()
        n_rows, n_cols = x2.shape
        y = torch.empty(n_rows, device=x.device, dtype=x.dtype)
        single = MODE == "single" and n_cols <= MAX_ROW
        block = triton.next_power_of_2(n_cols) if single else BLOCK_N
        row_sum_kernel[(triton.cdiv(n_rows, ROWS),)](x2, y, n_rows, n_cols, x2.stride(0), BLOCK=block, ROWS=ROWS,
                                                     num_warps=NUM_WARPS)
        return y.reshape(x.shape[:-1])
'''

# The softmax family's kernels with two hooks: LOAD (scale and mask a loaded piece) and OUT (the value stored).
SOFTMAX_KERNELS = '''

@triton.jit
def load_scores(x_row, cols, n_cols, row_ok, pos, scale, CAUSAL: tl.constexpr):
    x = tl.load(x_row + cols, mask=(cols < n_cols) & row_ok, other=-float("inf")).to(tl.float32)
    if CAUSAL:  # scale, then mask the future: column > the row's position in its sequence
        x = tl.where(cols > pos, -float("inf"), x * scale)
    return x


@triton.jit
def finish(x, row_max, total, LOG: tl.constexpr):
    if LOG:
        return x - row_max - tl.log(total)
    return tl.exp(x - row_max) / total


@triton.jit
def row_softmax_single(x_ptr, y_ptr, n_rows, n_cols, stride, seq, scale, BLOCK: tl.constexpr, ROWS: tl.constexpr,
                       CAUSAL: tl.constexpr, LOG: tl.constexpr):
    cols = tl.arange(0, BLOCK)
    for r in range(ROWS):
        row = tl.program_id(0) * ROWS + r
        mask = (cols < n_cols) & (row < n_rows)
        x = load_scores(x_ptr + row.to(tl.int64) * stride, cols, n_cols, row < n_rows, row % seq, scale, CAUSAL)
        row_max = tl.max(x, axis=0)                  # subtract the row max: exp never overflows
        total = tl.sum(tl.exp(x - row_max), axis=0)
        tl.store(y_ptr + row.to(tl.int64) * stride + cols, finish(x, row_max, total, LOG).to(y_ptr.dtype.element_ty),
                 mask=mask)


@triton.jit
def row_softmax_looped(x_ptr, y_ptr, n_rows, n_cols, stride, seq, scale, BLOCK: tl.constexpr, ROWS: tl.constexpr,
                       CAUSAL: tl.constexpr, LOG: tl.constexpr):
    for r in range(ROWS):
        row = tl.program_id(0) * ROWS + r
        row_ok = row < n_rows
        x_row = x_ptr + row.to(tl.int64) * stride
        m = tl.full([BLOCK], -float("inf"), tl.float32)
        s = tl.zeros([BLOCK], tl.float32)
        for start in range(0, n_cols, BLOCK):      # online max and sum, lane by lane
            x = load_scores(x_row, start + tl.arange(0, BLOCK), n_cols, row_ok, row % seq, scale, CAUSAL)
            m_new = tl.maximum(m, x)
            rescale = tl.where(m_new == -float("inf"), 0.0, tl.exp(m - m_new))
            s = s * rescale + tl.where(x == -float("inf"), 0.0, tl.exp(x - m_new))
            m = m_new
        row_max = tl.max(m, axis=0)
        total = tl.sum(tl.where(m == -float("inf"), 0.0, s * tl.exp(m - row_max)), axis=0)
        for start in range(0, n_cols, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            x = load_scores(x_row, cols, n_cols, row_ok, row % seq, scale, CAUSAL)
            tl.store(y_ptr + row.to(tl.int64) * stride + cols,
                     finish(x, row_max, total, LOG).to(y_ptr.dtype.element_ty), mask=(cols < n_cols) & row_ok)


def row_softmax(x, scale=1.0, causal=False, log=False):
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    y = torch.empty_like(x2)
    n_rows, n_cols = x2.shape
    seq = x.shape[-2] if causal else 1
    single = MODE == "single" and n_cols <= MAX_ROW
    kernel = row_softmax_single if single else row_softmax_looped
    block = triton.next_power_of_2(n_cols) if single else BLOCK_N
    kernel[(triton.cdiv(n_rows, ROWS),)](x2, y, n_rows, n_cols, x2.stride(0), seq, scale, BLOCK=block, ROWS=ROWS,
                                         CAUSAL=causal, LOG=log, num_warps=NUM_WARPS)
    return y.reshape(x.shape)
'''

LOG_SOFTMAX_MODEL = '''

class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return row_softmax(x, log=True)
'''

MASKED_SOFTMAX_MODEL = '''

class ModelNew(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, scores):
        return row_softmax(scores, scale=self.scale, causal=True)
'''

FAMILIES = {"reduction": ("row sum", ROW_SUM), "log_softmax": ("log-softmax", SOFTMAX_KERNELS + LOG_SOFTMAX_MODEL),
            "softmax_fused": ("scaled causal softmax", SOFTMAX_KERNELS + MASKED_SOFTMAX_MODEL)}


def render(params: dict, problem) -> str:
    what, body = FAMILIES[problem.family]
    return HEAD.format(what=what, label=label(params), **params) + body

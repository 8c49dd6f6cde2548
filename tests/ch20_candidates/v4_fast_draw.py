"""Known residual, quantified (v4): the verifier's own per-call work (drawing the call's inputs from its seed,
digesting the output) runs inside the candidate's timed batch, in the candidate's process, so the
candidate can replace it with a faster equivalent: the same inputs bit for bit (same seed, same
generator calls), without the per-call inspect.signature and the torch.device function mode, which cost
nothing on the device but dominate a tiny CPU call. The softmax itself is the reference's."""
import torch
from torch import nn

import ch20.problem as _problem

_original = _problem.draw_inputs


def _fast_draw(get_inputs, size, dtype, seed, distribution, device="cpu"):
    if torch.device(device).type != "cpu":
        return _original(get_inputs, size, dtype, seed, distribution, device)
    torch.manual_seed(seed)
    out = []
    for x in get_inputs(size):   # the problem's get_inputs takes the size: no signature inspection
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            gen = torch.Generator().manual_seed(seed ^ 0x5EED)
            x = _problem.apply_distribution(x.float(), distribution, gen).to(dtype).contiguous()
        out.append(x)
    return out


_problem.draw_inputs = _fast_draw   # the child's Runner imports it after this module has run


class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)

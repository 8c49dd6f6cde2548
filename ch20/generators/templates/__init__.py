"""Parameterised Triton kernels, one module per problem family.

Each module has PLAIN (the straightforward starting configuration), space(device_type) (the choices for
each knob), valid(params, device_type), label(params) and render(params, problem) -> candidate source.
"""
from __future__ import annotations

from ch20.generators.templates import attention, elementwise, layernorm, matmul, norms, rows, softmax, swiglu

BY_FAMILY = {"softmax": softmax, "matmul": matmul, "matmul_bias_relu": matmul, "layernorm": layernorm,
             "elementwise": elementwise, "activation": elementwise, "activation_fusion": elementwise,
             "rmsnorm": norms, "fused_norm": norms, "reduction": rows, "log_softmax": rows, "softmax_fused": rows,
             "swiglu": swiglu, "attention": attention}


def template_for(family: str):
    if family not in BY_FAMILY:
        raise LookupError(f"no search template for the {family!r} family; templates exist for "
                          f"{', '.join(sorted(BY_FAMILY))}")
    return BY_FAMILY[family]

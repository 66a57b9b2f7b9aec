"""Multiply-accumulate (MAC) counting that also sees the fused CPU kernels.

torch's ``FlopCounterMode`` has formulas for the CUDA attention kernels but not for
``aten._scaled_dot_product_flash_attention_for_cpu``, so on CPU it silently drops all
attention work (more than half of CvT's MACs at detection resolutions), nor for oneDNN's
inference linear ``mkldnn._linear_pointwise`` (see ``layers/fused_linear.py``).
"""
import math
from typing import Dict

import torch
from torch.utils.flop_counter import FlopCounterMode

from .layers.fused_linear import ONEDNN_LINEAR

aten = torch.ops.aten
CPU_ATTENTION_OPS = (aten._scaled_dot_product_flash_attention_for_cpu,)


def _attention_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    # q: (B, H, Nq, d), k: (B, H, Nk, d), v: (B, H, Nk, dv); two batched matmuls.
    b, h, nq, d = query_shape
    nk, dv = key_shape[2], value_shape[3]
    return 2 * b * h * nq * nk * (d + dv)


def _linear_flops(input_shape, weight_shape, *args, **kwargs) -> int:
    # input: (..., K), weight: (N, K).
    return 2 * math.prod(input_shape[:-1]) * weight_shape[0] * weight_shape[1]


def mac_counter() -> FlopCounterMode:
    """torch's ``FlopCounterMode`` that also counts the fused CPU kernels.

    It records FLOPs (2 per MAC) per op and per module (``'Global'`` and the module
    names); :func:`attention_flops` picks the attention share out of one of its entries.
    """
    mapping = {op: _attention_flops for op in CPU_ATTENTION_OPS}
    if ONEDNN_LINEAR is not None:
        mapping[ONEDNN_LINEAR] = _linear_flops
    return FlopCounterMode(display=False, custom_mapping=mapping)


def attention_flops(per_op: Dict) -> int:
    """FLOPs of the fused attention kernels (CPU and GPU) in an ``{op: flops}`` dict."""
    return sum(v for op, v in per_op.items() if 'scaled_dot_product' in str(op))


@torch.no_grad()
def count_macs(model: torch.nn.Module, inputs: torch.Tensor) -> Dict[str, float]:
    """Count the MACs of ``model(inputs)``.

    Args:
        model (nn.Module): The model.
        inputs (Tensor): Its input.

    Returns:
        dict: ``total``, ``attention`` (q k^T and attn v) and ``other`` MACs.
    """
    counter = mac_counter()
    with counter:
        model(inputs)
    attention = attention_flops(counter.get_flop_counts()['Global']) / 2
    total = counter.get_total_flops() / 2
    return dict(total=total, attention=attention, other=total - attention)

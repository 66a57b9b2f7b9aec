from contextlib import contextmanager
from typing import Callable

import torch
import torch.nn.functional as F

# Callbacks of observe_attention; empty (and free) outside analysis tools.
_OBSERVERS = []


@contextmanager
def observe_attention(observer: Callable):
    """Call ``observer(q, k, v, scale)`` before every :func:`scaled_attention` in the block.

    For analysis (e.g. ``tools/analysis/visualize_attention.py``): the fused kernel never
    forms the attention matrix, so an observer recomputes the rows it wants from q and k.

    Args:
        observer (Callable): Receives the (B, heads, N, d) q, k, v and the score scale.
    """
    _OBSERVERS.append(observer)
    try:
        yield
    finally:
        _OBSERVERS.remove(observer)


def scaled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T * scale) v without materialising the full score matrix.

    The single call site for attention in the toolkit: swap the kernel here.

    Args:
        q (Tensor): (B, heads, Nq, d).
        k (Tensor): (B, heads, Nk, d).
        v (Tensor): (B, heads, Nk, d).
        scale (float): Explicit score scale. CvT uses the full stage width, not the head
            width, so SDPA's default ``d ** -0.5`` would be wrong.
        dropout_p (float): Attention dropout probability (training only).

    Returns:
        Tensor: (B, heads, Nq, d).
    """
    for observer in _OBSERVERS:
        observer(q, k, v, scale)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)

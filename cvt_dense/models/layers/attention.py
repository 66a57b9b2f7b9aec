"""The toolkit's one attention call, its head layout, and what analysis tools may observe.

Every attention layer of every backbone calls :func:`scaled_attention` (swap the kernel
here). A layer that passes an :class:`AttentionLayout` says where its queries and keys sit
on the input image; the analysis tools (attention pictures, locality) read that layout
from an observer and need nothing else from the backbone.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .tokens import Grid

# (callback, wants the layout) pairs of observe_attention; empty (and free) outside analysis.
_OBSERVERS = []


@dataclass(frozen=True)
class PixelGeometry:
    """Where the cells of a token grid sit on the input image (the same along y and x).

    Cell ``i`` of an axis is centred on the input coordinate ``offset + stride * i``, in a
    frame where input pixel ``p`` spans ``[p, p + 1)`` (so the input itself is stride 1,
    offset 0.5).

    Args:
        stride (float): Input pixels between neighbouring cells.
        offset (float): Input coordinate of the centre of cell 0.
    """

    stride: float = 1.
    offset: float = .5

    def after_conv(self, kernel_size: int, stride: int, padding: int,
                   dilation: int = 1) -> 'PixelGeometry':
        """The geometry of the output cells of a conv applied to this grid."""
        centre = dilation * (kernel_size - 1) / 2 - padding
        return PixelGeometry(self.stride * stride, self.offset + self.stride * centre)


@dataclass(frozen=True)
class TokenGrid:
    """The tokens of one side (queries or keys) of an attention call.

    Args:
        size (tuple): (rows, cols) of the spatial tokens, in row-major order.
        geometry (PixelGeometry): Where those cells sit on the input.
        prefix_tokens (int): Non-spatial tokens (cls) before the spatial ones.
    """

    size: Grid
    geometry: PixelGeometry
    prefix_tokens: int = 0


@dataclass(frozen=True)
class AttentionLayout:
    """What an attention call tells its observers besides q, k and v.

    Args:
        module (nn.Module): The attention layer making the call.
        queries (TokenGrid): Where the query tokens are.
        keys (TokenGrid): Where the key tokens are.
        positional (tuple, optional): A gated positional branch mixed into the output
            (ConViT's GPSA): its factors (P_y (heads, H, H), P_x (heads, W, W)), the
            positional attention of the H x W grid being ``kron(P_y, P_x)``.
        gate (Tensor, optional): (heads,) weight of the positional branch in the mix
            ``(1 - gate) content + gate positional``.
    """

    module: nn.Module
    queries: TokenGrid
    keys: TokenGrid
    positional: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
    gate: Optional[torch.Tensor] = None


@contextmanager
def observe_attention(observer: Callable, with_layout: bool = False):
    """Call ``observer`` before every :func:`scaled_attention` in the block.

    For analysis (attention pictures, locality): the fused kernel never forms the attention
    matrix, so an observer recomputes the rows it wants from q and k.

    Args:
        observer (Callable): Called as ``observer(q, k, v, scale)`` with the (B, heads, N, d)
            tensors and the score scale, and the call's :class:`AttentionLayout` (or None)
            as a fifth argument when ``with_layout``.
        with_layout (bool): Pass the layout too.
    """
    entry = (observer, with_layout)
    _OBSERVERS.append(entry)
    try:
        yield
    finally:
        _OBSERVERS.remove(entry)


def attention_observed() -> bool:
    """Whether an observer is active: layers build their :class:`AttentionLayout` only then."""
    return bool(_OBSERVERS)


def scaled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                     dropout_p: float = 0.0, layout: Optional[AttentionLayout] = None
                     ) -> torch.Tensor:
    """softmax(q k^T * scale) v without materialising the full score matrix.

    The single call site for attention in the toolkit: swap the kernel here.

    Args:
        q (Tensor): (B, heads, Nq, d).
        k (Tensor): (B, heads, Nk, d).
        v (Tensor): (B, heads, Nk, d).
        scale (float): Explicit score scale. CvT uses the full stage width, not the head
            width, so SDPA's default ``d ** -0.5`` would be wrong.
        dropout_p (float): Attention dropout probability (training only).
        layout (AttentionLayout, optional): Where the tokens are, for observers; build it
            only when :func:`attention_observed`.

    Returns:
        Tensor: (B, heads, Nq, d).
    """
    for observer, with_layout in _OBSERVERS:
        if with_layout:
            observer(q, k, v, scale, layout)
        else:
            observer(q, k, v, scale)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)


def split_heads(x: torch.Tensor, num_heads: int, parts: int = 1) -> torch.Tensor:
    """(B, N, parts * C) -> (parts, B, heads, N, C / heads): e.g. q, k, v of one Linear."""
    batch, tokens, _ = x.shape
    return x.reshape(batch, tokens, parts, num_heads, -1).permute(2, 0, 3, 1, 4)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    return x.transpose(1, 2).flatten(2)

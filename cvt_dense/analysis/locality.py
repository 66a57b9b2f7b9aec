"""How far each attention head looks: the nonlocality of the ConViT paper, for any backbone.

The nonlocality of a head (d'Ascoli et al. 2021, arXiv 2103.10697, Sec. 4) is the mean
distance between a query and the keys it attends to,

    D = (1 / N) sum_q sum_k A_qk ||delta_qk||,

``N`` the number of queries, ``delta_qk`` the offset between the query's and the key's
position. It is measured here on the attention the model really uses, on the true
(rows, cols) grid of each input, through the toolkit's attention observer
(:func:`~cvt_dense.models.layers.observe_attention`): every attention layer passes an
:class:`~cvt_dense.models.layers.AttentionLayout` that says where its queries and keys sit
on the input, so a backbone that passes its layout needs nothing here.

- Distances are in input pixels between cell centres (:class:`PixelGeometry`), so that
  layers of different strides compare (CvT's stages, whose keys also sit on a grid twice as
  coarse as the queries); :attr:`LayerLocality.query_stride` converts to cells of the
  query grid (ConViT's patches, the paper's unit).
- Prefix tokens (cls) have no position: their query rows are left out (N counts the
  spatial queries), and attention to a prefix key adds no distance. That share of the
  attention is reported as :attr:`LayerLocality.prefix_share`.
- Content attention ``softmax(q k^T * scale)`` is recomputed from the observed q and k, a
  chunk of query rows at a time (at most ``max_chunk_elements`` scores at once), so memory
  stays bounded at detection sizes; the N x N matrix is never formed.
- A positional branch (ConViT's GPSA, ``kron(P_y, P_x)``) is measured from its factors,
  exactly: the attention mass of each row offset (a sum over ``P_y``) and of each column
  offset (over ``P_x``) are multiplied and weighted by the Euclidean norm of the
  (dy, dx) pair. The gated mix ``(1 - g) content + g positional`` is linear in the
  attention, and so is D.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch

from ..models.layers import AttentionLayout, TokenGrid, observe_attention

# Scores (and distances) held at once per chunk: 2^24 floats = 64 MiB per temporary.
DEFAULT_CHUNK_ELEMENTS = 1 << 24


@dataclass
class LayerLocality:
    """Nonlocality of one attention layer, per head, averaged over the measured images.

    Args:
        name (str): The layer's module name in the backbone (``blocks.3.attn``).
        query_stride (float): Input pixels between neighbouring query cells.
        content (Tensor): (heads,) nonlocality of the content attention, in pixels.
        prefix_share (Tensor): (heads,) attention of the spatial queries to prefix (cls)
            keys (0 without prefix tokens).
        positional (Tensor, optional): (heads,) nonlocality of the positional branch.
        gate (Tensor, optional): (heads,) weight of the positional branch in the mix.
        images (int): Images averaged over.
    """

    name: str
    query_stride: float
    content: torch.Tensor
    prefix_share: torch.Tensor
    positional: Optional[torch.Tensor] = None
    gate: Optional[torch.Tensor] = None
    images: int = 1

    @property
    def nonlocality(self) -> torch.Tensor:
        """(heads,) nonlocality of the attention the layer uses, in pixels: the gated mix
        where there is a positional branch, else the content attention."""
        if self.positional is None:
            return self.content
        return torch.lerp(self.content, self.positional, self.gate)

    def in_cells(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels -> cells of the query grid (ConViT: patches, the paper's unit)."""
        return pixels / self.query_stride


def cell_centres(grid: TokenGrid) -> Tuple[torch.Tensor, torch.Tensor]:
    """(rows,) and (cols,) input coordinates (float64) of the centres of a grid's cells."""
    stride, offset = grid.geometry.stride, grid.geometry.offset
    return tuple(offset + stride * torch.arange(side, dtype=torch.float64)
                 for side in grid.size)


def _spatial_positions(grid: TokenGrid) -> Tuple[torch.Tensor, torch.Tensor]:
    """(y, x) of every spatial token, row-major: (N,) each."""
    ys, xs = cell_centres(grid)
    return ys.repeat_interleave(len(xs)), xs.repeat(len(ys))


def _softmax_(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension in place (one chunk-sized buffer, not two)."""
    scores -= scores.amax(dim=-1, keepdim=True)
    scores.exp_()
    return scores.div_(scores.sum(dim=-1, keepdim=True))


def _distances(query_y: torch.Tensor, query_x: torch.Tensor, key_rows: torch.Tensor,
               key_cols: torch.Tensor, key_prefix: int) -> torch.Tensor:
    """(queries, key_prefix + rows * cols) distances from each query to each key of a
    row-major key grid; prefix keys have no position: 0, so attention to them adds nothing.

    ``sqrt(dy^2 + dx^2)`` from the (queries, rows) and (queries, cols) squares, written into
    the result in place: no other buffer of the result's size.
    """
    distance = torch.zeros(len(query_y), key_prefix + len(key_rows) * len(key_cols),
                           device=query_y.device)
    spatial = distance[:, key_prefix:].unflatten(1, (len(key_rows), len(key_cols)))
    torch.add((key_rows[None] - query_y[:, None]).square_()[:, :, None],
              (key_cols[None] - query_x[:, None]).square_()[:, None, :], out=spatial)
    spatial.sqrt_()
    return distance


def content_nonlocality(q: torch.Tensor, k: torch.Tensor, scale: float,
                        layout: AttentionLayout,
                        max_chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Nonlocality of ``softmax(q k^T * scale)`` per image and head, in chunks of query rows.

    Args:
        q (Tensor): (B, heads, Nq, d) queries, prefix tokens first.
        k (Tensor): (B, heads, Nk, d) keys, prefix tokens first.
        scale (float): The score scale of the attention call.
        layout (AttentionLayout): Where the queries and keys are.
        max_chunk_elements (int): Scores computed at once (memory bound).

    Returns:
        tuple: (B, heads) nonlocality in pixels, and (B, heads) share of the spatial
        queries' attention that goes to prefix keys; both float64.
    """
    query_prefix, key_prefix = layout.queries.prefix_tokens, layout.keys.prefix_tokens
    batch, heads, num_keys = k.shape[0], k.shape[1], k.shape[2]
    query_y, query_x, key_rows, key_cols = (
        t.to(q.device, torch.float32)
        for t in _spatial_positions(layout.queries) + cell_centres(layout.keys))
    num_queries = len(query_y)
    if (q.shape[2] != query_prefix + num_queries
            or num_keys != key_prefix + len(key_rows) * len(key_cols)):
        raise ValueError(f'{type(layout.module).__name__}: the layout says {query_prefix} + '
                         f'{layout.queries.size} queries and {key_prefix} + '
                         f'{layout.keys.size} keys, the call has {q.shape[2]} and {num_keys}')
    keys_t = k.float().transpose(-1, -2)
    rows = max(1, max_chunk_elements // (batch * heads * num_keys))
    distance_sum = torch.zeros(batch, heads, dtype=torch.float64, device=q.device)
    prefix_sum = torch.zeros_like(distance_sum)
    for start in range(0, num_queries, rows):
        stop = min(start + rows, num_queries)
        chunk = q[:, :, query_prefix + start:query_prefix + stop].float()
        attention = _softmax_(torch.matmul(chunk, keys_t).mul_(scale))
        distance = _distances(query_y[start:stop], query_x[start:stop], key_rows, key_cols,
                              key_prefix)
        # sum_r,k A[b, h, r, k] * distance[r, k] as one matrix-vector product.
        distance_sum += torch.mv(attention.view(batch * heads, -1),
                                 distance.view(-1)).view(batch, heads).double()
        if key_prefix:
            prefix_sum += attention[..., :key_prefix].sum((-1, -2)).double()
        del attention, distance
    return distance_sum / num_queries, prefix_sum / num_queries


def _offset_masses(factor: torch.Tensor, query_centres: torch.Tensor,
                   key_centres: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The distinct key-minus-query offsets of one axis and each head's attention mass on
    them: (U,) offsets and (heads, U) masses, summed over the axis' query cells."""
    offsets = key_centres.view(1, -1) - query_centres.view(-1, 1)  # (Lq, Lk), float64
    values, index = torch.unique(offsets, return_inverse=True)
    masses = torch.zeros(factor.shape[0], len(values), dtype=torch.float64)
    masses.index_add_(1, index.flatten(), factor.detach().double().cpu().flatten(1))
    return values, masses


def positional_nonlocality(layout: AttentionLayout,
                           max_chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> torch.Tensor:
    """Nonlocality of a positional branch ``kron(P_y, P_x)`` from its factors, exactly.

    ``sum_{q,k} P_y[qy, ky] P_x[qx, kx] ||(dy, dx)||`` groups by the offsets: it is
    ``sum_{dy, dx} m_y(dy) m_x(dx) sqrt(dy^2 + dx^2)`` with ``m_y(dy)`` the sum of ``P_y``
    over the (qy, ky) pairs at offset dy (likewise ``m_x``). Only the few distinct offsets
    of each axis are held, never the N x N matrix.

    Args:
        layout (AttentionLayout): With ``positional`` = (P_y (heads, Hq, Hk),
            P_x (heads, Wq, Wk)).
        max_chunk_elements (int): (dy, dx) norms computed at once.

    Returns:
        Tensor: (heads,) nonlocality in pixels, float64 (on the CPU).
    """
    p_y, p_x = layout.positional
    query_y, query_x = cell_centres(layout.queries)
    key_y, key_x = cell_centres(layout.keys)
    if p_y.shape[1:] != (len(query_y), len(key_y)) or p_x.shape[1:] != (len(query_x),
                                                                         len(key_x)):
        raise ValueError(f'{type(layout.module).__name__}: positional factors of shapes '
                         f'{tuple(p_y.shape)} and {tuple(p_x.shape)} do not fit query grid '
                         f'{layout.queries.size} and key grid {layout.keys.size}')
    offsets_y, masses_y = _offset_masses(p_y, query_y, key_y)
    offsets_x, masses_x = _offset_masses(p_x, query_x, key_x)
    total = torch.zeros(masses_y.shape[0], dtype=torch.float64)
    rows = max(1, max_chunk_elements // len(offsets_x))
    for start in range(0, len(offsets_y), rows):
        norms = torch.hypot(offsets_y[start:start + rows, None], offsets_x[None])
        total += torch.einsum('ha,ab,hb->h', masses_y[:, start:start + rows], norms, masses_x)
    return total / (len(query_y) * len(query_x))


def _layer_of(q, k, scale, layout: AttentionLayout, name: str,
              max_chunk_elements: int) -> LayerLocality:
    """One attention call's locality, summed (not yet averaged) over its images."""
    content, prefix_share = content_nonlocality(q, k, scale, layout, max_chunk_elements)
    images = q.shape[0]
    positional = gate = None
    if layout.positional is not None:
        # Depends on the grid only; times the images, as the content sums.
        positional = positional_nonlocality(layout, max_chunk_elements) * images
        gate = layout.gate.detach().double().cpu()
    return LayerLocality(name, float(layout.queries.geometry.stride), content.sum(0).cpu(),
                         prefix_share.sum(0).cpu(), positional, gate, images)


def _add(total: Optional[LayerLocality], layer: LayerLocality) -> LayerLocality:
    if total is None:
        return layer
    if total.name != layer.name:
        raise RuntimeError(f'attention layers changed between images: {total.name} then '
                           f'{layer.name}')
    total.content = total.content + layer.content
    total.prefix_share = total.prefix_share + layer.prefix_share
    if layer.positional is not None:
        total.positional = total.positional + layer.positional
    total.images += layer.images
    return total


@torch.no_grad()
def measure_locality(backbone: torch.nn.Module,
                     images: Union[torch.Tensor, Sequence[torch.Tensor]],
                     max_chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> List[LayerLocality]:
    """Nonlocality and gates of every attention layer, averaged over the images.

    The backbone runs in eval mode (its training mode is restored afterwards), each batch
    on its own grid.

    Args:
        backbone (nn.Module): A backbone whose attention layers pass an
            :class:`~cvt_dense.models.layers.AttentionLayout` to ``scaled_attention``.
        images (Tensor | Sequence[Tensor]): A (B, C, H, W) batch of preprocessed images,
            or several batches of different sizes.
        max_chunk_elements (int): Scores computed at once (memory bound).

    Returns:
        list[LayerLocality]: One per attention layer, in forward order.

    Raises:
        NotImplementedError: The backbone makes no attention call, or one without a layout.
    """
    batches = [images] if isinstance(images, torch.Tensor) else list(images)
    if not batches or any(batch.dim() != 4 for batch in batches):
        raise ValueError(f'expected (B, C, H, W) image batches, got '
                         f'{[tuple(batch.shape) for batch in batches]}')
    kind = type(backbone).__name__
    names = {module: name for name, module in backbone.named_modules()}
    totals: List[Optional[LayerLocality]] = []
    was_training = backbone.training
    backbone.eval()
    try:
        for batch in batches:
            layers = []

            def observer(q, k, v, scale, layout):
                if layout is None:
                    raise NotImplementedError(
                        f'locality analysis is not supported for {kind}: an attention layer '
                        f'passes no AttentionLayout to scaled_attention')
                layers.append(_layer_of(q, k, scale, layout, names.get(layout.module, '?'),
                                        max_chunk_elements))

            with observe_attention(observer, with_layout=True):
                backbone(batch)
            if not layers:
                raise NotImplementedError(f'locality analysis is not supported for {kind}: '
                                          f'it makes no scaled_attention call')
            if totals and len(layers) != len(totals):
                raise RuntimeError(f'{kind} made {len(layers)} attention calls on a '
                                   f'{tuple(batch.shape)} batch, {len(totals)} before')
            totals = [_add(total, layer) for total, layer
                      in zip(totals or [None] * len(layers), layers)]
    finally:
        backbone.train(was_training)
    for total in totals:
        total.content = total.content / total.images
        total.prefix_share = total.prefix_share / total.images
        if total.positional is not None:
            total.positional = total.positional / total.images
    return totals

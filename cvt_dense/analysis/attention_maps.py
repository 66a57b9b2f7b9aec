"""Where one query pixel attends, layer by layer, and pictures of it.

Backbone-agnostic: while :func:`query_attention` runs the backbone, an observer on the
toolkit's attention call (:func:`cvt_dense.models.layers.observe_attention`) receives each
attention layer's q, k and :class:`~cvt_dense.models.layers.AttentionLayout` (where its
queries and keys sit). What is drawn is the backbone's ``attention_picture``:

- ``'content'`` (CvT): the fused kernels never form the attention matrix, so the query's
  row ``softmax(q_i k^T * scale)`` is recomputed for every head; everything else keeps the
  fused path;
- ``'positional'`` (ConViT): the positional attention of each layer that has one (GPSA)
  and its gate ``sigmoid(g)``, the paper's locality analysis; it depends on the weights and
  the grid only.

A new backbone whose attention layers pass their layout needs nothing here.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..models import DenseBackbone
from ..models.layers import AttentionLayout, observe_attention


@dataclass
class LayerAttention:
    """The attention of one query token in one attention layer.

    Args:
        name (str): The layer's module name in the backbone (``stage2.blocks.9.attn``).
        query_grid (tuple): (h, w) token grid of the queries.
        query_cell (tuple): (row, col) of the query in that grid.
        maps (Tensor): (heads, kh, kw) attention to the spatial keys.
        cls (Tensor, optional): (heads,) attention to the cls token, if the layer has one.
        gate (Tensor, optional): (heads,) ``sigmoid(g)``, the weight of ``maps`` in a
            ConViT GPSA layer (the rest goes to content attention).
    """
    name: str
    query_grid: Tuple[int, int]
    query_cell: Tuple[int, int]
    maps: torch.Tensor
    cls: Optional[torch.Tensor] = None
    gate: Optional[torch.Tensor] = None

    @property
    def row_sums(self) -> torch.Tensor:
        """(heads,) total attention of the query: 1 for a softmax row."""
        total = self.maps.flatten(1).sum(1)
        return total if self.cls is None else total + self.cls


def _query_cell(layout: AttentionLayout, input_size: Sequence[int],
                point: Sequence[float]) -> Tuple[int, int]:
    """The query cell of ``point`` = (x, y): the grid spans the (padded) input evenly."""
    (h, w), (height, width) = layout.queries.size, input_size
    return min(int(point[1] * h / height), h - 1), min(int(point[0] * w / width), w - 1)


def _content_row(q, k, scale, layout: AttentionLayout, cell, name: str) -> LayerAttention:
    prefix = layout.queries.prefix_tokens
    index = prefix + cell[0] * layout.queries.size[1] + cell[1]
    row = ((q[0, :, index:index + 1] @ k[0].transpose(-1, -2)) * scale).softmax(-1)[:, 0]
    key_prefix = layout.keys.prefix_tokens
    maps = row[:, key_prefix:].reshape(-1, *layout.keys.size).float()
    return LayerAttention(name, layout.queries.size, cell, maps,
                          row[:, 0].float() if key_prefix else None)


def _positional_row(layout: AttentionLayout, cell, name: str) -> LayerAttention:
    p_y, p_x = layout.positional
    maps = p_y[:, cell[0], :, None] * p_x[:, cell[1], None, :]  # (heads, H, W)
    return LayerAttention(name, layout.queries.size, cell, maps.float(),
                          gate=layout.gate.float())


@torch.no_grad()
def query_attention(backbone: torch.nn.Module, inputs: torch.Tensor,
                    point: Sequence[float]) -> List[LayerAttention]:
    """Attention of the query pixel ``point`` = (x, y) in every attention layer (of the
    backbone's ``attention_picture`` kind, see the module doc).

    Args:
        backbone (nn.Module): A :class:`~cvt_dense.models.DenseBackbone`.
        inputs (Tensor): (1, C, H, W) preprocessed image.
        point (Sequence[float]): (x, y) in ``inputs``' pixels.

    Returns:
        list[LayerAttention]: One per attention layer, in forward order.

    Raises:
        NotImplementedError: Not a DenseBackbone, or its attention layers pass no layout.
    """
    kind = type(backbone).__name__
    if not isinstance(backbone, DenseBackbone):
        raise NotImplementedError(f'attention visualisation is not supported yet for {kind}: '
                                  f'it needs a cvt_dense DenseBackbone whose attention layers '
                                  f'pass an AttentionLayout to scaled_attention')
    if inputs.dim() != 4 or inputs.shape[0] != 1:
        raise ValueError(f'expected one image (1, C, H, W), got {tuple(inputs.shape)}')
    check_point(point, inputs.shape[-2:])
    names = {module: name for name, module in backbone.named_modules()}
    input_size = backbone.padded_size(inputs.shape[-2:])
    positional = backbone.attention_picture == 'positional'
    records, layouts = [], []

    def observer(q, k, v, scale, layout):
        layouts.append(layout)
        if layout is None or (positional and layout.positional is None):
            return
        cell = _query_cell(layout, input_size, point)
        name = names[layout.module]
        records.append(_positional_row(layout, cell, name) if positional
                       else _content_row(q, k, scale, layout, cell, name))

    with observe_attention(observer, with_layout=True):
        backbone.eval()(inputs)
    if not layouts or any(layout is None for layout in layouts):
        raise NotImplementedError(f'attention visualisation is not supported yet for {kind}: '
                                  f'its attention layers do not pass an AttentionLayout to '
                                  f'scaled_attention')
    return records


def check_point(point: Sequence[float], size: Sequence[int]) -> None:
    """Raise unless ``point`` = (x, y) lies in an image of ``size`` = (H, W)."""
    h, w = size
    if not (0 <= point[0] < w and 0 <= point[1] < h):
        raise ValueError(f'query point (x={point[0]:g}, y={point[1]:g}) is outside the '
                         f'{w}x{h} (width x height) image')


def last_layer_per_stage(layers: Sequence[LayerAttention]) -> List[LayerAttention]:
    """The last attention layer of each stage (the first component of the module name).

    Positional layers (ConViT's GPSA, one stage of blocks) are all kept: the locality
    analysis compares them.
    """
    if any(layer.gate is not None for layer in layers):
        return list(layers)
    last = {}
    for layer in layers:
        last[layer.name.split('.')[0]] = layer
    return list(last.values())


def _overlay(ax, image, attention: torch.Tensor, input_size, point, title: str):
    h, w = image.shape[:2]
    # Key maps cover the (possibly padded) model input: scale them to it, then crop.
    heat = F.interpolate(attention[None, None], size=tuple(input_size), mode='nearest')[0, 0]
    ax.imshow(image)
    ax.imshow(heat[:h, :w].numpy(), cmap='jet', alpha=0.5)
    ax.plot(*point, marker='+', color='white', markersize=14, markeredgewidth=2)
    ax.set_title(title, fontsize=8)
    ax.axis('off')


def draw_attention(image, layers: Sequence[LayerAttention], point, input_size,
                   out_file: str, per_head: bool = False) -> str:
    """Draw the query's attention of each layer over the image (one panel per layer, or
    per head of one layer with ``per_head``); write a PNG.

    Args:
        image (ndarray): (H, W, 3) RGB image.
        layers (Sequence[LayerAttention]): Layers to draw (one layer if ``per_head``).
        point (Sequence[float]): (x, y) of the query, marked in every panel.
        input_size (tuple): (H, W) of the model input (the image plus padding).
        out_file (str): Output PNG.
        per_head (bool): Draw each head of ``layers[0]`` instead of the head mean.

    Returns:
        str: ``out_file``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = []
    for layer in layers:
        cls, gate = layer.cls, layer.gate
        if per_head:
            panels += [(f'{layer.name} head {i}' + (f', cls {cls[i]:.2f}' if cls is not None
                                                    else '')
                        + (f', gate {gate[i]:.2f}' if gate is not None else ''),
                        layer.maps[i])
                       for i in range(layer.maps.shape[0])]
        else:
            panels.append((f'{layer.name} (mean of {layer.maps.shape[0]} heads)'
                           + (f', cls {cls.mean():.2f}' if cls is not None else '')
                           + (f', gate {gate.mean():.2f}' if gate is not None else ''),
                           layer.maps.mean(0)))
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.2 * (len(panels) + 1), 3.4),
                             squeeze=False)
    axes = axes[0]
    axes[0].imshow(image)
    axes[0].plot(*point, marker='+', color='red', markersize=14, markeredgewidth=2)
    axes[0].set_title(f'query (x={point[0]:g}, y={point[1]:g})', fontsize=8)
    axes[0].axis('off')
    for ax, (title, attention) in zip(axes[1:], panels):
        _overlay(ax, image, attention, input_size, point, title)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file

"""Where one query pixel attends, layer by layer, and pictures of it.

CvT: the fused attention kernels never form the attention matrix; while
:func:`query_attention` runs the backbone, an observer on the toolkit's attention call
(:func:`cvt_dense.models.layers.observe_attention`) recomputes just the query's row,
``softmax(q_i k^T * scale)``, for every head. Everything else keeps the fused path.
ConViT: the positional attention of each GPSA layer and its gate ``sigmoid(g)`` (the
paper's locality analysis); they depend on the weights and the grid only.
Dispatch is on the backbone's class name (:data:`EXTRACTORS`); a new backbone adds one
function there.
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..models.layers import observe_attention


def _cvt_attention_class():
    # The one import of CvT's attention module; its path moves with the model code.
    from ..models.backbones.cvt_blocks import ConvAttention
    return ConvAttention


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


def _conv_out(size: int, conv: torch.nn.Conv2d, dim: int) -> int:
    return ((size + 2 * conv.padding[dim] - conv.dilation[dim] * (conv.kernel_size[dim] - 1)
             - 1) // conv.stride[dim] + 1)


@torch.no_grad()
def cvt_query_attention(backbone: torch.nn.Module, inputs: torch.Tensor,
                        point: Sequence[float]) -> List[LayerAttention]:
    """Attention rows of the query at ``point`` in every ``ConvAttention`` layer of a CvT.

    Args:
        backbone (nn.Module): A CvT, in eval mode.
        inputs (Tensor): (1, C, H, W) preprocessed image.
        point (Sequence[float]): (x, y) of the query in ``inputs``' pixels.

    Returns:
        list[LayerAttention]: One per attention layer, in forward order.
    """
    conv_attention = _cvt_attention_class()
    height, width = inputs.shape[-2:]
    x, y = point
    current, records = {}, []

    def enter(name):
        def hook(module, args):
            current.update(name=name, module=module, hw=tuple(args[1]))
        return hook

    def observer(q, k, v, scale):
        module, (h, w) = current['module'], current['hw']
        cell = (min(int(y * h / height), h - 1), min(int(x * w / width), w - 1))
        num_cls = int(module.with_cls_token)
        index = num_cls + cell[0] * w + cell[1]
        row = ((q[0, :, index:index + 1] @ k[0].transpose(-1, -2)) * scale).softmax(-1)[:, 0]
        conv = module.conv_proj_k.conv
        key_grid = (_conv_out(h, conv, 0), _conv_out(w, conv, 1))
        records.append(LayerAttention(
            current['name'], (h, w), cell, row[:, num_cls:].reshape(-1, *key_grid).float(),
            row[:, 0].float() if num_cls else None))

    handles = [m.register_forward_pre_hook(enter(name)) for name, m in backbone.named_modules()
               if isinstance(m, conv_attention)]
    try:
        with observe_attention(observer):
            backbone(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return records


@torch.no_grad()
def convit_positional_attention(backbone: torch.nn.Module, inputs: torch.Tensor,
                                point: Sequence[float]) -> List[LayerAttention]:
    """Positional attention of the query token at ``point`` in every GPSA layer of a ConViT,
    per head, with the gates ``sigmoid(g)`` that weigh it against content attention.

    Args:
        backbone (nn.Module): A ConViT.
        inputs (Tensor): (1, C, H, W) preprocessed image (only its size is used).
        point (Sequence[float]): (x, y) of the query in ``inputs``' pixels.

    Returns:
        list[LayerAttention]: One per GPSA layer, in forward order.
    """
    from ..models.backbones.convit_blocks import GPSA, positional_attention_factors
    patch_h, patch_w = backbone.patch_embed.patch_size
    # Zero padding at the bottom and right: pixel (x, y) lies in patch (y // p, x // p).
    grid = (math.ceil(inputs.shape[-2] / patch_h), math.ceil(inputs.shape[-1] / patch_w))
    cell = (int(point[1]) // patch_h, int(point[0]) // patch_w)
    records = []
    for name, module in backbone.named_modules():
        if isinstance(module, GPSA):
            p_y, p_x = positional_attention_factors(module.pos_proj.weight.float(), grid)
            maps = p_y[:, cell[0], :, None] * p_x[:, cell[1], None, :]  # (heads, H, W)
            records.append(LayerAttention(name, grid, cell, maps,
                                          gate=torch.sigmoid(module.gating_param).float()))
    return records


# Backbone class name -> function(backbone, inputs, point) -> list[LayerAttention].
EXTRACTORS: Dict[str, Callable] = {'CvT': cvt_query_attention,
                                   'ConViT': convit_positional_attention}


def query_attention(backbone: torch.nn.Module, inputs: torch.Tensor,
                    point: Sequence[float]) -> List[LayerAttention]:
    """Attention of the query pixel ``point`` = (x, y) in every attention layer.

    Args:
        backbone (nn.Module): A backbone with an entry in :data:`EXTRACTORS`.
        inputs (Tensor): (1, C, H, W) preprocessed image.
        point (Sequence[float]): (x, y) in ``inputs``' pixels.

    Returns:
        list[LayerAttention]: One per attention layer, in forward order.
    """
    kind = type(backbone).__name__
    if kind not in EXTRACTORS:
        raise NotImplementedError(f'attention visualisation is not supported yet for '
                                  f'{kind}; supported backbones: {sorted(EXTRACTORS)}')
    if inputs.dim() != 4 or inputs.shape[0] != 1:
        raise ValueError(f'expected one image (1, C, H, W), got {tuple(inputs.shape)}')
    check_point(point, inputs.shape[-2:])
    return EXTRACTORS[kind](backbone.eval(), inputs, point)


def check_point(point: Sequence[float], size: Sequence[int]) -> None:
    """Raise unless ``point`` = (x, y) lies in an image of ``size`` = (H, W)."""
    h, w = size
    if not (0 <= point[0] < w and 0 <= point[1] < h):
        raise ValueError(f'query point (x={point[0]:g}, y={point[1]:g}) is outside the '
                         f'{w}x{h} (width x height) image')


def last_layer_per_stage(layers: Sequence[LayerAttention]) -> List[LayerAttention]:
    """The last attention layer of each stage (the first component of the module name).

    ConViT has one stage of blocks: its GPSA layers are all kept (the locality analysis
    compares them).
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

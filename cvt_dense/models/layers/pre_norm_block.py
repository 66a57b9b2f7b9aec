"""The pre-norm transformer block every backbone builds around its own attention and MLP."""
from typing import Optional

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from timm.layers import DropPath
from torch import nn

from .tokens import Grid


class PreNormBlock(BaseModule):
    """``x + drop_path(attn(norm1(x), hw))``, then ``x + drop_path(mlp(norm2(x), hw))``.

    Both sublayers get the token grid ``hw``, so a convolutional attention or
    feed-forward layer (CvT's projections, a PVTv2-style conv MLP) fits as well as a plain
    one, which ignores it.

    Args:
        embed_dims (int): Token width.
        attn (nn.Module): Called as ``attn(tokens, hw)`` on (B, N, C) tokens of an ``hw``
            grid.
        mlp (nn.Module): Called as ``mlp(tokens, hw)``, e.g. :class:`~.mlp.Mlp`.
        drop_path_rate (float): Stochastic depth of this block.
        norm_cfg (dict): Token norm.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, embed_dims: int, attn: nn.Module, mlp: nn.Module,
                 drop_path_rate: float, norm_cfg: dict, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = attn
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.mlp = mlp

    def forward(self, x: torch.Tensor, hw: Grid) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x), hw))

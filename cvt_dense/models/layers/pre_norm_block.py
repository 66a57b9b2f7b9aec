"""The pre-norm transformer block both backbones use around their own attention."""
from typing import Optional, Tuple

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from timm.layers import DropPath
from torch import nn

from .mlp import Mlp


class PreNormBlock(BaseModule):
    """``x + drop_path(attn(norm1(x), hw))``, then ``x + drop_path(mlp(norm2(x)))``.

    Args:
        dims (int): Token width.
        attn (nn.Module): Attention called as ``attn(tokens, hw)`` on (B, N, C) tokens of
            an ``hw`` grid.
        mlp_ratio (float): Hidden width of the MLP relative to ``dims``.
        drop_rate (float): Dropout in the MLP.
        drop_path_rate (float): Stochastic depth of this block.
        act_cfg (dict): MLP activation.
        norm_cfg (dict): Token norm.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, dims: int, attn: nn.Module, mlp_ratio: float, drop_rate: float,
                 drop_path_rate: float, act_cfg: dict, norm_cfg: dict,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.norm1 = build_norm_layer(norm_cfg, dims)[1]
        self.attn = attn
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm2 = build_norm_layer(norm_cfg, dims)[1]
        self.mlp = Mlp(dims, int(dims * mlp_ratio), act_cfg, drop_rate)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.mlp(self.norm2(x)))

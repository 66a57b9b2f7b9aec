from typing import Optional

import torch
from mmcv.cnn import build_activation_layer
from mmengine.model import BaseModule
from torch import nn

from .activation import QuickGELU
from .fused_linear import linear
from .tokens import Grid


class Mlp(BaseModule):
    """Linear -> activation -> Linear, with the official names ``fc1``/``fc2``.

    Args:
        in_features (int): Input and output width.
        hidden_features (int): Hidden width.
        act_cfg (dict): Activation config (QuickGELU in the official CvT).
        drop (float): Dropout after each Linear.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, in_features: int, hidden_features: int,
                 act_cfg: dict = dict(type='QuickGELU'), drop: float = 0.,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, hw: Optional[Grid] = None) -> torch.Tensor:
        """x: (B, N, C) tokens; the grid ``hw`` plays no part (a conv MLP would use it)."""
        if isinstance(self.act, QuickGELU):
            # x * sigmoid(1.702 x) = silu(1.702 x) / 1.702: both scalings go into the small
            # fc1/fc2 weights instead of two passes over the 4x wider hidden tensor.
            scale = QuickGELU.SCALE
            hidden = linear(x, self.fc1.weight * scale, self.fc1.bias * scale, act='silu')
            return self.drop(linear(self.drop(hidden), self.fc2.weight / scale, self.fc2.bias))
        hidden = self.act(linear(x, self.fc1.weight, self.fc1.bias))
        return self.drop(linear(self.drop(hidden), self.fc2.weight, self.fc2.bias))

"""A simple feature pyramid from one stride-16 map (Li et al. 2022, ViTDet), for plain
(single-scale) backbones such as ConViT in Mask R-CNN."""
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import nn

SUPPORTED_SCALES = (4.0, 2.0, 1.0, 0.5)


class CvtDenseSimpleFPN(BaseModule):
    """One backbone map -> maps at 4x, 2x, 1x, 0.5x its resolution (+ extra levels).

    Registered as ``CvtDenseSimpleFPN``, a name of our own: mmdet's ViTDet project
    registers a ``SimpleFPN`` of its own with other arguments (the former name of this
    class stays a deprecated alias while no one else holds it, see
    :mod:`cvt_dense.registry`).

    From a stride-16 input: strides 4, 8, 16, 32 and, with ``num_outs=5``, a stride-64
    level by subsampling the last one (what Mask R-CNN's RPN expects). Upsampling is
    transposed 2x2 convs (norm + activation between two of them for 4x), downsampling a
    2x2 max pool; each scale then gets a 1x1 and a 3x3 conv with norm.

    Args:
        in_channels (int): Channels of the backbone map (e.g. ``ConViT.out_channels[0]``).
        out_channels (int): Channels of every output. Defaults to 256.
        scale_factors (Sequence[float]): Resolutions relative to the input, any of
            4, 2, 1 and 0.5. Defaults to (4.0, 2.0, 1.0, 0.5).
        num_outs (int): Outputs in total; those beyond ``scale_factors`` subsample the
            previous one by 2. Defaults to 5.
        norm_cfg (dict): Norm of the convs. Defaults to LayerNorm over channels.
        act_cfg (dict): Activation inside the 4x upsampling. Defaults to GELU.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, in_channels: int, out_channels: int = 256,
                 scale_factors: Sequence[float] = SUPPORTED_SCALES, num_outs: int = 5,
                 norm_cfg: dict = dict(type='LN2d'), act_cfg: dict = dict(type='GELU'),
                 init_cfg=None):
        super().__init__(init_cfg)
        unknown = [s for s in scale_factors if s not in SUPPORTED_SCALES]
        if unknown or not scale_factors:
            raise ValueError(f'CvtDenseSimpleFPN scale_factors {tuple(scale_factors)}: each '
                             f'must be one of {SUPPORTED_SCALES}')
        if num_outs < len(scale_factors):
            raise ValueError(f'CvtDenseSimpleFPN num_outs={num_outs} is less than the '
                             f'{len(scale_factors)} scale_factors')
        self.scale_factors = tuple(scale_factors)
        self.num_outs = num_outs
        self.resamplers = nn.ModuleList()
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for scale in self.scale_factors:
            resampler, channels = self._resampler(scale, in_channels, norm_cfg, act_cfg)
            self.resamplers.append(resampler)
            self.lateral_convs.append(
                ConvModule(channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None))
            self.fpn_convs.append(
                ConvModule(out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg,
                           act_cfg=None))

    @staticmethod
    def _resampler(scale: float, channels: int, norm_cfg: dict, act_cfg: dict
                   ) -> Tuple[nn.Module, int]:
        """The module that brings the input to ``scale`` and its output channels."""
        if scale == 4.0:
            half, quarter = channels // 2, channels // 4
            return nn.Sequential(
                nn.ConvTranspose2d(channels, half, 2, stride=2),
                build_norm_layer(norm_cfg, half)[1], build_activation_layer(act_cfg),
                nn.ConvTranspose2d(half, quarter, 2, stride=2)), quarter
        if scale == 2.0:
            return nn.ConvTranspose2d(channels, channels // 2, 2, stride=2), channels // 2
        if scale == 1.0:
            return nn.Identity(), channels
        return nn.MaxPool2d(2, stride=2), channels

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """inputs: a one-map tuple (B, C, H, W) -> ``num_outs`` maps, finest first."""
        if len(inputs) != 1:
            raise ValueError(f'CvtDenseSimpleFPN takes one backbone map, got {len(inputs)}: '
                             f'set the backbone to return one level (e.g. out_indices=(-1,))')
        x = inputs[0]
        outs = [fpn(lateral(resample(x))) for resample, lateral, fpn
                in zip(self.resamplers, self.lateral_convs, self.fpn_convs)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        # LN2d leaves channels-last strides; mmcv's RoIAlign reads the memory as NCHW
        # whatever the strides say, so the heads would pool scrambled features.
        return tuple(out.contiguous() for out in outs)

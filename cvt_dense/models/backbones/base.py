"""What every dense-prediction backbone of the toolkit shares.

A subclass builds its layers, then calls :meth:`DenseBackbone._set_outputs` with the
channels and strides of its levels, and implements ``_levels`` (the feature maps),
``_frozen_parts`` (what ``frozen_stages`` covers) and ``_default_init``. The base class does
the rest: ``out_indices`` checks, the optional per-output LayerNorm, declared output shapes
(so necks and configs never restate them), input checks, freezing, ``norm_eval`` and the
``Pretrained`` path of ``init_weights`` through the shared weight loader.
"""
from typing import ClassVar, Iterable, List, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...weights import CheckpointSpec, load_pretrained


class DenseBackbone(BaseModule):
    """Base of the toolkit's backbones: a tuple of NCHW maps for ``out_indices``.

    Args:
        in_channels (int): Input channels.
        frozen_stages (int): Freeze the parts ``_frozen_parts`` lists for this value;
            -1 freezes nothing.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH, ...)`` loads
            weights through :func:`cvt_dense.weights.load_pretrained` (extra keys:
            ``allow_partial``, ``allow_pickle``, ``prefix``, ``map_location``); any other
            type is mmengine's.
    """

    checkpoint_spec: ClassVar[CheckpointSpec]
    # The smallest input side every level still has a pixel for.
    min_input_size: int = 1

    def __init__(self, in_channels: int, frozen_stages: int = -1, norm_eval: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

    # Outputs -------------------------------------------------------------------------

    def _set_outputs(self, level_channels: Sequence[int], level_strides: Sequence[int],
                     out_indices: Union[int, Sequence[int]], out_norm: bool,
                     norm_cfg: dict, index_hint: str = ''):
        """Check ``out_indices`` against the levels and build the output norms.

        Negative indices count from the last level, as in mmseg's ViT.
        """
        num_levels = len(level_channels)
        indices = (out_indices,) if isinstance(out_indices, int) else tuple(out_indices)
        bad = [i for i in indices if not -num_levels <= i < num_levels]
        if bad or not indices:
            raise ValueError(f'out_indices {indices} invalid: this {type(self).__name__} has '
                             f'levels 0..{num_levels - 1}{index_hint}')
        self.out_indices = tuple(i % num_levels for i in indices)
        self.level_channels = tuple(level_channels)
        self.level_strides = tuple(level_strides)
        self.out_norm = out_norm
        if out_norm:
            for i in self.out_indices:
                self.add_module(f'out_norm{i}', build_norm_layer(norm_cfg, level_channels[i])[1])

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned map, in ``out_indices`` order."""
        return tuple(self.level_channels[i] for i in self.out_indices)

    @property
    def out_strides(self) -> Tuple[int, ...]:
        """Stride (input pixels per output pixel) of each returned map."""
        return tuple(self.level_strides[i] for i in self.out_indices)

    def _levels(self, x: torch.Tensor, needed: int) -> List[torch.Tensor]:
        """The (B, C_i, H_i, W_i) maps of levels 0..``needed`` (at least)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """x: (N, C, H, W) -> tuple of (N, C_i, H_i, W_i) maps for ``out_indices``."""
        self._check_input(x)
        levels = self._levels(x, max(self.out_indices))
        outs = []
        for i in self.out_indices:
            y = levels[i]
            if self.out_norm:
                # LayerNorm over channels: NCHW -> NHWC -> NCHW.
                y = getattr(self, f'out_norm{i}')(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            outs.append(y.contiguous())
        return tuple(outs)

    def _check_input(self, x: torch.Tensor):
        name = type(self).__name__
        if x.dim() != 4:
            raise ValueError(f'{name} expects a 4D (N, C, H, W) input, got shape '
                             f'{tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{name} was built with in_channels={self.in_channels} but the '
                             f'input has {x.shape[1]} channels (shape {tuple(x.shape)})')
        if min(x.shape[2:]) < self.min_input_size:
            raise ValueError(f'{name} needs inputs of at least {self.min_input_size}x'
                             f'{self.min_input_size} pixels, got {tuple(x.shape[2:])}')

    # Training behaviour ----------------------------------------------------------------

    def _frozen_parts(self) -> Iterable[Union[nn.Module, nn.Parameter]]:
        """Modules and bare parameters that ``frozen_stages`` freezes."""
        raise NotImplementedError

    def _frozen_out_norms(self, levels: Iterable[int]) -> List[nn.Module]:
        """The output norms of the given levels (they freeze with their level)."""
        return [getattr(self, f'out_norm{i}') for i in levels
                if self.out_norm and i in self.out_indices]

    def _freeze_stages(self):
        for part in self._frozen_parts():
            if isinstance(part, nn.Parameter):
                part.requires_grad = False
                continue
            part.eval()
            for param in part.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # Initialisation --------------------------------------------------------------------

    def _default_init(self):
        """The reference implementation's initialisation."""
        raise NotImplementedError

    def init_weights(self):
        if self.init_cfg is not None and self.init_cfg.get('type') != 'Pretrained':
            super().init_weights()
            return
        self._default_init()
        if self.init_cfg is not None:
            # Tensors the checkpoint does not hold (output norms, extra levels) keep the
            # default init above.
            cfg = dict(self.init_cfg)
            cfg.pop('type')
            if 'checkpoint' not in cfg:
                raise KeyError(f"{type(self).__name__} init_cfg of type 'Pretrained' needs a "
                               f"'checkpoint' path, got {self.init_cfg}")
            load_pretrained(self, cfg.pop('checkpoint'), **cfg)
        self._is_init = True

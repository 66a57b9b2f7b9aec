"""What every dense-prediction backbone of the toolkit shares.

A subclass builds its layers, then calls :meth:`DenseBackbone._set_outputs` with the
channels and strides of its levels, and implements ``_levels`` (the feature maps),
``_stem_parts`` and ``_level_parts`` (what ``frozen_stages`` covers), ``layer_groups`` (its
depth order, for layer-wise lr decay) and ``_token_parameters`` (its learned tokens). The
base class does the rest: ``out_indices`` checks, the optional per-output LayerNorm,
declared output shapes (so necks and configs never restate them), input checks, freezing
(one ``frozen_stages`` rule for every backbone), ``norm_eval``, the layer ids of lr decay,
the default initialisation and the ``Pretrained`` path of ``init_weights`` through the
shared weight loader. ``@register_backbone`` (:mod:`.registration`) then makes it known to
everything else.
"""
from typing import ClassVar, List, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_, trunc_normal_init
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...weights import CheckpointSpec, load_pretrained

# A part that ``frozen_stages`` freezes: a module (also put in eval mode) or a bare parameter.
Frozen = Union[nn.Module, nn.Parameter]


class DenseBackbone(BaseModule):
    """Base of the toolkit's backbones: a tuple of NCHW maps for ``out_indices``.

    Args:
        in_channels (int): Input channels.
        frozen_stages (int): mmdet's Swin / ResNet rule, counted in levels (the maps
            ``out_indices`` picks from): -1 freezes nothing, 0 the stem (what comes before
            level 0's first block: the patch embedding and the tokens added to it), k >= 1
            the stem and levels 0..k-1 with their output norms. At most the number of
            levels. Frozen parts stop their gradients and stay in eval mode.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH, ...)`` loads
            weights through :func:`cvt_dense.weights.load_pretrained` (extra keys:
            ``allow_partial``, ``allow_pickle``, ``prefix``, ``map_location``); any other
            type is mmengine's.
    """

    checkpoint_spec: ClassVar[CheckpointSpec]
    # The smallest input side every level still has a pixel for.
    min_input_size: int = 1
    # What the attention pictures draw: the content attention of every attention call
    # ('content'), or the positional branch of the calls that have one ('positional').
    attention_picture: ClassVar[str] = 'content'

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
        if not -1 <= self.frozen_stages <= num_levels:
            raise ValueError(
                f'frozen_stages={self.frozen_stages} invalid: this {type(self).__name__} has '
                f'{num_levels} levels; -1 freezes nothing, 0 the stem, k the stem and levels '
                f'0..k-1 (k <= {num_levels})')
        indices = (out_indices,) if isinstance(out_indices, int) else tuple(out_indices)
        bad = [i for i in indices if not -num_levels <= i < num_levels]
        if bad or not indices:
            raise ValueError(f'out_indices {indices} invalid: this {type(self).__name__} has '
                             f'levels 0..{num_levels - 1}{index_hint}')
        self.out_indices = tuple(i % num_levels for i in indices)
        self.num_levels = num_levels
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

    def padded_size(self, size: Sequence[int]) -> Tuple[int, int]:
        """The (H, W) the layers see for an input of ``size``: the same unless the backbone
        pads its inputs."""
        return tuple(size)

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

    def _stem_parts(self) -> List[Frozen]:
        """Modules and bare parameters before level 0's first block (``frozen_stages=0``):
        the parameters that :meth:`layer_groups` gives id 0."""
        raise NotImplementedError

    def _level_parts(self, level: int) -> List[Frozen]:
        """Modules and bare parameters that compute level ``level`` from the one before
        (or from the stem), without its output norm."""
        raise NotImplementedError

    def _frozen_parts(self) -> List[Frozen]:
        """What ``frozen_stages`` freezes: nothing for -1, else the stem and the first
        ``frozen_stages`` levels with their output norms."""
        if self.frozen_stages < 0:
            return []
        levels = range(self.frozen_stages)
        parts = self._stem_parts()
        for level in levels:
            parts += self._level_parts(level)
        return parts + [getattr(self, f'out_norm{i}') for i in levels
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

    # Layer-wise learning-rate decay ---------------------------------------------------

    def layer_groups(self) -> List[Tuple[str, ...]]:
        """Module and parameter names, shallowest first: entry i lists the names whose
        parameters get layer id i. A parameter takes the id of the longest name it lies
        under; parameters under none (output norms, extra levels) get the top id, like the
        neck and heads."""
        raise NotImplementedError

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter for layer-wise learning-rate decay (mmpretrain's and
        mmseg's convention), from :meth:`layer_groups`.

        Args:
            param_name (str): Parameter name, e.g. ``backbone.stage2.blocks.3.attn.proj.weight``.
            prefix (str): Prefix to strip from ``param_name`` (e.g. ``'backbone.'``).

        Returns:
            tuple[int, int]: (layer id, number of layers).
        """
        groups = self.layer_groups()
        num_layers = len(groups) + 1
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        best_id, best_length = num_layers - 1, -1
        for layer_id, names in enumerate(groups):
            for group_name in names:
                if (name == group_name or name.startswith(group_name + '.')) \
                        and len(group_name) > best_length:
                    best_id, best_length = layer_id, len(group_name)
        return best_id, num_layers

    # Initialisation --------------------------------------------------------------------

    def _token_parameters(self) -> List[nn.Parameter]:
        """Learned tokens (cls tokens, position embeddings), in initialisation order."""
        return []

    def _default_init(self):
        """The ViT family's initialisation, as in the reference implementations:
        truncated-normal (std 0.02) Linear weights and learned tokens, zero biases, unit
        norms. Other layers (convs) keep PyTorch's default."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_init(module, std=.02, bias=0.)
            elif isinstance(module, (nn.LayerNorm, _BatchNorm)):
                constant_init(module, val=1., bias=0.)
        for param in self._token_parameters():
            trunc_normal_(param, std=.02)

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

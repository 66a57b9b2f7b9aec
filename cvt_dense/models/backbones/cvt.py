"""CvT backbone (Wu et al. 2021, arXiv 2103.15808) for dense prediction."""
import copy
from typing import Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_, trunc_normal_init
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .cvt_blocks import ConvEmbed, CvTStage, tokens_to_map

# The one table of architecture facts (official configs ``cvt-13-224x224.yaml`` etc.).
ARCH_SETTINGS = {
    'cvt-13': dict(embed_dims=[64, 192, 384], num_heads=[1, 3, 6], depths=[1, 2, 10]),
    'cvt-21': dict(embed_dims=[64, 192, 384], num_heads=[1, 3, 6], depths=[1, 4, 16]),
    'cvt-w24': dict(embed_dims=[192, 768, 1024], num_heads=[3, 12, 16], depths=[2, 2, 20]),
}
# Stage-wise constants shared by every preset; a custom arch dict may override them.
STAGE_DEFAULTS = dict(patch_sizes=[7, 3, 3], patch_strides=[4, 2, 2], patch_paddings=[2, 1, 1],
                      mlp_ratios=[4, 4, 4], cls_tokens=[False, False, True])
REQUIRED_ARCH_KEYS = ('embed_dims', 'num_heads', 'depths')


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Full per-stage settings for a preset name or a custom dict."""
    if isinstance(arch, str):
        if arch.lower() not in ARCH_SETTINGS:
            raise ValueError(f'Unknown CvT arch {arch!r}; valid presets are '
                             f'{sorted(ARCH_SETTINGS)} or a dict with keys {REQUIRED_ARCH_KEYS}')
        arch = ARCH_SETTINGS[arch.lower()]
    elif not isinstance(arch, dict):
        raise TypeError(f'arch must be a preset name or a dict, got {type(arch).__name__}')
    missing = [k for k in REQUIRED_ARCH_KEYS if k not in arch]
    unknown = set(arch) - set(REQUIRED_ARCH_KEYS) - set(STAGE_DEFAULTS)
    if missing or unknown:
        raise ValueError(f'Custom CvT arch dict: missing keys {missing}, unknown keys '
                         f'{sorted(unknown)}; expected {REQUIRED_ARCH_KEYS} and optionally '
                         f'{sorted(STAGE_DEFAULTS)}')
    settings = {**copy.deepcopy(STAGE_DEFAULTS), **copy.deepcopy(arch)}
    lengths = {k: len(v) for k, v in settings.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f'All per-stage lists of the CvT arch must have the same length, '
                         f'got {lengths}')
    return settings


class CvT(BaseModule):
    """Convolutional vision Transformer backbone with multi-scale outputs.

    Three stages at strides 4, 8 and 16 (widths 64/192/384 for CvT-13/21), convolutional
    token embedding and q/k/v projection, a cls token in the last stage only (it takes part
    in attention but never appears in the outputs), and no positional embedding, so any
    input size works. Defaults reproduce the official implementation: QuickGELU,
    LayerNorm eps 1e-5, attention scale ``stage_width ** -0.5``.

    Args:
        arch (str | dict): ``'cvt-13'``, ``'cvt-21'``, ``'cvt-w24'`` or a dict with
            ``embed_dims``, ``num_heads``, ``depths`` (and optionally ``patch_sizes``,
            ``patch_strides``, ``patch_paddings``, ``mlp_ratios``, ``cls_tokens``).
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Levels to return; 0-2 are the stages, 3 the optional
            stride-32 level (needs ``extra_level=True``). Defaults to (0, 1, 2).
        out_norm (bool): LayerNorm on each returned level. Defaults to True.
        extra_level (bool): Add a stride-32 level (3x3 stride-2 conv + LayerNorm on the
            last stage) for necks that want four inputs. Defaults to False.
        qkv_bias (bool): Bias in the q/k/v projections. Defaults to True.
        drop_rate (float): Dropout rate. Defaults to 0.
        attn_drop_rate (float): Attention dropout rate. Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly over all blocks from 0 to
            this value. Defaults to 0.1.
        use_pos_embed (bool): Learnable per-stage positional embeddings (the paper's
            ablation), resampled bicubically to every input's grid. Defaults to False.
        pretrain_img_size (int | tuple): Image size that sets the reference grid of the
            positional embeddings. Defaults to 224.
        act_cfg (dict): MLP activation. Defaults to ``dict(type='QuickGELU')``; use
            ``dict(type='GELU')`` to match ``transformers.CvtModel``.
        norm_cfg (dict): Token norm. Defaults to ``dict(type='LN', eps=1e-5)``.
        conv_norm_cfg (dict): Norm of the q/k/v depth-wise convs. Defaults to BN.
        frozen_stages (int): Freeze the stages (embedding, blocks, out norm) up to and
            including this index; -1 freezes nothing. Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
            Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads
            ImageNet weights in the official, Hugging Face or our own format.
    """

    def __init__(self, arch: Union[str, dict] = 'cvt-13', in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2), out_norm: bool = True,
                 extra_level: bool = False, qkv_bias: bool = True, drop_rate: float = 0.,
                 attn_drop_rate: float = 0., drop_path_rate: float = 0.1,
                 use_pos_embed: bool = False,
                 pretrain_img_size: Union[int, Tuple[int, int]] = 224,
                 act_cfg: dict = dict(type='QuickGELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 conv_norm_cfg: dict = dict(type='BN'), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.arch_settings = resolve_arch(arch)
        s = self.arch_settings
        self.num_stages = len(s['depths'])
        self.embed_dims = list(s['embed_dims'])
        self.in_channels = in_channels
        self.num_levels = self.num_stages + int(extra_level)
        out_indices = tuple(out_indices)
        bad = [i for i in out_indices if not 0 <= i < self.num_levels]
        if bad or not out_indices:
            raise ValueError(f'out_indices {out_indices} invalid: this CvT has levels '
                             f'0..{self.num_levels - 1}'
                             + ('' if extra_level else ' (index 3 needs extra_level=True)'))
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        if isinstance(pretrain_img_size, int):
            pretrain_img_size = (pretrain_img_size, pretrain_img_size)
        total = sum(s['depths'])
        dpr = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]
        block_cfg = dict(qkv_bias=qkv_bias, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
                         act_cfg=act_cfg, norm_cfg=norm_cfg, conv_norm_cfg=conv_norm_cfg)
        channels, grid, offset = in_channels, pretrain_img_size, 0
        for i in range(self.num_stages):
            k, st, p = s['patch_sizes'][i], s['patch_strides'][i], s['patch_paddings'][i]
            grid = tuple((g + 2 * p - k) // st + 1 for g in grid)
            stage = CvTStage(
                channels, s['embed_dims'][i], s['depths'][i], s['num_heads'][i], k, st, p,
                with_cls_token=s['cls_tokens'][i],
                pos_embed_grid=grid if use_pos_embed else None,
                drop_path_rates=dpr[offset:offset + s['depths'][i]], with_cp=with_cp,
                block_cfg=dict(block_cfg, mlp_ratio=s['mlp_ratios'][i]))
            # Official names: stage0, stage1, stage2.
            self.add_module(f'stage{i}', stage)
            channels, offset = s['embed_dims'][i], offset + s['depths'][i]
        if extra_level:
            self.extra_embed = ConvEmbed(channels, channels, 3, 2, 1, norm_cfg)
            self.embed_dims.append(channels)
        self.out_norm = out_norm
        if out_norm:
            for i in out_indices:
                self.add_module(f'out_norm{i}', build_norm_layer(norm_cfg, self.embed_dims[i])[1])
        self._freeze_stages()

    @property
    def min_input_size(self) -> int:
        """Smallest side length for which every convolution still yields >= 1 pixel."""
        s = self.arch_settings
        return s['patch_sizes'][0] - 2 * s['patch_paddings'][0]

    def init_weights(self):
        if self.init_cfg is not None and self.init_cfg.get('type') != 'Pretrained':
            super().init_weights()
            return
        self._official_init()
        if self.init_cfg is not None:
            # Tensors the checkpoint does not hold (out norms, extra level) keep the
            # official init above.
            from ...weights import load_pretrained
            cfg = dict(self.init_cfg)
            cfg.pop('type')
            if 'checkpoint' not in cfg:
                raise KeyError(f"CvT init_cfg of type 'Pretrained' needs a 'checkpoint' "
                               f"path, got {self.init_cfg}")
            load_pretrained(self, cfg.pop('checkpoint'), **cfg)
        self._is_init = True

    def _official_init(self):
        """Truncated-normal Linear weights, unit norms, trunc-normal cls token / pos embed."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, (nn.LayerNorm, _BatchNorm)):
                constant_init(m, val=1., bias=0.)
        for i in range(self.num_stages):
            stage = getattr(self, f'stage{i}')
            for p in (stage.cls_token, stage.pos_embed):
                if p is not None:
                    trunc_normal_(p, std=.02)

    def _check_input(self, x: torch.Tensor):
        if x.dim() != 4:
            raise ValueError(f'CvT expects a 4D (N, C, H, W) input, got shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'CvT was built with in_channels={self.in_channels} but the input '
                             f'has {x.shape[1]} channels (shape {tuple(x.shape)})')
        if min(x.shape[2:]) < self.min_input_size:
            raise ValueError(f'CvT needs inputs of at least {self.min_input_size}x'
                             f'{self.min_input_size} pixels, got {tuple(x.shape[2:])}')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """x: (N, C, H, W) -> tuple of (N, C_i, H_i, W_i) maps for ``out_indices``."""
        self._check_input(x)
        levels = []
        for i in range(self.num_stages):
            x, _ = getattr(self, f'stage{i}')(x)
            levels.append(x)
        if hasattr(self, 'extra_embed'):
            levels.append(tokens_to_map(*self.extra_embed(x)))
        outs = []
        for i in self.out_indices:
            y = levels[i]
            if self.out_norm:
                # LayerNorm over channels: NCHW -> NHWC -> NCHW.
                y = getattr(self, f'out_norm{i}')(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            outs.append(y.contiguous())
        return tuple(outs)

    def _freeze_stages(self):
        for i in range(min(self.frozen_stages + 1, self.num_levels)):
            modules = [getattr(self, f'stage{i}') if i < self.num_stages else self.extra_embed]
            if self.out_norm and i in self.out_indices:
                modules.append(getattr(self, f'out_norm{i}'))
            for m in modules:
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id of a parameter for layer-wise learning-rate decay.

        Block j of stage i gets ``1 + (blocks before stage i) + j``; the embedding, cls token
        and positional embedding of stage i share the id just below its first block; the
        output norms and the extra level get the top id, like the neck and heads.

        Args:
            param_name (str): Parameter name, e.g. ``backbone.stage2.blocks.3.attn.proj.weight``.
            prefix (str): Prefix to strip from ``param_name`` (e.g. ``'backbone.'``).

        Returns:
            tuple[int, int]: (layer id, number of layers).
        """
        depths = self.arch_settings['depths']
        num_layers = sum(depths) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        parts = param_name[len(prefix):].split('.')
        if not parts[0].startswith('stage'):
            return num_layers - 1, num_layers
        i = int(parts[0][len('stage'):])
        offset = sum(depths[:i])
        if parts[1] == 'blocks':
            return offset + int(parts[2]) + 1, num_layers
        return offset, num_layers

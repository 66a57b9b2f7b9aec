"""CvT backbone (Wu et al. 2021, arXiv 2103.15808) for dense prediction."""
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch

from ...layers import PixelGeometry, tokens_to_map
from ..base import DenseBackbone
from ..registration import Peer, register_backbone
from .blocks import ConvEmbed, CvTStage, QKVProjection
from .peers import transformers_cvt
from .presets import override_stages, resolve_arch
from .pretrained import CVT_CHECKPOINTS


@register_backbone(
    small=dict(arch=dict(embed_dims=[16, 32, 48], num_heads=[1, 2, 3], depths=[1, 2, 3]),
               drop_path_rate=0.),
    benchmark=dict(arch='cvt-13', drop_path_rate=0.),
    peer=Peer('transformers', transformers_cvt))
class CvT(DenseBackbone):
    """Convolutional vision Transformer backbone with multi-scale outputs.

    Three stages at strides 4, 8 and 16 (widths 64/192/384 for CvT-13/21), convolutional
    token embedding and q/k/v projection, a cls token in the last stage only (it takes part
    in attention but never appears in the outputs), and no positional embedding, so any
    input size works. Defaults reproduce the official implementation: QuickGELU,
    LayerNorm eps 1e-5, attention scale ``stage_width ** -0.5``, and the official recipe's
    stochastic depth (stage 3 only, rising linearly over its blocks to 0.1; 0.3 for W24).

    Every per-stage field of the official config is an ``arch`` field
    (:data:`~cvt_dense.models.backbones.cvt.presets.OFFICIAL_NAMES`, documented in
    docs/custom_configs.md). The arguments ``qkv_bias``, ``drop_rate``, ``attn_drop_rate``,
    ``use_pos_embed``, ``drop_path_rate`` and ``kv_strides`` override the arch's fields for
    every stage when given; None keeps the arch's values.

    Args:
        arch (str | dict): ``'cvt-13'``, ``'cvt-21'``, ``'cvt-w24'``, the path of an official
            experiment YAML (``cvt-13-224x224.yaml``), or a dict with ``embed_dims``,
            ``num_heads``, ``depths`` and optionally any other per-stage field
            (``qkv_proj_methods``, ``kv_strides``, ``pos_embeds``, ...).
        in_channels (int): Input channels. Defaults to 3.
        out_indices (Sequence[int]): Levels to return; 0-2 are the stages, 3 the optional
            stride-32 level (needs ``extra_level=True``). Defaults to (0, 1, 2).
        out_norm (bool): LayerNorm on each returned level. Defaults to True.
        extra_level (bool): Add a stride-32 level (3x3 stride-2 conv + LayerNorm on the
            last stage) for necks that want four inputs. Defaults to False.
        qkv_bias (bool, optional): Bias in the q/k/v projections of every stage.
        drop_rate (float, optional): Dropout rate of every stage.
        attn_drop_rate (float, optional): Attention dropout rate of every stage.
        drop_path_rate (float, optional): The largest stochastic-depth rate: the arch's
            per-stage ``drop_path_rates`` (presets: ``[0, 0, 0.1]``) are scaled so that
            their largest entry is this value; within a stage the rate rises linearly from
            0 at its first block to the stage's rate at its last. 0 turns it off.
        use_pos_embed (bool, optional): Learnable positional embeddings in every stage (the
            paper's ablation), resampled bicubically to every input's grid.
        kv_strides (Sequence[int], optional): The k/v stride of each stage: the cost knob
            for dense resolutions. ``(4, 2, 2)`` keeps every other key of stage 1 in each
            direction (its attention costs a quarter), ``(8, 2, 2)`` every fourth. Pretrained
            depth-wise kernels are reused unchanged, so the model then differs from its
            pretraining (fine-tuning adapts; accuracy not measured here).
        pretrain_img_size (int | tuple): Image size that sets the reference grid of the
            positional embeddings. Defaults to 224.
        act_cfg (dict): MLP activation. Defaults to ``dict(type='QuickGELU')``; use
            ``dict(type='GELU')`` to match ``transformers.CvtModel``.
        norm_cfg (dict): Token norm. Defaults to ``dict(type='LN', eps=1e-5)``.
        conv_proj_norm_cfg (dict, optional): Norm of the depth-wise convs of the q/k/v
            projections (the official ``conv_proj_q/k/v``), the only BatchNorm in CvT.
            None (default) is the official BN; ``dict(type='SyncBN')`` syncs it across
            processes, or keep its pretrained statistics with ``norm_eval=True``.
        frozen_stages (int): Swin's rule (see
            :class:`~cvt_dense.models.backbones.base.DenseBackbone`): -1 freezes nothing, 0
            the stem (stage 0's conv token embedding), k >= 1 stages 0..k-1 whole
            (embedding, blocks, out norm); with ``extra_level``, 4 also freezes the
            stride-32 level. Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
            Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads
            ImageNet weights in the official, Hugging Face or our own format (see
            :class:`~cvt_dense.models.backbones.base.DenseBackbone`).
        conv_norm_cfg (dict, optional): Deprecated name of ``conv_proj_norm_cfg``.
    """

    checkpoint_spec = CVT_CHECKPOINTS

    def __init__(self, arch: Union[str, dict] = 'cvt-13', in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2), out_norm: bool = True,
                 extra_level: bool = False, qkv_bias: Optional[bool] = None,
                 drop_rate: Optional[float] = None, attn_drop_rate: Optional[float] = None,
                 drop_path_rate: Optional[float] = None,
                 use_pos_embed: Optional[bool] = None,
                 kv_strides: Optional[Sequence[int]] = None,
                 pretrain_img_size: Union[int, Tuple[int, int]] = 224,
                 act_cfg: dict = dict(type='QuickGELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 conv_proj_norm_cfg: Optional[dict] = None, frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False,
                 init_cfg: Optional[dict] = None, conv_norm_cfg: Optional[dict] = None):
        super().__init__(in_channels, frozen_stages, norm_eval, init_cfg)
        conv_proj_norm_cfg = _conv_proj_norm_cfg(conv_proj_norm_cfg, conv_norm_cfg)
        self.arch_settings = override_stages(
            resolve_arch(arch), drop_path_rate=drop_path_rate, kv_strides=kv_strides,
            qkv_biases=qkv_bias, drop_rates=drop_rate, attn_drop_rates=attn_drop_rate,
            pos_embeds=use_pos_embed)
        settings = self.arch_settings
        self.num_stages = len(settings['depths'])
        self.embed_dims = list(settings['embed_dims'])
        self.min_input_size = settings['patch_sizes'][0] - 2 * settings['patch_paddings'][0]

        if isinstance(pretrain_img_size, int):
            pretrain_img_size = (pretrain_img_size, pretrain_img_size)
        channels, grid, stride = in_channels, pretrain_img_size, 1
        geometry = PixelGeometry()
        level_strides = []
        for i in range(self.num_stages):
            kernel, patch_stride, padding = (settings['patch_sizes'][i],
                                             settings['patch_strides'][i],
                                             settings['patch_paddings'][i])
            grid = tuple((g + 2 * padding - kernel) // patch_stride + 1 for g in grid)
            stage = CvTStage(
                channels, self.embed_dims[i], settings['depths'][i], settings['num_heads'][i],
                kernel, patch_stride, padding, with_cls_token=settings['cls_tokens'][i],
                pos_embed_grid=grid if settings['pos_embeds'][i] else None,
                drop_path_rate=settings['drop_path_rates'][i], geometry=geometry,
                with_cp=with_cp,
                block_cfg=self._block_cfg(i, act_cfg, norm_cfg, conv_proj_norm_cfg))
            # Official names: stage0, stage1, stage2.
            self.add_module(f'stage{i}', stage)
            geometry = stage.geometry
            channels = self.embed_dims[i]
            stride *= patch_stride
            level_strides.append(stride)
        level_channels = list(self.embed_dims)
        if extra_level:
            self.extra_embed = ConvEmbed(channels, channels, 3, 2, 1, norm_cfg)
            level_channels.append(channels)
            level_strides.append(stride * 2)
        self._set_outputs(level_channels, level_strides, out_indices, out_norm, norm_cfg,
                          '' if extra_level else ' (index 3 needs extra_level=True)')
        self._freeze_stages()

    def _block_cfg(self, stage: int, act_cfg: dict, norm_cfg: dict,
                   conv_proj_norm_cfg: dict) -> dict:
        """The ``CvTBlock`` arguments of one stage, from its arch fields."""
        settings = {key: values[stage] for key, values in self.arch_settings.items()}
        projection = QKVProjection(
            settings['qkv_proj_methods'], settings['qkv_kernel_sizes'], settings['q_strides'],
            settings['q_paddings'], settings['kv_strides'], settings['kv_paddings'])
        return dict(mlp_ratio=settings['mlp_ratios'], qkv_bias=settings['qkv_biases'],
                    drop_rate=settings['drop_rates'],
                    attn_drop_rate=settings['attn_drop_rates'], projection=projection,
                    act_cfg=act_cfg, norm_cfg=norm_cfg,
                    conv_proj_norm_cfg=conv_proj_norm_cfg)

    def _token_parameters(self):
        stages = [getattr(self, f'stage{i}') for i in range(self.num_stages)]
        return [param for stage in stages for param in (stage.cls_token, stage.pos_embed)
                if param is not None]

    def _levels(self, x: torch.Tensor, needed: int):
        levels = []
        for i in range(min(needed + 1, self.num_stages)):
            x, _ = getattr(self, f'stage{i}')(x)
            levels.append(x)
        if needed >= self.num_stages:
            levels.append(tokens_to_map(*self.extra_embed(x)))
        return levels

    def _stem_parts(self):
        stage = self.stage0
        return [stage.patch_embed, stage.pos_drop] + [
            param for param in (stage.cls_token, stage.pos_embed) if param is not None]

    def _level_parts(self, level: int):
        return [getattr(self, f'stage{level}') if level < self.num_stages
                else self.extra_embed]

    def layer_groups(self):
        """Block j of stage i gets id ``1 + (blocks before stage i) + j``; the embedding, cls
        token and positional embedding of stage i share the id just below its first
        block."""
        groups = [[]]
        for i, depth in enumerate(self.arch_settings['depths']):
            groups[-1].append(f'stage{i}')
            groups += [[f'stage{i}.blocks.{j}'] for j in range(depth)]
        return [tuple(names) for names in groups]


def _conv_proj_norm_cfg(conv_proj_norm_cfg: Optional[dict],
                        conv_norm_cfg: Optional[dict]) -> dict:
    """The q/k/v projections' norm from the option or its deprecated name (official BN by
    default)."""
    if conv_norm_cfg is None:
        return conv_proj_norm_cfg or dict(type='BN')
    if conv_proj_norm_cfg is not None:
        raise ValueError(f'CvT got both conv_proj_norm_cfg={conv_proj_norm_cfg} and its '
                         f'deprecated name conv_norm_cfg={conv_norm_cfg}: keep '
                         f'conv_proj_norm_cfg')
    # FutureWarning: shown by default to users of a config, unlike DeprecationWarning.
    warnings.warn('CvT conv_norm_cfg is deprecated, use conv_proj_norm_cfg (the norm of the '
                  'q/k/v projections; the token embedding\'s norm is norm_cfg)',
                  FutureWarning, stacklevel=3)
    return conv_norm_cfg

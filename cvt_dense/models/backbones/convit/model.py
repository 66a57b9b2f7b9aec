"""ConViT backbone (d'Ascoli et al. 2021, arXiv 2103.10697) for dense prediction."""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
from timm.layers import PatchEmbed, resample_abs_pos_embed
from torch import nn

from ...layers import PixelGeometry, call_block, resample_tokens_bicubic_aa, tokens_to_map
from ..base import DenseBackbone
from ..registration import Peer, register_backbone
from .blocks import GPSA, ConViTBlock
from .peers import timm_convit
from .presets import resolve_arch
from .pretrained import CONVIT_CHECKPOINTS


@register_backbone(
    # Both kinds of block (2 GPSA, then 2 MHSA), milliseconds per image.
    small=dict(arch=dict(embed_dims=32, num_heads=4, depth=4, local_up_to_layer=2),
               out_indices=(0, 2, 3), drop_path_rate=0.),
    benchmark=dict(arch='convit-small', out_indices=(2, 5, 8, 11), out_norm=False,
                   drop_path_rate=0.),
    peer=Peer('timm', timm_convit))
class ConViT(DenseBackbone):
    """ConViT: a ViT whose first blocks use gated positional self-attention (GPSA).

    One stride-16 token grid through 12 blocks (10 GPSA, then 2 ordinary self-attention
    blocks that also see the cls token, which is concatenated before block 10). Every block
    output is a level: ``out_indices`` are block indices (negative ones count from the
    end), each returned as a (B, C, ceil(H/16), ceil(W/16)) map without the cls token.

    Any input size, exactly: inputs whose sides are not multiples of 16 are zero-padded at
    the bottom and right, relative positions come from the true token grid (rows, columns),
    and ``pos_embed`` (stored at the pretraining grid) is resampled bicubically to each
    input's grid at run time. The positional branch of GPSA costs O(N (H + W)) instead of
    O(N^2), see :func:`~cvt_dense.models.backbones.convit.blocks.positional_attention`.
    Defaults reproduce the official model: exact GELU, LayerNorm eps 1e-6, no q/k/v bias,
    attention scale ``head_dim ** -0.5``.

    Args:
        arch (str | dict): ``'convit-tiny'``, ``'convit-small'``, ``'convit-base'`` or a
            dict with ``embed_dims`` and ``num_heads`` (and optionally ``depth``,
            ``local_up_to_layer``, ``patch_size``, ``mlp_ratio``).
        in_channels (int): Input channels. Defaults to 3.
        pretrain_img_size (int): Square image size of pretraining; sets the reference grid
            of ``pos_embed`` (224 -> 14 x 14). Defaults to 224.
        out_indices (int | Sequence[int]): Blocks whose outputs are returned.
            Defaults to -1 (the last block).
        out_norm (bool): LayerNorm on each returned map. Defaults to True.
        qkv_bias (bool): Bias in the query/key/value projections. Defaults to False.
        drop_rate (float): Dropout after the embedding, the attention projections and in
            the MLPs. Defaults to 0.
        attn_drop_rate (float): Must be 0: dropout on GPSA's mixed attention matrix cannot
            be applied without forming it (the released recipes use 0).
        drop_path_rate (float): Stochastic depth, rising linearly over the blocks from 0 to
            this value. Defaults to 0.1.
        locality_strength (float): Scale of GPSA's local initialisation. Defaults to 1.
        act_cfg (dict): MLP activation. Defaults to exact GELU.
        norm_cfg (dict): Token norm. Defaults to LayerNorm, eps 1e-6.
        frozen_stages (int): Swin's rule with every block a stage (as every block is a
            level; see :class:`~cvt_dense.models.backbones.base.DenseBackbone`): -1 freezes
            nothing, 0 the stem (``patch_embed``, ``pos_embed`` and the cls token), k >= 1
            the stem and blocks 0..k-1 with their output norms. Unlike mmpretrain's ViT,
            where 0 freezes nothing. Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers (none in ConViT itself) in eval mode.
            Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=PATH)`` loads
            official or timm ImageNet weights, or our own (see
            :class:`~cvt_dense.models.backbones.base.DenseBackbone`).
    """

    checkpoint_spec = CONVIT_CHECKPOINTS
    # The paper's locality picture: GPSA's positional attention and its gates.
    attention_picture = 'positional'

    def __init__(self, arch: Union[str, dict] = 'convit-small', in_channels: int = 3,
                 pretrain_img_size: int = 224, out_indices: Union[int, Sequence[int]] = -1,
                 out_norm: bool = True, qkv_bias: bool = False, drop_rate: float = 0.,
                 attn_drop_rate: float = 0., drop_path_rate: float = 0.1,
                 locality_strength: float = 1., act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-6), frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(in_channels, frozen_stages, norm_eval, init_cfg)
        if attn_drop_rate:
            raise ValueError(
                f'ConViT attn_drop_rate={attn_drop_rate}: dropout on the mixed GPSA attention '
                f'matrix needs that N x N matrix, which this memory-linear GPSA never forms; '
                f'every released ConViT recipe uses 0. Use drop_rate or drop_path_rate.')
        if not isinstance(pretrain_img_size, int):
            raise TypeError(f'ConViT pretrain_img_size must be an int (a square grid, as in '
                            f'every released checkpoint), got {pretrain_img_size!r}')
        self.arch_settings = resolve_arch(arch)
        settings = self.arch_settings
        self.embed_dims = settings['embed_dims']
        self.depth = settings['depth']
        self.local_up_to_layer = settings['local_up_to_layer']
        self.with_cp = with_cp

        # Zero-pads the bottom and right to a multiple of the patch size.
        self.patch_embed = PatchEmbed(pretrain_img_size, settings['patch_size'], in_channels,
                                      self.embed_dims, output_fmt='NHWC',
                                      strict_img_size=False, dynamic_img_pad=True)
        self.pos_embed_grid = self.patch_embed.grid_size
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.pos_embed_grid[0] * self.pos_embed_grid[1], self.embed_dims))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))
        self.pos_drop = nn.Dropout(drop_rate)
        patch = settings['patch_size']
        geometry = PixelGeometry().after_conv(patch, patch, 0)
        self.blocks = nn.ModuleList(
            ConViTBlock(self.embed_dims, settings['num_heads'],
                        use_gpsa=i < self.local_up_to_layer, mlp_ratio=settings['mlp_ratio'],
                        qkv_bias=qkv_bias, drop_rate=drop_rate,
                        drop_path_rate=drop_path_rate * i / max(self.depth - 1, 1),
                        locality_strength=locality_strength, act_cfg=act_cfg,
                        norm_cfg=norm_cfg, geometry=geometry)
            for i in range(self.depth))
        self._set_outputs([self.embed_dims] * self.depth, [settings['patch_size']] * self.depth,
                          out_indices, out_norm, norm_cfg)
        self._freeze_stages()

    def _token_parameters(self):
        return [self.pos_embed, self.cls_token]

    def _default_init(self):
        """timm / official: the shared initialisation, then GPSA's local init."""
        super()._default_init()
        for module in self.modules():
            if isinstance(module, GPSA):
                module.local_init()

    def padded_size(self, size: Sequence[int]) -> Tuple[int, int]:
        """Sides rounded up to a multiple of the patch size (zero padding)."""
        patch_h, patch_w = self.patch_embed.patch_size
        return math.ceil(size[0] / patch_h) * patch_h, math.ceil(size[1] / patch_w) * patch_w

    def _levels(self, x: torch.Tensor, needed: int):
        x = self.patch_embed(x)  # (B, H, W, C)
        hw = (x.shape[1], x.shape[2])
        if torch.onnx.is_in_onnx_export() and not torch.compiler.is_compiling():
            # The legacy TorchScript exporter (mmdeploy's) has no antialiased bicubic
            # resize at any opset. torch.export and the dynamo exporter take timm's
            # F.interpolate below (an ONNX Resize with antialias, opset 18).
            pos_embed = resample_tokens_bicubic_aa(self.pos_embed, self.pos_embed_grid, hw)
        else:
            pos_embed = resample_abs_pos_embed(self.pos_embed, new_size=hw,
                                               old_size=self.pos_embed_grid,
                                               num_prefix_tokens=0)
        x = x.flatten(1, 2) + pos_embed
        x = self.pos_drop(x)
        levels = []
        for i, block in enumerate(self.blocks[:needed + 1]):
            if i == self.local_up_to_layer:
                x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
            x = call_block(block, x, hw, with_cp=self.with_cp)
            patches = x[:, 1:] if i >= self.local_up_to_layer else x
            levels.append(tokens_to_map(patches, hw))
        return levels

    def _stem_parts(self):
        return [self.patch_embed, self.pos_drop, self.pos_embed, self.cls_token]

    def _level_parts(self, level: int):
        return [self.blocks[level]]

    def layer_groups(self):
        """The patch embedding, ``pos_embed`` and cls token get id 0, block i gets i + 1."""
        return [('patch_embed', 'pos_embed', 'cls_token')] + [
            (f'blocks.{i}',) for i in range(self.depth)]

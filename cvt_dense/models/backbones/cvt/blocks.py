"""Building blocks of CvT. Module and parameter names follow the official implementation
(leoxiaobin/CvT ``cls_cvt.py``) so that its state dicts load without renaming."""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...layers import (AttentionLayout, Grid, Mlp, PixelGeometry, PreNormBlock,
                       TokenGrid, attention_observed, call_block, linear, map_to_tokens,
                       merge_heads, resample_pos_embed, scaled_attention, split_heads,
                       tokens_to_map)


class ConvEmbed(BaseModule):
    """Convolutional token embedding: a strided conv followed by LayerNorm on the tokens.

    Args:
        in_channels (int): Channels of the input map.
        embed_dims (int): Channels (token width) of the output.
        kernel_size (int): Conv kernel size (7 in stage 0, 3 after).
        stride (int): Conv stride (4 in stage 0, 2 after).
        padding (int): Conv padding (2 in stage 0, 1 after).
        norm_cfg (dict): Norm applied to the tokens. Defaults to LayerNorm, eps 1e-5.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int, stride: int,
                 padding: int, norm_cfg: dict = dict(type='LN', eps=1e-5),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size, stride, padding)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Grid]:
        """Returns the (B, H*W, C) tokens and their grid (H, W)."""
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(map_to_tokens(x)), hw


@dataclass(frozen=True)
class QKVProjection:
    """How one stage's attention forms q, k and v from its token map (official
    ``QKV_PROJ_METHOD``, ``KERNEL_QKV``, ``STRIDE_Q``, ``PADDING_Q``, ``STRIDE_KV``,
    ``PADDING_KV``), as in the official ``cls_cvt.py``:

    - ``'dw_bn'``: a depth-wise conv (no bias) + BatchNorm for each of q, k and v;
    - ``'avg'``: average pooling (``ceil_mode=True``, padding counted) for k and v; q is
      the tokens themselves (q stride and padding unused);
    - ``'linear'``: q, k and v are the tokens themselves (no stride: keys at full
      resolution). The official ``Attention.forward`` fails on this method (it never
      defines q, k, v); this is the evident intent, ViT's attention.

    A Linear layer follows in every case.

    Args:
        method (str): ``'dw_bn'``, ``'avg'`` or ``'linear'``.
        kernel_size (int): Kernel of the q/k/v convs or of the pooling.
        stride_q (int): Stride of the q conv.
        padding_q (int): Padding of the q conv.
        stride_kv (int): Stride of the k/v convs or pooling: the keys' grid is this much
            coarser than the queries'.
        padding_kv (int): Padding of the k/v convs or pooling.
    """

    method: str = 'dw_bn'
    kernel_size: int = 3
    stride_q: int = 1
    padding_q: int = 1
    stride_kv: int = 2
    padding_kv: int = 1

    def __post_init__(self):
        if self.method == 'dw_bn' and (self.stride_q != 1
                                       or 2 * self.padding_q != self.kernel_size - 1):
            # The block adds the attention output (one token per query) to its input.
            raise ValueError(
                f'CvT q projection must keep the token grid: stride_q 1 and padding_q '
                f'(kernel - 1) / 2, got stride_q={self.stride_q}, padding_q={self.padding_q}, '
                f'kernel_size={self.kernel_size}')

    def window(self, branch: str) -> Optional[Tuple[int, int, int]]:
        """(kernel, stride, padding) of branch 'q' or 'kv', or None when it is the tokens."""
        if self.method == 'linear' or (self.method == 'avg' and branch == 'q'):
            return None
        if branch == 'q':
            return self.kernel_size, self.stride_q, self.padding_q
        return self.kernel_size, self.stride_kv, self.padding_kv


def _build_projection(projection: QKVProjection, branch: str, channels: int,
                      norm_cfg: dict) -> Optional[nn.Module]:
    """The module before branch ``branch``'s Linear (official ``_build_projection``)."""
    window = projection.window(branch)
    if window is None:
        return None
    kernel, stride, padding = window
    if projection.method == 'avg':
        return nn.AvgPool2d(kernel, stride, padding, ceil_mode=True)
    conv = nn.Conv2d(channels, channels, kernel, stride, padding, groups=channels, bias=False)
    return nn.Sequential(OrderedDict(conv=conv, bn=build_norm_layer(norm_cfg, channels)[1]))


class ConvAttention(BaseModule):
    """Multi-head attention with convolutional q/k/v projection.

    Each of q, k, v is a projection of the token map (by default a depth-wise conv, stride 1
    for q and 2 for k/v, -> BatchNorm; see :class:`QKVProjection`) -> flatten -> Linear. A
    cls token, when present, skips the projection and is concatenated to q, k and v
    afterwards, as in the official code.

    Args:
        dim_in (int): Input token width.
        dim_out (int): Output token width; also sets the score scale ``dim_out ** -0.5``
            (the official quirk: the stage width, not the head width).
        num_heads (int): Number of attention heads.
        qkv_bias (bool): Bias in the q/k/v Linear layers.
        attn_drop (float): Attention dropout.
        proj_drop (float): Dropout after the output projection.
        projection (QKVProjection): Method, kernel, strides and paddings of the q/k/v
            projections. Defaults to the released models' (``dw_bn``, 3, 1, 1, 2, 1).
        with_cls_token (bool): Whether the first token is a cls token.
        conv_proj_norm_cfg (dict): Norm after the depth-wise convs (BatchNorm by default).
        geometry (PixelGeometry): Where the input grid's cells sit on the image (for the
            attention layout that analysis tools observe).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, dim_in: int, dim_out: int, num_heads: int, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.,
                 projection: QKVProjection = QKVProjection(), with_cls_token: bool = False,
                 conv_proj_norm_cfg: dict = dict(type='BN'),
                 geometry: PixelGeometry = PixelGeometry(),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.geometry = geometry
        if dim_out % num_heads:
            raise ValueError(f'dim_out={dim_out} is not divisible by num_heads={num_heads}')
        self.num_heads = num_heads
        self.dim_out = dim_out
        self.scale = dim_out ** -0.5
        self.with_cls_token = with_cls_token
        self.attn_drop = attn_drop
        self.projection = projection
        for name in 'qkv':
            branch = 'q' if name == 'q' else 'kv'
            setattr(self, f'conv_proj_{name}',
                    _build_projection(projection, branch, dim_in, conv_proj_norm_cfg))
            setattr(self, f'proj_{name}', nn.Linear(dim_in, dim_out, bias=qkv_bias))
        self.proj = nn.Linear(dim_out, dim_out)
        self.proj_drop = nn.Dropout(proj_drop)

    @staticmethod
    def _conv_bn(fmap: torch.Tensor, projs) -> list:
        """``[proj(fmap) for proj in projs]`` for conv -> BN branches of equal stride.

        The depth-wise filters of all branches run as one grouped conv (outputs interleaved
        per group): one pass over the input instead of one per branch. A BatchNorm in eval
        mode is an affine map and is folded into that conv's weight and bias.
        """
        conv = projs[0].conv
        fold = all(isinstance(p.bn, _BatchNorm) and not p.bn.training and p.bn.affine
                   and p.bn.track_running_stats for p in projs)
        weights, biases = [], []
        for p in projs:
            weight = p.conv.weight
            if fold:
                scale = p.bn.weight * (p.bn.running_var + p.bn.eps).rsqrt()
                weight = weight * scale.view(-1, 1, 1, 1)
                biases.append(p.bn.bias - p.bn.running_mean * scale)
            weights.append(weight)
        n = len(projs)
        out = F.conv2d(fmap, torch.stack(weights, 1).flatten(0, 1),
                       torch.stack(biases, 1).flatten() if fold else None,
                       conv.stride, conv.padding, groups=conv.groups)
        outs = [out[:, i::n] for i in range(n)]
        return outs if fold else [p.bn(o) for p, o in zip(projs, outs)]

    def _project(self, fmap: Optional[torch.Tensor], tokens: torch.Tensor, hw: Grid, projs
                 ) -> Tuple[list, Grid]:
        """The (B, N', C) spatial tokens of each projection in ``projs`` (all of one
        branch) and their grid."""
        if projs[0] is None:
            return [tokens] * len(projs), hw
        if isinstance(projs[0], nn.AvgPool2d):
            outs = [projs[0](fmap)] * len(projs)  # k and v pool alike
        else:
            outs = self._conv_bn(fmap, projs)
        return [map_to_tokens(out) for out in outs], tuple(outs[0].shape[2:])

    def _geometry(self, branch: str) -> PixelGeometry:
        """Where the cells of branch 'q' or 'kv' sit on the image."""
        window = self.projection.window(branch)
        return self.geometry if window is None else self.geometry.after_conv(*window)

    def forward(self, x: torch.Tensor, hw: Grid) -> torch.Tensor:
        """x: (B, [1 +] H*W, C_in) tokens on grid ``hw``; returns (B, [1 +] H*W, C_out)."""
        if self.with_cls_token:
            cls_token, x = x[:, :1], x[:, 1:]
        # A contiguous NCHW copy makes the depth-wise convs ~1.3x faster than the
        # channels-last view the tokens give.
        fmap = (tokens_to_map(x, hw).contiguous() if self.projection.method != 'linear'
                else None)
        q, query_grid = self._project(fmap, x, hw, [self.conv_proj_q])
        kv, key_grid = self._project(fmap, x, hw, [self.conv_proj_k, self.conv_proj_v])
        qkv = []
        for name, t in zip('qkv', q + kv):
            if self.with_cls_token:
                t = torch.cat((cls_token, t), dim=1)
            proj = getattr(self, f'proj_{name}')
            qkv.append(split_heads(linear(t, proj.weight, proj.bias), self.num_heads)[0])
        layout = None
        if attention_observed():
            prefix = int(self.with_cls_token)
            layout = AttentionLayout(self, TokenGrid(query_grid, self._geometry('q'), prefix),
                                     TokenGrid(key_grid, self._geometry('kv'), prefix))
        out = scaled_attention(*qkv, scale=self.scale,
                               dropout_p=self.attn_drop if self.training else 0., layout=layout)
        return self.proj_drop(linear(merge_heads(out), self.proj.weight, self.proj.bias))


class CvTBlock(PreNormBlock):
    """Pre-norm transformer block: x + attn(norm1(x)); x + mlp(norm2(x)).

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        mlp_ratio (float): Hidden width of the MLP relative to ``embed_dims``.
        qkv_bias (bool): Bias in the q/k/v Linear layers.
        drop_rate (float): Dropout after the attention projection and in the MLP.
        attn_drop_rate (float): Attention dropout.
        drop_path_rate (float): Stochastic depth of this block.
        with_cls_token (bool): Whether the first token is a cls token.
        act_cfg (dict): MLP activation.
        norm_cfg (dict): Token norm (LayerNorm eps 1e-5).
        conv_proj_norm_cfg (dict): Norm of the q/k/v depth-wise convs.
        projection (QKVProjection): The q/k/v projections.
        geometry (PixelGeometry): Where the grid's cells sit on the image.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 4.,
                 qkv_bias: bool = True, drop_rate: float = 0., attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0., with_cls_token: bool = False,
                 projection: QKVProjection = QKVProjection(),
                 act_cfg: dict = dict(type='QuickGELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-5),
                 conv_proj_norm_cfg: dict = dict(type='BN'),
                 geometry: PixelGeometry = PixelGeometry(), init_cfg: Optional[dict] = None):
        attn = ConvAttention(embed_dims, embed_dims, num_heads, qkv_bias=qkv_bias,
                             attn_drop=attn_drop_rate, proj_drop=drop_rate,
                             projection=projection, with_cls_token=with_cls_token,
                             conv_proj_norm_cfg=conv_proj_norm_cfg, geometry=geometry)
        mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), act_cfg, drop_rate)
        super().__init__(embed_dims, attn, mlp, drop_path_rate, norm_cfg, init_cfg)


class CvTStage(BaseModule):
    """One CvT stage: ConvEmbed, optional cls token / positional embedding, blocks.

    Args:
        in_channels (int): Channels of the input map.
        embed_dims (int): Token width of the stage.
        depth (int): Number of blocks.
        num_heads (int): Attention heads.
        patch_size (int): Kernel of the token-embedding conv.
        patch_stride (int): Stride of the token-embedding conv.
        patch_padding (int): Padding of the token-embedding conv.
        with_cls_token (bool): Prepend a learnable cls token (last stage of CvT).
        pos_embed_grid (tuple, optional): When given, a learnable positional embedding of
            shape (1, C, H, W) for this reference grid is added to the tokens, resampled
            bicubically to each input's grid (the paper's ablation; off in CvT).
        drop_path_rate (float): Stochastic depth of the stage's last block; it rises
            linearly from 0 at the first block, as in the official code.
        geometry (PixelGeometry): Where the input map's cells sit on the image.
        with_cp (bool): Gradient checkpointing per block.
        block_cfg (dict): Remaining ``CvTBlock`` arguments (mlp_ratio, qkv_bias, act_cfg,
            norm_cfg, conv_proj_norm_cfg, drop_rate, attn_drop_rate, projection).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, in_channels: int, embed_dims: int, depth: int, num_heads: int,
                 patch_size: int, patch_stride: int, patch_padding: int,
                 with_cls_token: bool = False, pos_embed_grid: Optional[Grid] = None,
                 drop_path_rate: float = 0., geometry: PixelGeometry = PixelGeometry(),
                 with_cp: bool = False, block_cfg: dict = dict(),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        norm_cfg = block_cfg.get('norm_cfg', dict(type='LN', eps=1e-5))
        self.patch_embed = ConvEmbed(in_channels, embed_dims, patch_size, patch_stride,
                                     patch_padding, norm_cfg)
        self.geometry = geometry.after_conv(patch_size, patch_stride, patch_padding)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims)) if with_cls_token else None
        self.pos_embed = (nn.Parameter(torch.zeros(1, embed_dims, *pos_embed_grid))
                          if pos_embed_grid else None)
        self.pos_drop = nn.Dropout(block_cfg.get('drop_rate', 0.))
        # torch.linspace(0, drop_path_rate, depth) of the official code.
        rates = [drop_path_rate * j / (depth - 1) if depth > 1 else 0. for j in range(depth)]
        self.blocks = nn.ModuleList(
            CvTBlock(embed_dims, num_heads, drop_path_rate=rates[j],
                     with_cls_token=with_cls_token, geometry=self.geometry, **block_cfg)
            for j in range(depth))
        self.with_cp = with_cp

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """x: (B, C_in, H, W) -> ((B, C, H', W') map, (B, 1, C) cls token or None)."""
        x, hw = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + map_to_tokens(resample_pos_embed(self.pos_embed, hw))
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.pos_drop(x)
        for block in self.blocks:
            x = call_block(block, x, hw, with_cp=self.with_cp)
        cls_token = None
        if self.cls_token is not None:
            cls_token, x = x[:, :1], x[:, 1:]
        return tokens_to_map(x, hw), cls_token

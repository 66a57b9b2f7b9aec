"""Building blocks of ConViT (d'Ascoli et al. 2021, arXiv 2103.10697).

Module and parameter names follow facebookresearch/convit and timm's ``convit.py`` so their
checkpoints load without renaming. Tokens are (B, N, C) in row-major order over a grid
``hw`` = (H, W) that travels with them: the relative positions come from that grid, never
from the token count.
"""
from typing import Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from ...layers import (AttentionLayout, Grid, Mlp, PixelGeometry, PreNormBlock, TokenGrid,
                       attention_observed, linear, merge_heads, scaled_attention, split_heads)


def _offset_softmax(length: int, linear_weight: torch.Tensor,
                    square_weight: torch.Tensor) -> torch.Tensor:
    """(heads, L, L) row-stochastic: row q is softmax over k of ``a (k - q) + b (k - q)^2``."""
    positions = torch.arange(length, device=linear_weight.device, dtype=linear_weight.dtype)
    offsets = positions.view(1, -1) - positions.view(-1, 1)  # [q, k] = k - q
    logits = (linear_weight.view(-1, 1, 1) * offsets
              + square_weight.view(-1, 1, 1) * offsets.square())
    return logits.softmax(dim=-1)


def positional_attention_factors(pos_weight: torch.Tensor, hw: Grid
                                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The two factors of GPSA's positional attention over an H x W grid.

    The positional score of query (yq, xq) for key (yk, xk) is
    ``w0 dx + w1 dy + w2 (dx^2 + dy^2) + bias`` with dx = xk - xq, dy = yk - yq. The bias
    cancels in the softmax over keys, and the exponential splits into an x part and a y
    part, so the (N x N) attention is ``kron(P_y, P_x)`` for row-major tokens.

    Args:
        pos_weight (Tensor): ``pos_proj.weight``, (heads, 3): columns for dx, dy, dx^2+dy^2.
        hw (tuple): The grid (H, W).

    Returns:
        tuple: P_y (heads, H, H) and P_x (heads, W, W), both row-stochastic.
    """
    w_dx, w_dy, w_dist = pos_weight.unbind(dim=1)
    return _offset_softmax(hw[0], w_dy, w_dist), _offset_softmax(hw[1], w_dx, w_dist)


def positional_attention(v: torch.Tensor, pos_weight: torch.Tensor, hw: Grid) -> torch.Tensor:
    """GPSA's positional attention applied to ``v`` without forming the N x N matrix.

    ``kron(P_y, P_x) @ v`` as two small products: O(N (H + W) d) time and O(H^2 + W^2)
    memory per head instead of O(N^2).

    Args:
        v (Tensor): (B, heads, H*W, d) values in row-major grid order.
        pos_weight (Tensor): ``pos_proj.weight``, (heads, 3).
        hw (tuple): The grid (H, W).

    Returns:
        Tensor: (B, heads, H*W, d).
    """
    height, width = hw
    batch, heads, _, dim = v.shape
    p_y, p_x = positional_attention_factors(pos_weight.to(v.dtype), hw)
    # The factors are expanded to the batch and copied, as matmul's broadcasting would copy
    # them anyway; left to matmul, the broadcast (stride-0) batch makes torch.export assume
    # a batch size other than 1 (a view-or-copy choice), and the exported graph refuses a
    # single image.
    p_x = p_x.unsqueeze(1).expand(batch, heads, height, width, width).contiguous()
    p_y = p_y.expand(batch, heads, height, height).contiguous()
    # Mix along x within each row: (B, h, H, W, W) @ (B, h, H, W, d).
    rows = torch.matmul(p_x, v.reshape(batch, heads, height, width, dim))
    # Mix along y, all columns at once: (B, h, H, H) @ (B, h, H, W*d).
    out = torch.matmul(p_y, rows.reshape(batch, heads, height, width * dim))
    return out.reshape(batch, heads, height * width, dim)


class GPSA(BaseModule):
    """Gated positional self-attention, exact and memory-linear in the positional branch.

    ``attn = (1 - sigmoid(g_h)) softmax(q k^T / sqrt(d)) + sigmoid(g_h) softmax(pos_proj(r))``
    per head h, then ``attn @ v`` and ``proj``. The content branch runs through the fused
    attention kernel, the positional branch through :func:`positional_attention`; the mix
    is applied to the two outputs (it is linear in ``attn``). The reference's
    ``attn /= attn.sum(-1)`` is a no-op: a convex mix of two distributions sums to one.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        qkv_bias (bool): Bias in ``qk`` and ``v``. Defaults to False.
        proj_drop (float): Dropout after ``proj``. Defaults to 0.
        locality_strength (float): Scale of the local initialisation of ``pos_proj``.
            Defaults to 1.
        geometry (PixelGeometry): Where the grid's cells (patches) sit on the image.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = False,
                 proj_drop: float = 0., locality_strength: float = 1.,
                 geometry: PixelGeometry = PixelGeometry(), init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.num_heads = num_heads
        self.embed_dims = embed_dims
        self.scale = (embed_dims // num_heads) ** -0.5
        self.locality_strength = locality_strength
        self.geometry = geometry
        self.qk = nn.Linear(embed_dims, embed_dims * 2, bias=qkv_bias)
        self.v = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.pos_proj = nn.Linear(3, num_heads)
        self.proj_drop = nn.Dropout(proj_drop)
        self.gating_param = nn.Parameter(torch.ones(num_heads))

    def forward(self, x: torch.Tensor, hw: Grid) -> torch.Tensor:
        """x: (B, H*W, C) tokens on grid ``hw``; returns (B, H*W, C)."""
        q, k = split_heads(linear(x, self.qk.weight, self.qk.bias), self.num_heads, 2)
        v = split_heads(linear(x, self.v.weight, self.v.bias), self.num_heads)[0]
        gate = torch.sigmoid(self.gating_param)
        content = scaled_attention(q, k, v, scale=self.scale,
                                   layout=self._layout(hw, gate) if attention_observed() else None)
        position = positional_attention(v, self.pos_proj.weight, hw)
        # (1 - gate) content + gate position, per head.
        out = torch.lerp(content, position, gate.view(1, -1, 1, 1).to(content.dtype))
        return self.proj_drop(linear(merge_heads(out), self.proj.weight, self.proj.bias))

    def _layout(self, hw: Grid, gate: torch.Tensor) -> AttentionLayout:
        grid = TokenGrid(hw, self.geometry)
        factors = positional_attention_factors(self.pos_proj.weight.float(), hw)
        return AttentionLayout(self, grid, grid, positional=factors, gate=gate.float())

    @torch.no_grad()
    def local_init(self):
        """The paper's initialisation: ``v`` is the identity, and head h attends to one
        offset of a sqrt(heads) x sqrt(heads) kernel around the query (a convolution)."""
        self.v.weight.copy_(torch.eye(self.embed_dims))
        kernel = int(self.num_heads ** .5)
        center = (kernel - 1) / 2 if kernel % 2 == 0 else kernel // 2
        for h1 in range(kernel):
            for h2 in range(kernel):
                head = h1 + kernel * h2
                self.pos_proj.weight[head] = torch.tensor(
                    [2. * (h2 - center), 2. * (h1 - center), -1.])
        self.pos_proj.weight.mul_(self.locality_strength)


class MHSA(BaseModule):
    """Multi-head self-attention of ConViT's last blocks (with the cls token).

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        qkv_bias (bool): Bias in ``qkv``. Defaults to False.
        proj_drop (float): Dropout after ``proj``. Defaults to 0.
        geometry (PixelGeometry): Where the grid's cells (patches) sit on the image.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = False,
                 proj_drop: float = 0., geometry: PixelGeometry = PixelGeometry(),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads) ** -0.5
        self.geometry = geometry
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, hw: Grid) -> torch.Tensor:
        """x: (B, 1 + H*W, C): the cls token, then the tokens of grid ``hw`` (positions play
        no part in the attention); returns (B, 1 + H*W, C)."""
        q, k, v = split_heads(linear(x, self.qkv.weight, self.qkv.bias), self.num_heads, 3)
        layout = None
        if attention_observed():
            grid = TokenGrid(hw, self.geometry, prefix_tokens=x.shape[1] - hw[0] * hw[1])
            layout = AttentionLayout(self, grid, grid)
        out = scaled_attention(q, k, v, scale=self.scale, layout=layout)
        return self.proj_drop(linear(merge_heads(out), self.proj.weight, self.proj.bias))


class ConViTBlock(PreNormBlock):
    """Pre-norm block: x + attn(norm1(x)); x + mlp(norm2(x)), attention GPSA or MHSA.

    Args:
        embed_dims (int): Token width.
        num_heads (int): Attention heads.
        use_gpsa (bool): GPSA (the first ``local_up_to_layer`` blocks) or MHSA.
        mlp_ratio (float): Hidden width of the MLP relative to ``embed_dims``. Defaults to 4.
        qkv_bias (bool): Bias in the query/key/value projections. Defaults to False.
        drop_rate (float): Dropout after the attention projection and in the MLP.
        drop_path_rate (float): Stochastic depth of this block.
        locality_strength (float): See :class:`GPSA`.
        act_cfg (dict): MLP activation. Defaults to exact GELU.
        norm_cfg (dict): Token norm. Defaults to LayerNorm, eps 1e-6.
        geometry (PixelGeometry): Where the grid's cells (patches) sit on the image.
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self, embed_dims: int, num_heads: int, use_gpsa: bool, mlp_ratio: float = 4.,
                 qkv_bias: bool = False, drop_rate: float = 0., drop_path_rate: float = 0.,
                 locality_strength: float = 1., act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN', eps=1e-6),
                 geometry: PixelGeometry = PixelGeometry(), init_cfg: Optional[dict] = None):
        if use_gpsa:
            attn = GPSA(embed_dims, num_heads, qkv_bias, drop_rate, locality_strength, geometry)
        else:
            attn = MHSA(embed_dims, num_heads, qkv_bias, drop_rate, geometry)
        mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), act_cfg, drop_rate)
        super().__init__(embed_dims, attn, mlp, drop_path_rate, norm_cfg, init_cfg)
        self.use_gpsa = use_gpsa

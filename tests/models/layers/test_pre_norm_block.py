"""PreNormBlock computes x + attn(norm1(x)), then + mlp(norm2(.)), passing the grid to both."""
import torch
from torch import nn

from cvt_dense.models.layers import Mlp, PreNormBlock


class ScaledByGrid(nn.Module):
    """A stand-in sublayer that uses the grid: tokens times h * w (+ an offset)."""

    def __init__(self, offset: float = 0.):
        super().__init__()
        self.offset = offset

    def forward(self, x, hw):
        return x * (hw[0] * hw[1]) + self.offset


def test_block_matches_the_formula():
    torch.manual_seed(0)
    block = PreNormBlock(8, ScaledByGrid(), Mlp(8, 16, dict(type='GELU')), drop_path_rate=0.,
                         norm_cfg=dict(type='LN', eps=1e-6)).eval()
    x = torch.randn(2, 6, 8)
    y = x + block.norm1(x) * 6
    expected = y + block.mlp(block.norm2(y))
    torch.testing.assert_close(block(x, (2, 3)), expected, rtol=0, atol=0)
    assert [name for name, _ in block.named_children()] == ['norm1', 'attn', 'drop_path',
                                                            'norm2', 'mlp']


def test_the_mlp_gets_the_grid_too():
    """A conv-style MLP (PVTv2's) needs the grid: the block hands it over."""
    block = PreNormBlock(4, ScaledByGrid(), ScaledByGrid(offset=1.), drop_path_rate=0.,
                         norm_cfg=dict(type='LN')).eval()
    x = torch.randn(1, 12, 4)
    y = x + block.norm1(x) * 12
    torch.testing.assert_close(block(x, (3, 4)), y + block.norm2(y) * 12 + 1.)

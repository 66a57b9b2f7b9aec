"""PreNormBlock computes x + attn(norm1(x)), then + mlp(norm2(.)), passing the grid on."""
import torch
from torch import nn

from cvt_dense.models.layers import PreNormBlock


class ScaledByGrid(nn.Module):
    """A stand-in attention that uses the grid: tokens times h * w."""

    def forward(self, x, hw):
        return x * (hw[0] * hw[1])


def test_block_matches_the_formula():
    torch.manual_seed(0)
    block = PreNormBlock(8, ScaledByGrid(), mlp_ratio=2., drop_rate=0., drop_path_rate=0.,
                         act_cfg=dict(type='GELU'), norm_cfg=dict(type='LN', eps=1e-6)).eval()
    x = torch.randn(2, 6, 8)
    y = x + block.norm1(x) * 6
    expected = y + block.mlp(block.norm2(y))
    torch.testing.assert_close(block(x, (2, 3)), expected, rtol=0, atol=0)
    assert [name for name, _ in block.named_children()] == ['norm1', 'attn', 'drop_path',
                                                            'norm2', 'mlp']

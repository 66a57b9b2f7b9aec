"""The query's attention rows: softmax rows over the right keys, the ones SDPA used."""
import pytest
import torch
import torch.nn.functional as F

from cvt_dense.analysis.attention_maps import (last_layer_per_stage, query_attention)
from cvt_dense.models import CvT
from cvt_dense.models.layers import observe_attention

TINY = dict(embed_dims=[16, 32, 48], num_heads=[1, 2, 3], depths=[1, 2, 1])


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    backbone = CvT(TINY, drop_path_rate=0.).eval()
    backbone.init_weights()
    return backbone


def test_rows_sum_to_one_over_a_key_grid_from_the_conv_arithmetic(model):
    x = torch.randn(1, 3, 70, 101)
    layers = query_attention(model, x, point=(90, 10))
    assert [layer.name for layer in layers] == ['stage0.blocks.0.attn', 'stage1.blocks.0.attn',
                                                'stage1.blocks.1.attn', 'stage2.blocks.0.attn']
    h, w = 70, 101
    for layer, (k, s, p), heads in zip(layers, [(7, 4, 2), (3, 2, 1), (3, 2, 1), (3, 2, 1)],
                                       [1, 2, 2, 3]):
        if layer.name != 'stage1.blocks.1.attn':
            h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        assert layer.query_grid == (h, w)
        assert layer.maps.shape == (heads, (h + 1) // 2, (w + 1) // 2)
        # Pixel (90, 10) of a 101 x 70 image: right edge, top.
        assert layer.query_cell == (int(10 * h / 70), int(90 * w / 101))
        assert torch.allclose(layer.row_sums, torch.ones(heads), atol=1e-5)
        assert (layer.cls is not None) == layer.name.startswith('stage2')
    assert [layer.name for layer in last_layer_per_stage(layers)] == [
        'stage0.blocks.0.attn', 'stage1.blocks.1.attn', 'stage2.blocks.0.attn']


def test_rows_reproduce_the_fused_attention_output(model):
    """attention row @ v = SDPA's output for that query: the right row, the right keys."""
    x = torch.randn(1, 3, 64, 80)
    calls = []
    with observe_attention(lambda q, k, v, scale: calls.append((q, k, v, scale))):
        layers = query_attention(model, x, point=(33, 47))
    assert len(calls) == len(layers)
    for layer, (q, k, v, scale) in zip(layers, calls):
        h, w = layer.query_grid
        num_cls = 0 if layer.cls is None else 1
        index = num_cls + layer.query_cell[0] * w + layer.query_cell[1]
        expected = F.scaled_dot_product_attention(q, k, v, scale=scale)[0, :, index]
        weights = layer.maps.flatten(1)
        if num_cls:
            weights = torch.cat([layer.cls[:, None], weights], 1)
        actual = torch.einsum('hn,hnd->hd', weights, v[0])
        assert torch.allclose(actual, expected, atol=1e-5), layer.name


def test_convit_positional_rows_are_the_dense_gpsa_rows_and_carry_the_gates():
    """Each GPSA layer's map is the query's row of softmax(pos_proj(r)) over the true grid
    (written densely here), and sums to 1; the gates are sigmoid(g)."""
    from cvt_dense.models import ConViT
    from convit_oracle import TINY_CONVIT, randomize_convit_, true_grid_offsets
    backbone = randomize_convit_(ConViT(TINY_CONVIT)).eval()
    x = torch.randn(1, 3, 70, 101)  # padded to a 5 x 7 grid
    layers = query_attention(backbone, x, point=(90, 40))
    assert [layer.name for layer in layers] == ['blocks.0.attn', 'blocks.1.attn']
    assert last_layer_per_stage(layers) == layers
    for layer, block in zip(layers, backbone.blocks):
        assert layer.query_grid == (5, 7) and layer.query_cell == (2, 5)
        scores = block.attn.pos_proj(true_grid_offsets(5, 7))[0].softmax(dim=1)  # (N, N, h)
        expected = scores[2 * 7 + 5].T.reshape(4, 5, 7)
        torch.testing.assert_close(layer.maps, expected, atol=1e-6, rtol=1e-5)
        assert torch.allclose(layer.row_sums, torch.ones(4), atol=1e-5)
        torch.testing.assert_close(layer.gate, torch.sigmoid(block.attn.gating_param))


def test_unsupported_backbone_and_bad_point(model):
    class SomeViT(torch.nn.Module):
        pass

    with pytest.raises(NotImplementedError, match='not supported yet for SomeViT'):
        query_attention(SomeViT(), torch.randn(1, 3, 32, 32), (1, 1))
    with pytest.raises(ValueError, match=r'\(x=40, y=3\) is outside the 32x64'):
        query_attention(model, torch.randn(1, 3, 64, 32), (40, 3))

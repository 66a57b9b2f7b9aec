"""Adapting grid- and channel-dependent tensors (CvT's description drives the shared rules)."""
import pytest
import torch
import torch.nn.functional as F

from cvt_dense.models.backbones.cvt.pretrained import CVT_CHECKPOINTS
from cvt_dense.models.layers import pos_embed_as_map
from cvt_dense.weights import adapt_input_conv, adapt_to_model

KERNEL_ARGS = dict(stride=4, padding=2)


@pytest.fixture
def rgb_kernel():
    return torch.randn(8, 3, 7, 7, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def gray():
    return torch.randn(2, 1, 20, 24, generator=torch.Generator().manual_seed(1))


def test_one_channel_is_the_sum_rule(rgb_kernel, gray):
    w1 = adapt_input_conv(rgb_kernel, 1)
    assert w1.shape == (8, 1, 7, 7)
    expected = F.conv2d(gray.expand(-1, 3, -1, -1), rgb_kernel, **KERNEL_ARGS)
    torch.testing.assert_close(F.conv2d(gray, w1, **KERNEL_ARGS), expected)


@pytest.mark.parametrize('n', [2, 4, 13])
def test_n_channels_preserve_the_gray_response(rgb_kernel, gray, n):
    wn = adapt_input_conv(rgb_kernel, n)
    assert wn.shape == (8, n, 7, 7)
    # Every channel carries the same kernel: the mean RGB kernel scaled by 3/n.
    torch.testing.assert_close(wn[:, :1].expand(-1, n, -1, -1), wn)
    torch.testing.assert_close(wn[:, 0] * n / 3, rgb_kernel.mean(1))
    expected = F.conv2d(gray.expand(-1, 3, -1, -1), rgb_kernel, **KERNEL_ARGS)
    torch.testing.assert_close(F.conv2d(gray.expand(-1, n, -1, -1), wn, **KERNEL_ARGS),
                               expected, atol=1e-4, rtol=1e-4)


def test_three_channels_unchanged_and_bad_input_rejected(rgb_kernel):
    assert adapt_input_conv(rgb_kernel, 3) is rgb_kernel
    with pytest.raises(ValueError, match=r'\(8, 1, 7, 7\)'):
        adapt_input_conv(rgb_kernel[:, :1], 2)
    with pytest.raises(ValueError, match='in_channels'):
        adapt_input_conv(rgb_kernel, 0)


def test_adapt_input_conv_keeps_dtype(rgb_kernel):
    assert adapt_input_conv(rgb_kernel.half(), 1).dtype == torch.float16


def test_pos_embed_token_layout_is_read_as_a_map():
    grid = torch.randn(1, 6, 4, 4)
    tokens = grid.flatten(2).transpose(1, 2)  # (1, 16, 6)
    torch.testing.assert_close(pos_embed_as_map(tokens, 6), grid)
    assert pos_embed_as_map(grid, 6) is grid
    with pytest.raises(ValueError, match=r'\(1, 15, 6\)'):
        pos_embed_as_map(torch.randn(1, 15, 6), 6)


def test_adapt_to_model_resamples_pos_embed_and_input_conv(rgb_kernel):
    pos = torch.randn(1, 8, 14, 14)
    ckpt = {'stage2.pos_embed': pos, 'stage0.patch_embed.proj.weight': rgb_kernel,
            'stage0.patch_embed.proj.bias': torch.zeros(8)}
    model = {'stage2.pos_embed': torch.zeros(1, 8, 10, 12),
             'stage0.patch_embed.proj.weight': torch.zeros(8, 1, 7, 7),
             'stage0.patch_embed.proj.bias': torch.zeros(8)}
    out, done = adapt_to_model(ckpt, model, CVT_CHECKPOINTS)
    expected = F.interpolate(pos, size=(10, 12), mode='bicubic', align_corners=False)
    torch.testing.assert_close(out['stage2.pos_embed'], expected)
    torch.testing.assert_close(out['stage0.patch_embed.proj.weight'], rgb_kernel.sum(1, True))
    assert out['stage0.patch_embed.proj.bias'] is ckpt['stage0.patch_embed.proj.bias']
    assert {(a.key, a.source_shape, a.target_shape) for a in done} == {
        ('stage2.pos_embed', (1, 8, 14, 14), (1, 8, 10, 12)),
        ('stage0.patch_embed.proj.weight', (8, 3, 7, 7), (8, 1, 7, 7))}


def test_adapt_to_model_leaves_unfixable_shapes_alone(rgb_kernel):
    ckpt = {'stage0.patch_embed.proj.weight': rgb_kernel,  # other output width
            'stage1.pos_embed': torch.randn(1, 8, 7, 7),  # other channel count
            'stage1.blocks.0.mlp.fc1.weight': torch.randn(4, 2)}
    model = {'stage0.patch_embed.proj.weight': torch.zeros(16, 1, 7, 7),
             'stage1.pos_embed': torch.zeros(1, 12, 7, 7),
             'stage1.blocks.0.mlp.fc1.weight': torch.zeros(8, 2)}
    out, done = adapt_to_model(ckpt, model, CVT_CHECKPOINTS)
    assert done == []
    assert all(out[k] is ckpt[k] for k in ckpt)

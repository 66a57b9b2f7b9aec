"""CvT backbone: parity with transformers.CvtModel, official defaults, shapes, options, errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from cvt_dense.models import CvT
from cvt_dense.models.backbones.cvt.pretrained import convert_to_cvt
from hf_oracle import (TINY_ARCH, assert_stage_outputs_close, cvt_for_hf, hf_stage_outputs,
                       randomize_)


def hf_cvt13(seed=0):
    from transformers import CvtConfig, CvtModel
    torch.manual_seed(seed)
    return randomize_(CvtModel(CvtConfig()), seed).eval()


@pytest.fixture(scope='module')
def hf13():
    return hf_cvt13()


@pytest.mark.parametrize('size', [(224, 224), (333, 517), (97, 151)])
def test_cvt13_matches_transformers(hf13, size):
    model = cvt_for_hf('cvt-13').eval()
    model.load_state_dict(convert_to_cvt(hf13.state_dict()), strict=False)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = model(x)
    assert_stage_outputs_close(ours, hf_stage_outputs(hf13, x), atol=1e-4)


def quick_gelu_reference(x):
    return x * torch.sigmoid(1.702 * x)


class QuickGELURef(torch.nn.Module):
    def forward(self, x):
        return quick_gelu_reference(x)


def test_defaults_are_the_official_quickgelu_eps_and_scale():
    """Our default model equals transformers' CvT with its GELU swapped for QuickGELU, and
    the official eps / scale are what the modules hold."""
    hf = hf_cvt13()
    for layer in hf.encoder.stages[0].layers:
        layer.intermediate.activation = QuickGELURef()
    for stage in hf.encoder.stages[1:]:
        for layer in stage.layers:
            layer.intermediate.activation = QuickGELURef()
    model = CvT('cvt-13', out_norm=False).eval()
    model.load_state_dict(convert_to_cvt(hf.state_dict()), strict=False)
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        assert_stage_outputs_close(model(x), hf_stage_outputs(hf, x))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-5 for m in norms)
    for i, dim in enumerate((64, 192, 384)):
        assert getattr(model, f'stage{i}').blocks[0].attn.scale == dim ** -0.5


def test_attention_scale_is_the_stage_width():
    """One attention layer against an einsum implementation written from the paper."""
    from cvt_dense.models.backbones.cvt.blocks import ConvAttention
    attn = ConvAttention(48, 48, num_heads=3, with_cls_token=True).eval()
    randomize_(attn)
    hw = (5, 7)
    x = torch.randn(2, 1 + 35, 48)
    cls, tokens = x[:, :1], x[:, 1:]
    fmap = tokens.transpose(1, 2).reshape(2, 48, *hw)

    def branch(name):
        t = getattr(attn, f'conv_proj_{name}')(fmap).flatten(2).transpose(1, 2)
        t = getattr(attn, f'proj_{name}')(torch.cat((cls, t), 1))
        return t.reshape(2, t.shape[1], 3, 16).permute(0, 2, 1, 3)

    q, k, v = branch('q'), branch('k'), branch('v')
    weights = torch.softmax(torch.einsum('bhqd,bhkd->bhqk', q, k) * 48 ** -0.5, -1)
    expected = attn.proj(torch.einsum('bhqk,bhkd->bhqd', weights, v).permute(0, 2, 1, 3)
                         .reshape(2, 36, 48))
    with torch.no_grad():
        assert torch.allclose(attn(x, hw), expected, atol=1e-5)


def test_quickgelu_matches_formula():
    from cvt_dense.models.layers import QuickGELU
    x = torch.linspace(-8, 8, 1001, requires_grad=True)
    y = QuickGELU()(x)
    assert torch.allclose(y, quick_gelu_reference(x), atol=1e-6)
    y.sum().backward()
    ref_x = x.detach().clone().requires_grad_()
    quick_gelu_reference(ref_x).sum().backward()
    assert torch.allclose(x.grad, ref_x.grad, atol=1e-5)


@pytest.mark.parametrize('arch, millions', [('cvt-13', 19.61), ('cvt-21', 31.24)])
def test_parameter_counts(arch, millions):
    with torch.device('meta'):
        model = CvT(arch, out_norm=False)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - millions) / millions < 0.01, count


def test_cvt_w24_structure():
    with torch.device('meta'):
        model = CvT('cvt-w24')
    assert model.embed_dims == [192, 768, 1024]
    assert [len(getattr(model, f'stage{i}').blocks) for i in range(3)] == [2, 2, 20]
    assert model.stage2.blocks[0].attn.num_heads == 16


def conv_out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


@pytest.mark.parametrize('size', [(3, 3), (5, 9), (31, 17), (333, 517)])
def test_output_shapes_follow_conv_arithmetic(size):
    model = CvT(TINY_ARCH, extra_level=True, out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    h, w = size
    expected = []
    for k, s, p in ((7, 4, 2), (3, 2, 1), (3, 2, 1), (3, 2, 1)):
        h, w = conv_out(h, k, s, p), conv_out(w, k, s, p)
        expected.append((h, w))
    assert [tuple(o.shape[2:]) for o in outs] == expected
    assert [o.shape[1] for o in outs] == [16, 32, 48, 48]


def test_large_input_shapes():
    model = CvT(TINY_ARCH).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 800, 1333))
    h, w = conv_out(800, 7, 4, 2), conv_out(1333, 7, 4, 2)
    assert (h, w) == (200, 333)
    assert [tuple(o.shape[2:]) for o in outs] == [(h, w), (conv_out(h, 3, 2, 1), conv_out(w, 3, 2, 1)),
                                                  (50, 84)]


def test_out_indices_and_out_norm():
    x = torch.randn(1, 3, 64, 64)
    raw = CvT(TINY_ARCH, out_norm=False).eval()
    normed = CvT(TINY_ARCH, out_indices=(1, 2)).eval()
    normed.load_state_dict(raw.state_dict(), strict=False)
    randomize_(normed.out_norm1)
    with torch.no_grad():
        a, b = raw(x), normed(x)
    assert len(b) == 2
    expected = F.layer_norm(a[1].permute(0, 2, 3, 1), (32,), normed.out_norm1.weight,
                            normed.out_norm1.bias, eps=1e-5).permute(0, 3, 1, 2)
    assert torch.allclose(b[0], expected, atol=1e-5)
    assert not hasattr(normed, 'out_norm0')


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='cvt-99'), r"cvt-13.*cvt-21.*cvt-w24"),
    (dict(arch=dict(embed_dims=[8, 16, 24], num_heads=[1, 2, 3])), 'depths'),
    (dict(arch=dict(embed_dims=[8, 16], num_heads=[1, 2, 3], depths=[1, 1, 1])), 'same length'),
    (dict(arch=TINY_ARCH, out_indices=(0, 3)), 'extra_level'),
])
def test_bad_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CvT(**kwargs)


@pytest.mark.parametrize('shape, match', [
    ((3, 64, 64), '4D'), ((1, 1, 64, 64), 'in_channels=3'), ((1, 3, 2, 64), 'at least 3x3')])
def test_bad_input_errors(shape, match):
    with pytest.raises(ValueError, match=match):
        CvT(TINY_ARCH)(torch.randn(*shape))


def test_in_channels():
    model = CvT(TINY_ARCH, in_channels=4).eval()
    assert model(torch.randn(1, 4, 32, 32))[0].shape == (1, 16, 8, 8)


def test_cls_token_only_in_last_stage_and_not_in_outputs():
    model = CvT(TINY_ARCH)
    assert model.stage0.cls_token is None and model.stage1.cls_token is None
    assert model.stage2.cls_token.shape == (1, 1, 48)
    # The cls token takes part in attention: changing it changes the last stage output.
    x = torch.randn(1, 3, 40, 40)
    model.eval()
    with torch.no_grad():
        before = model(x)[2]
        model.stage2.cls_token.add_(1.)
        after = model(x)[2]
    assert before.shape == (1, 48, 3, 3) and not torch.allclose(before, after)


def test_pos_embed_resampled_to_any_grid():
    model = CvT(TINY_ARCH, use_pos_embed=True, pretrain_img_size=64).eval()
    assert model.stage0.pos_embed.shape == (1, 16, 16, 16)
    assert model.stage2.pos_embed.shape == (1, 48, 4, 4)
    with torch.no_grad():
        model.stage0.pos_embed.normal_()
        outs = model(torch.randn(1, 3, 50, 90))
        plain = CvT(TINY_ARCH).eval()
        plain.load_state_dict(model.state_dict(), strict=False)
        assert not torch.allclose(outs[0], plain(torch.randn(1, 3, 50, 90))[0])
    assert outs[0].shape == (1, 16, conv_out(50, 7, 4, 2), conv_out(90, 7, 4, 2))


def test_frozen_stages_zero_freezes_the_stem_only():
    model = CvT(TINY_ARCH, frozen_stages=0).train()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {'stage0.patch_embed.proj.weight', 'stage0.patch_embed.proj.bias',
                      'stage0.patch_embed.norm.weight', 'stage0.patch_embed.norm.bias'}
    assert not model.stage0.patch_embed.training and model.stage0.blocks[0].training


def test_frozen_stages():
    model = CvT(TINY_ARCH, frozen_stages=2)  # stages 0 and 1, as Swin's frozen_stages=2
    model.train()
    for i in (0, 1):
        stage = getattr(model, f'stage{i}')
        assert not any(p.requires_grad for p in stage.parameters())
        assert not stage.training
        assert all(not m.training for m in stage.modules())
        assert not any(p.requires_grad for p in getattr(model, f'out_norm{i}').parameters())
    assert all(p.requires_grad for p in model.stage2.parameters())
    assert model.stage2.training
    # Re-applied on every train(): BN running stats of frozen stages stay put.
    bn = model.stage0.blocks[0].attn.conv_proj_q.bn
    before = bn.running_mean.clone()
    model.train()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(bn.running_mean, before)
    assert not torch.equal(model.stage2.blocks[0].attn.conv_proj_q.bn.running_mean,
                           torch.zeros(48))


def test_norm_eval():
    model = CvT(TINY_ARCH, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert model.stage0.blocks[0].training
    assert all(m.training for m in CvT(TINY_ARCH).train().modules())


def test_conv_proj_norm_cfg_sets_the_qkv_norms_only():
    model = CvT(TINY_ARCH, conv_proj_norm_cfg=dict(type='GN', num_groups=1))
    norms = {type(m).__name__ for name, m in model.named_modules() if name.endswith('.bn')}
    assert norms == {'GroupNorm'}
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in model.modules())


def test_conv_norm_cfg_is_a_deprecated_name_of_conv_proj_norm_cfg():
    with pytest.warns(FutureWarning, match='conv_norm_cfg is deprecated, use '
                      'conv_proj_norm_cfg'):
        model = CvT(TINY_ARCH, conv_norm_cfg=dict(type='SyncBN'))
    assert isinstance(model.stage1.blocks[0].attn.conv_proj_k.bn, torch.nn.SyncBatchNorm)
    with pytest.raises(ValueError, match='both conv_proj_norm_cfg'):
        CvT(TINY_ARCH, conv_proj_norm_cfg=dict(type='BN'), conv_norm_cfg=dict(type='BN'))


def test_syncbn_trains_as_batchnorm_in_one_process_without_a_group():
    """A config's SyncBN (no process group: CPU, one GPU, tools without a launcher) trains a
    step on the CPU with exactly the statistics and gradients of plain BN."""
    assert not torch.distributed.is_initialized()
    torch.manual_seed(0)
    synced = CvT(TINY_ARCH, conv_proj_norm_cfg=dict(type='SyncBN'), drop_path_rate=0.)
    plain = CvT(TINY_ARCH, drop_path_rate=0.)
    plain.load_state_dict(synced.state_dict())
    x = torch.randn(2, 3, 32, 48)
    for model in (synced, plain):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        sum(out.square().mean() for out in model.train()(x)).backward()
        optimizer.step()
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    for (name, ours), theirs in zip(synced.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(ours, theirs, msg=name)
    bn = synced.stage0.blocks[0].attn.conv_proj_q.bn
    assert bn.num_batches_tracked == 1 and bn.running_var.ne(1).all()


def test_with_cp_gives_identical_outputs_and_gradients():
    torch.manual_seed(0)
    plain = CvT(TINY_ARCH, drop_path_rate=0.)
    checkpointed = CvT(TINY_ARCH, drop_path_rate=0., with_cp=True)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 48, 40)
    results = []
    for model in (plain, checkpointed):
        model.train()
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        results.append((outs, {n: p.grad for n, p in model.named_parameters()}))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        assert torch.allclose(a, b, atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-5), name


def test_drop_path_is_the_official_schedule():
    """Per stage, torch.linspace(0, DROP_PATH_RATE[i], DEPTH[i]) as in cls_cvt.py: CvT-13
    has drop path in stage 3 only, rising to 0.1 at its last block."""
    model = CvT('cvt-13')
    for i, (rate, depth) in enumerate(zip([0., 0., 0.1], [1, 2, 10])):
        blocks = getattr(model, f'stage{i}').blocks
        rates = [getattr(b.drop_path, 'drop_prob', 0.) for b in blocks]
        official = torch.linspace(0, rate, depth).tolist()
        assert all(math.isclose(a, b, abs_tol=1e-7) for a, b in zip(rates, official)), i
    assert isinstance(model.stage2.blocks[0].drop_path, torch.nn.Identity)
    assert math.isclose(model.stage2.blocks[-1].drop_path.drop_prob, 0.1)


def test_default_init_is_truncated_normal():
    model = CvT(TINY_ARCH)
    model.init_weights()
    w = model.stage2.blocks[0].mlp.fc1.weight
    assert abs(w.std().item() - 0.02) < 0.002
    assert torch.all(model.stage2.blocks[0].mlp.fc1.bias == 0)
    assert model.stage2.cls_token.abs().max() > 0


def test_layer_depth():
    model = CvT('cvt-13')
    num_layers = 13 + 2
    assert model.get_layer_depth('backbone.stage0.patch_embed.proj.weight', 'backbone.') == (0, num_layers)
    assert model.get_layer_depth('backbone.stage0.blocks.0.norm1.weight', 'backbone.') == (1, num_layers)
    assert model.get_layer_depth('backbone.stage1.cls_token', 'backbone.')[0] == 1
    assert model.get_layer_depth('backbone.stage2.blocks.9.mlp.fc2.bias', 'backbone.')[0] == 13
    assert model.get_layer_depth('backbone.out_norm2.weight', 'backbone.')[0] == num_layers - 1
    assert model.get_layer_depth('neck.lateral_convs.0.conv.weight', 'backbone.')[0] == num_layers - 1

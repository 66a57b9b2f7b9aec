"""ConViT backbone: parity with timm's ConVit, exact GPSA on any grid, options, errors."""
import math

import pytest
import torch

from convit_oracle import (TIMM_NAMES, TINY_CONVIT, dense_gpsa, randomize_convit_, timm_convit,
                           timm_features_on_true_grid, timm_tiny_kwargs, true_grid_offsets)
from cvt_dense.models import ConViT
from cvt_dense.models.backbones.convit.blocks import GPSA, positional_attention
from cvt_dense.weights import load_pretrained


def ours_from_timm(timm_model, arch, **kwargs):
    """Our ConViT with every block as an output, loaded from the timm model's weights."""
    model = ConViT(arch, out_indices=tuple(range(len(timm_model.blocks))), out_norm=False,
                   drop_path_rate=0., **kwargs)
    report = load_pretrained(model, timm_model.state_dict())
    assert report.complete and report.source_format == 'official'
    assert len(report.loaded) == len(model.state_dict())
    return model.eval()


def assert_relative_close(ours, reference, rtol):
    assert len(ours) == len(reference)
    for i, (a, b) in enumerate(zip(ours, reference)):
        assert a.shape == b.shape, f'block {i}: {tuple(a.shape)} vs {tuple(b.shape)}'
        err = ((a - b).abs().max() / b.abs().max()).item()
        assert err <= rtol, f'block {i}: relative difference {err:.3g}'


@pytest.mark.parametrize('arch', ['convit-tiny', 'convit-small', 'convit-base'])
def test_presets_match_timm_at_224(arch):
    reference = timm_convit(arch)
    model = ours_from_timm(reference, arch)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference.forward_intermediates(x, indices=list(range(12)),
                                                   intermediates_only=True)
        ours = model(x)
    assert_relative_close(ours, expected, rtol=1e-4)


@pytest.mark.parametrize('size', [(256, 576), (200, 299)], ids=['16x36-grid', 'odd-padded'])
def test_any_size_matches_the_dense_formula_on_the_true_grid(size):
    """A 16x36 grid has 576 = 24^2 tokens (timm would take it for 24x24); 200x299 needs
    padding to a 13x19 grid."""
    reference = timm_convit(**timm_tiny_kwargs())
    model = ours_from_timm(reference, TINY_CONVIT)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = timm_features_on_true_grid(reference, x, indices=range(4))
        ours = model(x)
    assert all(o.shape[2:] == (math.ceil(size[0] / 16), math.ceil(size[1] / 16)) for o in ours)
    assert_relative_close(ours, expected, rtol=1e-4)


@pytest.fixture
def gpsa():
    torch.manual_seed(0)
    return randomize_convit_(GPSA(48, num_heads=3)).eval()


@pytest.mark.parametrize('hw', [(16, 36), (5, 1), (7, 9)])
def test_gpsa_equals_the_dense_formula(gpsa, hw):
    x = torch.randn(2, hw[0] * hw[1], 48)
    with torch.no_grad():
        torch.testing.assert_close(gpsa(x, hw), dense_gpsa(gpsa, x, hw), atol=1e-5, rtol=1e-4)


def test_timm_square_assumption_is_wrong_on_a_16x36_grid(gpsa):
    """Why we do not take timm's GPSA: 576 tokens are read as a 24x24 grid, silently."""
    from timm.models.convit import GPSA as TimmGPSA
    timm_gpsa = TimmGPSA(48, num_heads=3).eval()
    timm_gpsa.load_state_dict(gpsa.state_dict())
    x = torch.randn(1, 576, 48)
    with torch.no_grad():
        timm_out = timm_gpsa(x)
        true_out = dense_gpsa(gpsa, x, (16, 36))
        ours = gpsa(x, (16, 36))
    assert timm_gpsa.rel_indices.shape[1] == 576
    assert not torch.allclose(timm_gpsa.rel_indices, true_grid_offsets(16, 36))
    assert (timm_out - true_out).abs().max() > 0.05 * true_out.abs().max()
    torch.testing.assert_close(ours, true_out, atol=1e-5, rtol=1e-4)


def test_positional_attention_is_the_kronecker_product():
    torch.manual_seed(1)
    weight = torch.randn(2, 3)
    v = torch.randn(1, 2, 4 * 6, 5)
    scores = torch.einsum('qkc,hc->hqk', true_grid_offsets(4, 6)[0], weight)
    dense = torch.softmax(scores, dim=-1) @ v
    torch.testing.assert_close(positional_attention(v, weight, (4, 6)), dense,
                               atol=1e-6, rtol=1e-5)


def test_local_init_matches_timm():
    from timm.models.convit import GPSA as TimmGPSA
    ours, theirs = GPSA(36, num_heads=9, locality_strength=2.), TimmGPSA(36, num_heads=9,
                                                                         locality_strength=2.)
    ours.local_init()
    theirs.local_init()
    torch.testing.assert_close(ours.pos_proj.weight, theirs.pos_proj.weight)
    torch.testing.assert_close(ours.v.weight, torch.eye(36))


def test_default_init_is_the_reference_init():
    model = ConViT(TINY_CONVIT)
    model.init_weights()
    assert abs(model.blocks[3].mlp.fc1.weight.std().item() - 0.02) < 0.004
    assert torch.equal(model.blocks[0].attn.v.weight, torch.eye(32))
    assert torch.equal(model.blocks[0].attn.gating_param, torch.ones(4))
    assert model.pos_embed.abs().max() > 0 and model.cls_token.abs().max() > 0


@pytest.mark.parametrize('arch, millions', [('convit-tiny', 6), ('convit-small', 27),
                                            ('convit-base', 86)])
def test_parameter_counts_are_timm_without_classifier_and_the_papers(arch, millions):
    import timm
    with torch.device('meta'):
        model = ConViT(arch, out_norm=False)
        reference = timm.create_model(TIMM_NAMES[arch], num_classes=0)
    count = sum(p.numel() for p in model.parameters())
    final_norm = sum(p.numel() for p in reference.norm.parameters())
    assert count == sum(p.numel() for p in reference.parameters()) - final_norm
    assert round(count / 1e6) == millions  # the paper's table


def test_cls_token_joins_at_the_first_mhsa_block_and_is_never_returned():
    model = randomize_convit_(ConViT(TINY_CONVIT, out_indices=(1, 2, 3))).eval()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        before = model(x)
        model.cls_token.add_(torch.randn(model.cls_token.shape))
        after = model(x)
    assert torch.equal(before[0], after[0])  # block 1 is GPSA: no cls token yet
    assert (before[1] - after[1]).abs().max() > 1e-3
    assert all(o.shape == (1, 32, 4, 5) for o in after)


def test_pos_embed_resampled_at_run_time_like_timm():
    from timm.layers import resample_abs_pos_embed
    model = ConViT(TINY_CONVIT, out_indices=0, out_norm=False).eval()
    model.init_weights()
    x = torch.zeros(1, 3, 96, 160)  # zero image: block 0 sees only the positional embedding
    with torch.no_grad():
        torch.nn.init.zeros_(model.patch_embed.proj.bias)
        out = model(x)[0]
        block = model.blocks[0]
        tokens = resample_abs_pos_embed(model.pos_embed, (6, 10), (14, 14), num_prefix_tokens=0)
        expected = block(tokens, (6, 10)).transpose(1, 2).reshape(1, 32, 6, 10)
    torch.testing.assert_close(out, expected)


def test_attention_dropout_is_refused_with_the_reason():
    with pytest.raises(ValueError, match='never forms'):
        ConViT(TINY_CONVIT, attn_drop_rate=0.1)


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='convit-huge'), r'convit-base.*convit-small.*convit-tiny'),
    (dict(arch=dict(embed_dims=32)), 'num_heads'),
    (dict(arch=dict(embed_dims=30, num_heads=4)), 'divisible'),
    (dict(arch=dict(TINY_CONVIT, local_up_to_layer=5)), 'local_up_to_layer'),
    (dict(arch=TINY_CONVIT, out_indices=(4,)), r'levels 0\.\.3'),
])
def test_bad_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConViT(**kwargs)


def test_negative_out_indices_count_from_the_end():
    assert ConViT(TINY_CONVIT, out_indices=(-1, 1)).out_indices == (3, 1)


def test_drop_path_schedule_is_linear():
    model = ConViT('convit-tiny', drop_path_rate=0.2)
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for b in model.blocks]
    assert rates[0] == 0. and math.isclose(rates[-1], 0.2) and len(rates) == 12


def test_layer_depth():
    model = ConViT(TINY_CONVIT)
    assert model.get_layer_depth('backbone.pos_embed', 'backbone.') == (0, 6)
    assert model.get_layer_depth('backbone.blocks.2.attn.qkv.weight', 'backbone.') == (3, 6)
    assert model.get_layer_depth('backbone.out_norm3.weight', 'backbone.') == (5, 6)
    assert model.get_layer_depth('neck.lateral_convs.0.conv.weight', 'backbone.') == (5, 6)


def test_frozen_stages_cover_embedding_and_first_blocks():
    model = ConViT(TINY_CONVIT, out_indices=(0, 3), frozen_stages=2).train()
    frozen = ['patch_embed.proj.weight', 'pos_embed', 'cls_token', 'blocks.1.attn.qk.weight',
              'out_norm0.weight']
    params = dict(model.named_parameters())
    assert not any(params[name].requires_grad for name in frozen)
    assert params['blocks.2.attn.qkv.weight'].requires_grad
    assert params['out_norm3.weight'].requires_grad
    assert not model.blocks[1].training and model.blocks[2].training
    stem = ConViT(TINY_CONVIT, frozen_stages=0).train()
    assert {n for n, p in stem.named_parameters() if not p.requires_grad} == {
        'patch_embed.proj.weight', 'patch_embed.proj.bias', 'pos_embed', 'cls_token'}

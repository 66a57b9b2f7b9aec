"""The contract every registered backbone keeps, tested by being registered.

A backbone added to ``cvt_dense.models.TOOLKIT_MODELS`` without a small test config here
fails ``test_every_registered_backbone_is_covered``; with one, it gets every test below.
"""
import math

import pytest
import torch

from convit_oracle import TINY_CONVIT
from cvt_dense.models import TOOLKIT_MODELS, DenseBackbone
from hf_oracle import TINY_ARCH

# Small instances: constructor kwargs per backbone.
SMALL_CONFIGS = {
    'CvT': dict(arch=TINY_ARCH, out_indices=(0, 1, 2), drop_path_rate=0.),
    'ConViT': dict(arch=TINY_CONVIT, out_indices=(0, 2, 3), drop_path_rate=0.),
}
BACKBONES = [cls for cls in TOOLKIT_MODELS if issubclass(cls, DenseBackbone)]


def build(cls, **overrides):
    torch.manual_seed(0)
    model = cls(**dict(SMALL_CONFIGS[cls.__name__], **overrides))
    model.init_weights()
    return model


def test_every_registered_backbone_is_covered():
    assert {cls.__name__ for cls in BACKBONES} == set(SMALL_CONFIGS)


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
@pytest.mark.parametrize('size', [(32, 32), (45, 77), (97, 31)])
def test_any_size_gives_the_declared_channels_and_strides(cls, size):
    model = build(cls).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert len(outs) == len(model.out_indices) == len(model.out_strides)
    for out, channels, stride in zip(outs, model.out_channels, model.out_strides):
        assert out.shape[:2] == (2, channels)
        for side, pixels in zip(out.shape[2:], size):
            assert math.floor(pixels / stride) <= side <= math.ceil(pixels / stride)


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
@pytest.mark.parametrize('shape, match', [((3, 64, 64), '4D'),
                                          ((1, 4, 64, 64), 'in_channels=3')])
def test_bad_input_is_named(cls, shape, match):
    with pytest.raises(ValueError, match=match):
        build(cls)(torch.randn(*shape))


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_bad_out_indices_name_the_levels(cls):
    with pytest.raises(ValueError, match='out_indices'):
        build(cls, out_indices=(99, ))


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_frozen_stages_stop_gradients_and_stay_in_eval(cls):
    model = build(cls, frozen_stages=1).train()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert frozen and trainable
    x = torch.randn(1, 3, 48, 64)
    sum(o.sum() for o in model(x)).backward()
    params = dict(model.named_parameters())
    assert all(params[n].grad is None for n in frozen)
    assert any(params[n].grad is not None for n in trainable)
    frozen_modules = [m for m in model.modules() if m is not model
                      and any(not p.requires_grad for p in m.parameters(recurse=False))]
    assert frozen_modules and all(not m.training for m in frozen_modules)
    assert all(p.requires_grad for p in build(cls).parameters())


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_norm_eval_keeps_batchnorms_in_eval(cls):
    model = build(cls, norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(not m.training for m in bns)
    assert model.training
    assert all(m.training for m in build(cls).train().modules())


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_with_cp_gives_identical_outputs_and_gradients(cls):
    x = torch.randn(2, 3, 48, 40)
    results = []
    for with_cp in (False, True):
        model = build(cls, with_cp=with_cp).train()
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        results.append((outs, {n: p.grad for n, p in model.named_parameters()}))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmengine'])
def test_builds_from_every_registry_scope(cls, scope):
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(dict(type=cls.__name__, **SMALL_CONFIGS[cls.__name__]))
    assert type(model) is cls


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_init_cfg_loads_our_own_checkpoint_with_a_report(cls, tmp_path):
    """A backbone-only file written from one model loads into another through init_cfg:
    every tensor, the same outputs, and a report that says so."""
    from cvt_dense.weights import load_pretrained
    source = build(cls).eval()
    path = tmp_path / 'backbone.pth'
    state = {k: v for k, v in source.state_dict().items() if not k.startswith('out_norm')}
    torch.save(state, path)
    model = cls(**SMALL_CONFIGS[cls.__name__],
                init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    report = load_pretrained(cls(**SMALL_CONFIGS[cls.__name__]), str(path))
    assert report.source_format == 'cvt_dense' and report.complete
    assert set(report.loaded) == set(state)
    assert report.newly_initialised and all(k.startswith('out_norm')
                                            for k in report.newly_initialised)
    model.load_state_dict({k: v for k, v in source.state_dict().items()
                           if k.startswith('out_norm')}, strict=False)
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), source(x)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize('cls', BACKBONES, ids=lambda c: c.__name__)
def test_bf16_autocast_stays_close_to_fp32(cls):
    model = build(cls).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = model(x)
    for a, b in zip(ref, low):
        assert (a - b.float()).abs().max() < 0.1 * a.abs().max()

"""--amp: fp16 AmpOptimWrapper on GPUs, backbone-only bfloat16 autocast on CPUs."""
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from torch import nn

from cvt_dense.runtime import CPUBF16OptimWrapper, enable_amp


class Detector(nn.Module):
    """A backbone (matmul, autocast to bf16) feeding a head that insists on fp32 input."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 1)
        self.seen = {}
        self.backbone[0].register_forward_hook(
            lambda m, i, o: self.seen.__setitem__('backbone', o.dtype))

    def forward(self, x):
        feats = self.backbone(x)
        self.seen['head_input'] = feats.dtype
        if feats.dtype != torch.float32:  # like mmcv's CPU nms / RoIAlign kernels
            raise RuntimeError('expected scalar type Float')
        return self.head(feats)


def make_wrapper(model, **kwargs):
    return build_optim_wrapper(model, dict(type='CPUBF16OptimWrapper', **kwargs,
                                           optimizer=dict(type='SGD', lr=0.1)))


def test_backbone_runs_in_bf16_and_heads_get_fp32():
    model = Detector()
    wrapper = make_wrapper(model)
    assert isinstance(wrapper, CPUBF16OptimWrapper)
    before = model.head.weight.detach().clone()
    with wrapper.optim_context(model):
        loss = model(torch.randn(3, 4)).square().mean()
    assert model.seen == {'backbone': torch.bfloat16, 'head_input': torch.float32}
    wrapper.update_params(loss)
    assert loss.dtype == torch.float32
    assert model.head.weight.dtype == torch.float32
    assert not torch.equal(model.head.weight, before)  # gradients flowed and were applied
    # Outside the context (e.g. validation) everything is fp32 again: hooks removed.
    model(torch.randn(3, 4))
    assert model.seen['backbone'] == torch.float32


def test_whole_model_autocast_breaks_fp32_only_heads():
    model = Detector()
    wrapper = make_wrapper(model, autocast_modules=None)
    with pytest.raises(RuntimeError, match='expected scalar type Float'):
        with wrapper.optim_context(model):
            model(torch.randn(3, 4))


def test_missing_submodule_is_named():
    model = Detector()
    wrapper = make_wrapper(model, autocast_modules=('encoder',))
    with pytest.raises(AttributeError, match="'encoder'"):
        with wrapper.optim_context(model):
            pass


def test_enable_amp_picks_wrapper_for_device(monkeypatch):
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD'))))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert enable_amp(cfg) == 'CPUBF16OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert enable_amp(cfg) == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'


def test_enable_amp_refuses_custom_wrappers():
    cfg = Config(dict(optim_wrapper=dict(type='MyWrapper', optimizer=dict(type='SGD'))))
    with pytest.raises(ValueError, match='MyWrapper'):
        enable_amp(cfg)

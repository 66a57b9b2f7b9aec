"""Layer-wise lr decay constructor, built from an optim_wrapper config."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper

import cvt_dense  # noqa: F401  (registers the constructor)
from cvt_dense.models import CvT

ARCH = dict(embed_dims=[8, 16, 24], num_heads=[1, 2, 3], depths=[1, 2, 2])


class Detector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = CvT(ARCH)
        self.head = torch.nn.Linear(24, 2)


def build(decay_rate=0.5, **optimizer):
    cfg = dict(type='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor',
               optimizer=dict(type='AdamW', lr=1.0, **optimizer),
               paramwise_cfg=dict(decay_rate=decay_rate))
    model = Detector()
    wrapper = build_optim_wrapper(model, cfg)
    groups = {id(g['params'][0]): g for g in wrapper.optimizer.param_groups}
    return model, lambda p: groups[id(p)]


def test_lr_decays_with_depth_and_weight_decay_skips_norms_and_tokens():
    model, group = build(decay_rate=0.5, weight_decay=0.05)
    num_layers = sum(ARCH['depths']) + 2
    bb = model.backbone
    assert group(model.head.weight)['lr'] == 1.0
    assert group(bb.out_norm2.weight)['lr'] == 1.0
    assert group(bb.stage0.patch_embed.proj.weight)['lr'] == pytest.approx(0.5 ** (num_layers - 1))
    assert group(bb.stage2.blocks[1].mlp.fc1.weight)['lr'] == pytest.approx(0.5)
    assert group(bb.stage1.blocks[0].attn.proj_q.weight)['lr'] == pytest.approx(
        0.5 ** (num_layers - 1 - 2))
    assert group(bb.stage2.blocks[1].mlp.fc1.weight)['weight_decay'] == 0.05
    for p in (bb.stage2.cls_token, bb.stage2.blocks[0].norm1.weight, model.head.bias):
        assert group(p)['weight_decay'] == 0.


def test_requires_backbone_with_layer_depth():
    cfg = dict(type='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor',
               optimizer=dict(type='SGD', lr=0.1), paramwise_cfg=dict(decay_rate=0.9))
    with pytest.raises(TypeError, match='get_layer_depth'):
        build_optim_wrapper(torch.nn.Linear(2, 2), cfg)


def test_one_adamw_step_moves_each_parameter_by_its_lr():
    """AdamW's first step moves every element with a gradient by ~lr (m / sqrt(v) = +-1)."""
    cfg = dict(type='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor',
               optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.),
               paramwise_cfg=dict(decay_rate=0.5))
    model = Detector()
    wrapper = build_optim_wrapper(model, cfg)
    params = {'head': model.head.weight, 'deep': model.backbone.stage2.blocks[1].mlp.fc1.weight,
              'shallow': model.backbone.stage0.blocks[0].mlp.fc1.weight}
    before = {k: p.detach().clone() for k, p in params.items()}
    feats = model.backbone(torch.randn(2, 3, 32, 32))[2].mean((2, 3))
    wrapper.update_params(model.head(feats).square().sum())
    num_layers = sum(ARCH['depths']) + 2
    expected = {'head': 1e-2, 'deep': 1e-2 * 0.5, 'shallow': 1e-2 * 0.5 ** (num_layers - 2)}
    for k, p in params.items():
        step = (p.detach() - before[k]).abs().max().item()
        assert step == pytest.approx(expected[k], rel=1e-3), k

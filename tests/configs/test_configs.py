"""Every config under configs/ loads with its _base_ files and builds its model.

Also checks the facts the full-size configs promise: FPN output strides equal the RPN anchor
strides, UperNet's output covers all classes, weight decay is off exactly where the recipe
says, and the schedules, data roots and pretrained paths are the documented ones.
"""
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import cvt_dense  # noqa: F401  (registers the backbones)
from cvt_dense.models import get_backbone

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / 'configs'
ALL_CONFIGS = sorted(p for p in CONFIG_DIR.rglob('*.py') if '_base_' not in p.parts)
COCO_CONFIGS = ['maskrcnn_cvt13_coco', 'maskrcnn_cvt13_coco_3x', 'maskrcnn_cvt21_coco',
                'maskrcnn_convit_small_coco']
ADE_CONFIGS = ['upernet_cvt13_ade20k', 'upernet_cvt21_ade20k', 'upernet_convit_small_ade20k']


def load(name_or_path) -> Config:
    path = Path(name_or_path)
    if not path.is_absolute():
        path = CONFIG_DIR / f'{name_or_path}.py'
    return Config.fromfile(str(path))


def build_model(cfg: Config):
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(cfg.model)


def test_expected_configs_exist():
    names = {p.stem for p in ALL_CONFIGS}
    assert set(COCO_CONFIGS + ADE_CONFIGS) <= names


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_config_loads_and_builds(path):
    cfg = load(path)
    assert cfg.default_scope in ('mmdet', 'mmseg')
    assert 'cvt_dense' in cfg.custom_imports['imports']
    model = build_model(cfg)
    expected = {'mmdet': 'MaskRCNN', 'mmseg': 'EncoderDecoder'}[cfg.default_scope]
    assert type(model).__name__ == expected
    assert type(model.backbone) is get_backbone(cfg.model.backbone.type).cls  # registered


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_data_pipelines_build(path):
    from mmengine.dataset import Compose
    cfg = load(path)
    init_default_scope(cfg.default_scope)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pipeline = Compose(cfg[loader].dataset.pipeline)
        assert len(pipeline.transforms) == len(cfg[loader].dataset.pipeline)


@pytest.mark.parametrize('name,arch,checkpoint', [
    ('maskrcnn_cvt13_coco', 'cvt-13', 'checkpoints/CvT-13-224x224-IN-1k.pth'),
    ('maskrcnn_cvt13_coco_3x', 'cvt-13', 'checkpoints/CvT-13-224x224-IN-1k.pth'),
    ('maskrcnn_cvt21_coco', 'cvt-21', 'checkpoints/CvT-21-224x224-IN-1k.pth'),
    ('upernet_cvt13_ade20k', 'cvt-13', 'checkpoints/CvT-13-224x224-IN-1k.pth'),
    ('upernet_cvt21_ade20k', 'cvt-21', 'checkpoints/CvT-21-224x224-IN-1k.pth'),
    ('maskrcnn_convit_small_coco', 'convit-small', 'checkpoints/convit_small.fb_in1k.safetensors'),
    ('upernet_convit_small_ade20k', 'convit-small',
     'checkpoints/convit_small.fb_in1k.safetensors'),
])
def test_backbone_and_pretrained_weights(name, arch, checkpoint):
    cfg = load(name)
    backbone = cfg.model.backbone
    assert backbone.arch == arch
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    assert cfg.pretrained == checkpoint
    # The documented override reaches the backbone.
    cfg.merge_from_dict({'model.backbone.init_cfg.checkpoint': '/elsewhere/w.pth'})
    assert cfg.model.backbone.init_cfg.checkpoint == '/elsewhere/w.pth'


CVT_CONFIGS = [p for p in ALL_CONFIGS if load(p).model.backbone.type == 'CvT']


@pytest.mark.parametrize('path', CVT_CONFIGS, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_cvt_batchnorm_follows_the_library(path):
    """CvT's q/k/v BatchNorm, pretrained: frozen statistics in mmdet (as its ResNets),
    SyncBN in mmseg (as its ResNets); from scratch (the demos): plain BN that trains."""
    cfg = load(path)
    backbone = cfg.model.backbone
    norm = backbone.get('conv_proj_norm_cfg', dict(type='BN'))['type']
    if backbone.get('init_cfg') is None:
        expected = ('BN', False)
    else:
        expected = {'mmdet': ('BN', True), 'mmseg': ('SyncBN', False)}[cfg.default_scope]
    assert (norm, backbone.norm_eval) == expected
    model = build_model(cfg).backbone.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert bns and all(m.training != expected[1] for m in bns)
    assert all(isinstance(m, torch.nn.SyncBatchNorm) == (norm == 'SyncBN') for m in bns)


@pytest.mark.parametrize('name', COCO_CONFIGS)
def test_fpn_levels_match_anchor_strides(name):
    cfg = load(name)
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    model = build_model(cfg).eval()
    h, w = 128, 192
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, h, w))
    strides = [(h // f.shape[2], w // f.shape[3]) for f in feats]
    anchor_strides = [tuple(s) for s in model.rpn_head.prior_generator.strides]
    assert strides == anchor_strides == [(s, s) for s in (4, 8, 16, 32, 64)]
    # The RoI extractors pool from the first four FPN levels.
    assert list(cfg.model.roi_head.bbox_roi_extractor.featmap_strides) == [4, 8, 16, 32]
    assert list(cfg.model.roi_head.mask_roi_extractor.featmap_strides) == [4, 8, 16, 32]
    assert all(f.shape[1] == 256 for f in feats)


@pytest.mark.parametrize('name', ADE_CONFIGS)
def test_upernet_outputs_all_classes(name):
    cfg = load(name)
    assert cfg.train_dataloader.dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert cfg.crop_size == (512, 512)
    model = build_model(cfg).eval()
    h, w = 64, 96
    with torch.no_grad():
        logits = model(torch.randn(1, 3, h, w), mode='tensor')
        aux = model.auxiliary_head(model.extract_feat(torch.randn(1, 3, h, w)))
    assert logits.shape == (1, 150, h // 4, w // 4)
    assert aux.shape == (1, 150, h // 16, w // 16)


def param_groups_by_name(model, cfg):
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: group for group in optim_wrapper.optimizer.param_groups
            for p in group['params']}


@pytest.mark.parametrize('name,lr,wd', [('maskrcnn_cvt13_coco', 1e-4, 0.05),
                                        ('upernet_cvt13_ade20k', 6e-5, 0.01)])
def test_no_weight_decay_on_norms_cls_token_pos_embed(name, lr, wd):
    cfg = load(name)
    cfg.model.backbone.use_pos_embed = True  # to see where position embeddings go
    model = build_model(cfg)
    groups = param_groups_by_name(model, cfg)
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    no_decay = ['backbone.stage2.cls_token', 'backbone.stage0.pos_embed',
                'backbone.stage0.patch_embed.norm.weight',
                'backbone.stage2.blocks.0.norm1.weight',
                'backbone.stage2.blocks.0.attn.conv_proj_q.bn.weight',
                'backbone.out_norm2.weight']
    decay = ['backbone.stage2.blocks.0.attn.proj_q.weight',
             'backbone.stage2.blocks.0.mlp.fc1.weight', 'backbone.stage0.patch_embed.proj.weight']
    for key in no_decay + decay:
        assert key in groups, key
        assert math.isclose(groups[key]['lr'], lr)
    assert [groups[k]['weight_decay'] for k in no_decay] == [0.] * len(no_decay)
    assert [groups[k]['weight_decay'] for k in decay] == [wd] * len(decay)


@pytest.mark.parametrize('name,lr,wd,decay_rate', [('maskrcnn_convit_small_coco', 1e-4, 0.1, 0.7),
                                                   ('upernet_convit_small_ade20k', 6e-5, 0.01,
                                                    0.65)])
def test_convit_layer_wise_lr_decay(name, lr, wd, decay_rate):
    cfg = load(name)
    groups = param_groups_by_name(build_model(cfg), cfg)
    num_layers = 12 + 2
    for key, layer in (('backbone.patch_embed.proj.weight', 0), ('backbone.pos_embed', 0),
                       ('backbone.blocks.0.attn.qk.weight', 1),
                       ('backbone.blocks.11.mlp.fc2.weight', 12)):
        assert math.isclose(groups[key]['lr'], lr * decay_rate ** (num_layers - 1 - layer)), key
    assert math.isclose(groups['backbone.out_norm11.weight']['lr'], lr)
    neck_key = next(k for k in groups if k.startswith('neck.'))
    assert math.isclose(groups[neck_key]['lr'], lr)
    for key in ('backbone.pos_embed', 'backbone.cls_token', 'backbone.blocks.0.norm1.weight',
                'backbone.blocks.0.attn.gating_param', 'backbone.blocks.0.attn.proj.bias'):
        assert groups[key]['weight_decay'] == 0., key
    assert groups['backbone.blocks.0.attn.qk.weight']['weight_decay'] == wd


@pytest.mark.parametrize('name,epochs,milestones', [('maskrcnn_cvt13_coco', 12, [8, 11]),
                                                    ('maskrcnn_cvt21_coco', 12, [8, 11]),
                                                    ('maskrcnn_convit_small_coco', 12, [8, 11]),
                                                    ('maskrcnn_cvt13_coco_3x', 36, [27, 33])])
def test_detection_schedules(name, epochs, milestones):
    cfg = load(name)
    assert cfg.train_cfg.max_epochs == epochs
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.end) == ('LinearLR', False, 1000)
    assert (steps.type, steps.milestones, steps.end) == ('MultiStepLR', milestones, epochs)


def test_3x_config_trains_multiscale():
    one_x, three_x = load('maskrcnn_cvt13_coco'), load('maskrcnn_cvt13_coco_3x')
    types = [t['type'] for t in three_x.train_dataloader.dataset.pipeline]
    assert 'RandomChoice' in types and 'Resize' not in types
    assert [t['type'] for t in one_x.train_dataloader.dataset.pipeline].count('Resize') == 1
    # Everything else is inherited unchanged.
    assert three_x.model == one_x.model
    assert three_x.val_dataloader == one_x.val_dataloader


@pytest.mark.parametrize('name', ADE_CONFIGS)
def test_segmentation_schedule(name):
    cfg = load(name)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 160000
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 1500)
    assert (poly.type, poly.begin, poly.end, poly.power) == ('PolyLR', 1500, 160000, 1.0)
    assert cfg.model.auxiliary_head.type == 'FCNHead'
    assert cfg.model.decode_head.type == 'UPerHead'

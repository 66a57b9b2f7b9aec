"""Every config under configs/ loads with its _base_ files and builds its model.

Also checks the facts the full-size configs promise: FPN output strides equal the RPN anchor
strides, UperNet's output covers all classes, weight decay is off exactly where the recipe
says, the published recipe each header names (learning rates, layer decay, schedules,
augmentation, heads), the data roots and the pretrained weights' addresses.
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
                'maskrcnn_cvt21_coco_3x', 'maskrcnn_cvtw24_coco', 'cascade_maskrcnn_cvt13_coco_3x',
                'maskrcnn_convit_tiny_coco', 'maskrcnn_convit_small_coco',
                'maskrcnn_convit_base_coco', 'maskrcnn_convit_small_simplefpn_lsj-100e_coco']
ADE_CONFIGS = ['upernet_cvt13_ade20k', 'upernet_cvt21_ade20k', 'upernet_cvtw24_ade20k',
               'upernet_convit_tiny_ade20k', 'upernet_convit_small_ade20k',
               'upernet_convit_base_ade20k']
CVT13 = 'https://huggingface.co/microsoft/cvt-13/resolve/main/model.safetensors'
CVT21 = 'https://huggingface.co/microsoft/cvt-21/resolve/main/pytorch_model.bin'
CVTW24 = 'https://huggingface.co/microsoft/cvt-w24-384-22k/resolve/main/pytorch_model.bin'
CONVIT = 'https://huggingface.co/timm/convit_{}.fb_in1k/resolve/main/model.safetensors'


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


def with_one_block_per_stage(cfg: Config) -> Config:
    """CvT-W24's widths with one block per stage: the necks and heads see what W24 gives
    them, without building (and initialising) its 277M parameters once more."""
    if cfg.model.backbone.arch == 'cvt-w24':
        cfg.model.backbone.arch = dict(embed_dims=[192, 768, 1024], num_heads=[3, 12, 16],
                                       depths=[1, 1, 1])
    return cfg


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
    if path.stem.startswith('cascade_'):
        expected = 'CascadeRCNN'
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
    # tools/test.py --tta: a TTA model for the task and a pipeline of augmented views.
    assert cfg.tta_model.type == {'mmdet': 'InstanceSegTTAModel',
                                  'mmseg': 'SegTTAModel'}[cfg.default_scope]
    augment = Compose(cfg.tta_pipeline).transforms[-1]
    assert type(augment).__name__ == 'TestTimeAug'
    flips = [t for t in augment.subroutines if 'RandomFlip' in repr(t)]
    assert len(flips) == 2 * (6 if cfg.default_scope == 'mmseg' else 1)  # scales x flips


@pytest.mark.parametrize('name,arch,checkpoint', [
    ('maskrcnn_cvt13_coco', 'cvt-13', CVT13),
    ('maskrcnn_cvt13_coco_3x', 'cvt-13', CVT13),
    ('cascade_maskrcnn_cvt13_coco_3x', 'cvt-13', CVT13),
    ('maskrcnn_cvt21_coco', 'cvt-21', CVT21),
    ('maskrcnn_cvt21_coco_3x', 'cvt-21', CVT21),
    ('maskrcnn_cvtw24_coco', 'cvt-w24', CVTW24),
    ('upernet_cvt13_ade20k', 'cvt-13', CVT13),
    ('upernet_cvt21_ade20k', 'cvt-21', CVT21),
    ('upernet_cvtw24_ade20k', 'cvt-w24', CVTW24),
    ('maskrcnn_convit_tiny_coco', 'convit-tiny', CONVIT.format('tiny')),
    ('maskrcnn_convit_small_coco', 'convit-small', CONVIT.format('small')),
    ('maskrcnn_convit_base_coco', 'convit-base', CONVIT.format('base')),
    ('maskrcnn_convit_small_simplefpn_lsj-100e_coco', 'convit-small', CONVIT.format('small')),
    ('upernet_convit_tiny_ade20k', 'convit-tiny', CONVIT.format('tiny')),
    ('upernet_convit_small_ade20k', 'convit-small', CONVIT.format('small')),
    ('upernet_convit_base_ade20k', 'convit-base', CONVIT.format('base')),
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


def test_every_full_size_config_names_its_weights_by_url():
    from cvt_dense.weights.download import cached_path, is_url
    urls = {name: load(name).model.backbone.init_cfg.checkpoint
            for name in COCO_CONFIGS + ADE_CONFIGS}
    assert all(is_url(url) for url in urls.values()), urls
    # Every distinct address is its own cached file, though most are model.safetensors.
    distinct = set(urls.values())
    assert len({cached_path(url, '/cache') for url in distinct}) == len(distinct) == 6


@pytest.mark.parametrize('name', COCO_CONFIGS)
def test_fpn_levels_match_anchor_strides(name):
    cfg = load(name)
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.val_evaluator.metric == ['bbox', 'segm']
    model = build_model(with_one_block_per_stage(cfg)).eval()
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
    model = build_model(with_one_block_per_stage(cfg)).eval()
    h, w = 64, 96
    with torch.no_grad():
        logits = model(torch.randn(1, 3, h, w), mode='tensor')
        aux = model.auxiliary_head(model.extract_feat(torch.randn(1, 3, h, w)))
    assert logits.shape == (1, 150, h // 4, w // 4)
    # CvT: the stride-16 level (Swin's UperNet); ConViT: the last MultiLevelNeck level
    # (stride 32, in_index 3), as mmseg's ViT/DeiT configs.
    aux_stride = 32 if 'convit' in name else 16
    assert aux.shape == (1, 150, h // aux_stride, w // aux_stride)


def param_groups_by_name(model, cfg):
    wrapper_cfg = cfg.optim_wrapper.copy()
    if wrapper_cfg.type == 'AmpOptimWrapper' and not torch.cuda.is_available():
        wrapper_cfg.type = 'OptimWrapper'  # mmengine builds AMP on accelerators only; the
        # parameter groups are the constructor's, the same for both
    optim_wrapper = build_optim_wrapper(model, wrapper_cfg)
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


@pytest.mark.parametrize('name,lr,wd,decay_rate', [
    ('maskrcnn_convit_small_coco', 1e-4, 0.1, 0.7),
    ('maskrcnn_convit_small_simplefpn_lsj-100e_coco', 1e-4, 0.1, 0.7),
])
def test_convit_layer_wise_lr_decay(name, lr, wd, decay_rate):
    """ViTDet's optimizer: block i at lr x 0.7^(12 - i), the patch embedding at 0.7^13."""
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


@pytest.mark.parametrize('name', ['upernet_convit_tiny_ade20k', 'upernet_convit_small_ade20k',
                                  'upernet_convit_base_ade20k'])
def test_convit_upernet_follows_mmseg_deit_recipe(name):
    """mmseg's vit_deit-s16_mln_upernet: AdamW 6e-5, wd 0.01, no layer decay, the neck at
    the backbone's width, the auxiliary head on level 3."""
    cfg = load(name)
    model = build_model(cfg)
    groups = param_groups_by_name(model, cfg)
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert 'constructor' not in cfg.optim_wrapper
    backbone = [k for k in groups if k.startswith('backbone.')]
    assert {groups[k]['lr'] for k in backbone} == {6e-5}
    for key in ('backbone.pos_embed', 'backbone.cls_token', 'backbone.blocks.0.norm1.weight'):
        assert groups[key]['weight_decay'] == 0., key
    assert groups['backbone.blocks.0.attn.qk.weight']['weight_decay'] == 0.01
    width = model.backbone.out_channels[0]
    assert cfg.model.neck.in_channels == [width] * 4 and cfg.model.neck.out_channels == width
    assert cfg.model.decode_head.in_channels == [width] * 4
    assert (cfg.model.auxiliary_head.in_channels, cfg.model.auxiliary_head.in_index) == (width, 3)


@pytest.mark.parametrize('name,epochs,milestones', [
    *[(name, 12, [8, 11]) for name in ('maskrcnn_cvt13_coco', 'maskrcnn_cvt21_coco',
                                       'maskrcnn_cvtw24_coco', 'maskrcnn_convit_tiny_coco',
                                       'maskrcnn_convit_small_coco', 'maskrcnn_convit_base_coco')],
    *[(name, 36, [27, 33]) for name in ('maskrcnn_cvt13_coco_3x', 'maskrcnn_cvt21_coco_3x',
                                        'cascade_maskrcnn_cvt13_coco_3x')],
])
def test_detection_schedules(name, epochs, milestones):
    cfg = load(name)
    assert cfg.train_cfg.max_epochs == epochs
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.by_epoch, warmup.end) == ('LinearLR', False, 1000)
    assert (steps.type, steps.milestones, steps.end) == ('MultiStepLR', milestones, epochs)


@pytest.mark.parametrize('one_x,three_x', [('maskrcnn_cvt13_coco', 'maskrcnn_cvt13_coco_3x'),
                                            ('maskrcnn_cvt21_coco', 'maskrcnn_cvt21_coco_3x')])
def test_3x_config_trains_multiscale(one_x, three_x):
    one_x, three_x = load(one_x), load(three_x)
    types = [t['type'] for t in three_x.train_dataloader.dataset.pipeline]
    assert 'RandomChoice' in types and 'Resize' not in types
    assert [t['type'] for t in one_x.train_dataloader.dataset.pipeline].count('Resize') == 1
    # Everything else is the 1x config's.
    assert three_x.model == one_x.model
    assert three_x.val_dataloader == one_x.val_dataloader
    assert three_x.optim_wrapper == one_x.optim_wrapper


def test_cascade_follows_mmdet_convnext_t_recipe():
    """convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco."""
    cfg = load('cascade_maskrcnn_cvt13_coco_3x')
    heads = cfg.model.roi_head.bbox_head
    assert [h.type for h in heads] == ['ConvFCBBoxHead'] * 3
    assert all((h.num_shared_convs, h.num_shared_fcs, h.reg_decoded_bbox, h.loss_bbox.type,
                h.loss_bbox.loss_weight, h.norm_cfg.type) == (4, 1, True, 'GIoULoss', 10.0,
                                                              'SyncBN') for h in heads)
    assert [h.bbox_coder.target_stds[0] for h in heads] == [0.1, 0.05, 0.033]
    assert cfg.train_dataloader.dataset.pipeline == load(
        'maskrcnn_cvt13_coco_3x').train_dataloader.dataset.pipeline
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    model = build_model(cfg)
    groups = param_groups_by_name(model, cfg)
    # lr 2e-4; the patch embedding at 0.84^14 (ConvNeXt-T's stem: 0.7^7), heads at 2e-4.
    assert math.isclose(groups['backbone.stage0.patch_embed.proj.weight']['lr'],
                        2e-4 * 0.84 ** 14)
    assert math.isclose(groups['backbone.stage2.blocks.9.mlp.fc1.weight']['lr'], 2e-4 * 0.84)
    assert math.isclose(groups['roi_head.bbox_head.0.fc_cls.weight']['lr'], 2e-4)
    assert groups['backbone.stage2.blocks.0.attn.proj_q.weight']['weight_decay'] == 0.05
    assert groups['backbone.stage2.cls_token']['weight_decay'] == 0.


def test_lsj_config_follows_vitdet():
    """mmdet's projects/ViTDet/configs/vitdet_mask-rcnn_vit-b-mae_lsj-100e.py."""
    cfg = load('maskrcnn_convit_small_simplefpn_lsj-100e_coco')
    train = cfg.train_dataloader
    pipeline = {t['type']: t for t in train.dataset.pipeline}
    assert pipeline['RandomResize']['scale'] == (1024, 1024)
    assert pipeline['RandomResize']['ratio_range'] == (0.1, 2.0)
    assert pipeline['RandomCrop']['crop_size'] == (1024, 1024)
    assert pipeline['Pad']['size'] == (1024, 1024)
    assert train.batch_size == 4 and cfg.auto_scale_lr.base_batch_size == 64  # 16 GPUs x 4
    assert train.batch_sampler is None
    assert (cfg.train_cfg.type, cfg.train_cfg.max_iters) == ('IterBasedTrainLoop', 184375)
    warmup, steps = cfg.param_scheduler
    assert (warmup.end, steps.milestones) == (250, [163889, 177546])
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.model.data_preprocessor.batch_augments[0].type == 'BatchFixedSizePad'
    model = build_model(cfg)
    assert len(model.rpn_head.rpn_conv) == 2  # 2-conv RPN
    bbox_head, mask_head = model.roi_head.bbox_head, model.roi_head.mask_head
    assert (type(bbox_head).__name__, bbox_head.num_shared_convs) == ('Shared4Conv1FCBBoxHead', 4)
    norms = [type(m).__name__ for head in (model.neck, bbox_head, mask_head)
             for m in head.modules() if 'Norm' in type(m).__name__]
    assert norms and set(norms) == {'LayerNorm2d'}


@pytest.mark.parametrize('name', ADE_CONFIGS)
def test_segmentation_schedule(name):
    cfg = load(name)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 160000
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 1500)
    assert (poly.type, poly.begin, poly.end, poly.power) == ('PolyLR', 1500, 160000, 1.0)
    assert cfg.model.auxiliary_head.type == 'FCNHead'
    assert cfg.model.decode_head.type == 'UPerHead'

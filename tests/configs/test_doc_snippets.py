"""The config examples in docs/custom_configs.md load (from the configs shipped in the
mmdet/mmseg packages), build a working model for every backbone, and train it with the
documented optimizer (copied as written, a transformer must not train with a ResNet
config's SGD)."""
import math
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

DOC = Path(__file__).resolve().parents[2] / 'docs' / 'custom_configs.md'
SNIPPETS = [block for block in re.findall(r'```python\n(.*?)```', DOC.read_text(), re.S)
            if block.startswith('_base_ = ')]


# (backbone, scope) -> AdamW's lr and weight decay, layer-wise decay rate, as the doc says.
DOCUMENTED_OPTIMIZERS = {
    ('CvT', 'mmdet'): (1e-4, 0.05, None),  # mmdet's Swin-T Mask R-CNN 1x
    ('CvT', 'mmseg'): (6e-5, 0.01, None),  # mmseg's Swin-T UperNet
    ('ConViT', 'mmdet'): (1e-4, 0.1, 0.7),  # ViTDet's optimizer
    ('ConViT', 'mmseg'): (6e-5, 0.01, None),  # mmseg's DeiT-S UperNet
}
# A deep backbone weight (the last layer id below the neck) and the cls token.
DEEP_WEIGHT = {'CvT': 'backbone.stage2.blocks.9.mlp.fc1.weight',
               'ConViT': 'backbone.blocks.11.mlp.fc1.weight'}
CLS_TOKEN = {'CvT': 'backbone.stage2.cls_token', 'ConViT': 'backbone.cls_token'}


def backbone_type(snippet):
    return re.search(r"type='(\w+)'", snippet).group(1)


def load_snippet(snippet, tmp_path) -> Config:
    path = tmp_path / 'snippet_config.py'
    path.write_text(snippet)
    return Config.fromfile(str(path))


def build(cfg: Config):
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS.build(cfg.model)


def test_doc_has_detection_and_segmentation_examples_for_each_backbone():
    examples = {(backbone_type(s), s.split('::')[0][-5:]) for s in SNIPPETS}
    assert examples == {(b, scope) for b in ('CvT', 'ConViT') for scope in ('mmdet', 'mmseg')}


@pytest.mark.parametrize('snippet', SNIPPETS,
                         ids=lambda s: backbone_type(s) + '-' + s.split("'")[1])
def test_snippet_builds_a_working_model(snippet, tmp_path):
    cfg = load_snippet(snippet, tmp_path)
    model = build(cfg).eval()
    assert type(model.backbone).__name__ == backbone_type(snippet)
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 128, 128))
    widths = [f.shape[-1] for f in feats]
    # mmdet: FPN levels at strides 4..64; mmseg: CvT's strides 4, 8, 16, or the
    # MultiLevelNeck's 4, 8, 16, 32 for ConViT.
    expected = {'mmdet': [32, 16, 8, 4, 2], 'mmseg': [32, 16, 8]}[cfg.default_scope]
    if cfg.default_scope == 'mmseg' and backbone_type(snippet) == 'ConViT':
        expected = [32, 16, 8, 4]
    assert widths == expected


@pytest.mark.parametrize('snippet', SNIPPETS,
                         ids=lambda s: backbone_type(s) + '-' + s.split("'")[1])
def test_snippet_trains_with_the_documented_optimizer(snippet, tmp_path):
    cfg = load_snippet(snippet, tmp_path)
    backbone = backbone_type(snippet)
    lr, weight_decay, decay_rate = DOCUMENTED_OPTIMIZERS[backbone, cfg.default_scope]
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', lr, weight_decay)
    assert 'momentum' not in optimizer  # nothing left of an SGD base
    model = build(cfg)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {names[id(p)]: group for group in optim_wrapper.optimizer.param_groups
              for p in group['params']}
    assert type(optim_wrapper.optimizer).__name__ == 'AdamW'
    deep = groups[DEEP_WEIGHT[backbone]]
    assert math.isclose(deep['lr'], lr * (decay_rate or 1.))  # one layer below the top
    assert deep['weight_decay'] == weight_decay
    assert groups[CLS_TOKEN[backbone]]['weight_decay'] == 0.
    norm_weight = next(k for k in groups if k.startswith('backbone.') and 'norm1.weight' in k)
    assert groups[norm_weight]['weight_decay'] == 0.

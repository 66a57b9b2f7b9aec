"""The config examples in docs/custom_configs.md load (from the configs shipped in the
mmdet/mmseg packages) and build a working model, for every backbone."""
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

DOC = Path(__file__).resolve().parents[2] / 'docs' / 'custom_configs.md'
SNIPPETS = [block for block in re.findall(r'```python\n(.*?)```', DOC.read_text(), re.S)
            if block.startswith('_base_ = ')]


def backbone_type(snippet):
    return re.search(r"type='(\w+)'", snippet).group(1)


def test_doc_has_detection_and_segmentation_examples_for_each_backbone():
    examples = {(backbone_type(s), s.split('::')[0][-5:]) for s in SNIPPETS}
    assert examples == {(b, scope) for b in ('CvT', 'ConViT') for scope in ('mmdet', 'mmseg')}


@pytest.mark.parametrize('snippet', SNIPPETS,
                         ids=lambda s: backbone_type(s) + '-' + s.split("'")[1])
def test_snippet_builds_a_working_model(snippet, tmp_path):
    path = tmp_path / 'snippet_config.py'
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    model = MODELS.build(cfg.model).eval()
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

"""The config examples in docs/custom_configs.md load (from the configs shipped in the
mmdet/mmseg packages) and build a working model."""
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

DOC = Path(__file__).resolve().parents[2] / 'docs' / 'custom_configs.md'
SNIPPETS = [block for block in re.findall(r'```python\n(.*?)```', DOC.read_text(), re.S)
            if block.startswith('_base_ = ')]


def test_doc_has_detection_and_segmentation_examples():
    bases = [s.split('\n', 1)[0] for s in SNIPPETS]
    assert any('mmdet::' in b for b in bases) and any('mmseg::' in b for b in bases)


@pytest.mark.parametrize('snippet', SNIPPETS, ids=lambda s: s.split("'")[1])
def test_snippet_builds_a_cvt_model(snippet, tmp_path):
    path = tmp_path / 'snippet_config.py'
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    model = MODELS.build(cfg.model).eval()
    assert type(model.backbone).__name__ == 'CvT'
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 128, 128))
    widths = [f.shape[-1] for f in feats]
    # mmdet: FPN levels at strides 4..64; mmseg: the backbone's strides 4, 8, 16.
    expected = [32, 16, 8, 4, 2] if cfg.default_scope == 'mmdet' else [32, 16, 8]
    assert widths == expected

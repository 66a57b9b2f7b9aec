"""`custom_imports=['cvt_dense']` makes CvT buildable from mmdet and mmseg configs."""
import subprocess
import sys
import textwrap

import pytest
import torch

import cvt_dense  # noqa: F401
from cvt_dense.models import CvT

SCRIPT = textwrap.dedent('''
    import sys
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(sys.argv[1])
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    print(type(model).__module__, type(model).__name__, model.out_indices)
''')


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_custom_imports_registers_backbone(tmp_path, scope):
    config = tmp_path / f'{scope}_cfg.py'
    config.write_text(textwrap.dedent(f'''
        default_scope = '{scope}'
        custom_imports = dict(imports=['cvt_dense'], allow_failed_imports=False)
        model = dict(type='CvT', arch='cvt-13', out_indices=(1, 2))
    '''))
    out = subprocess.run([sys.executable, '-c', SCRIPT, str(config)], capture_output=True,
                         text=True, check=True).stdout
    assert out.split()[-4:] == ['cvt_dense.models.backbones.cvt', 'CvT', '(1,', '2)']


@pytest.mark.parametrize('registry_module', ['mmdet.registry', 'mmseg.registry'])
def test_registered_in_both_registries(registry_module):
    registry = __import__(registry_module, fromlist=['MODELS']).MODELS
    assert registry.get('CvT') is CvT
    model = registry.build(dict(type='CvT', arch=dict(embed_dims=[8, 16, 24], num_heads=[1, 2, 3],
                                                      depths=[1, 1, 1]))).eval()
    assert model(torch.randn(1, 3, 32, 32))[2].shape == (1, 24, 2, 2)


@pytest.mark.parametrize('scope', ['mmengine', 'mmdet', 'mmseg'])
def test_builds_whatever_the_current_default_scope(scope):
    """Registry.build switches to the default scope's registry (e.g. after a Runner ran)."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(dict(type='CvT', arch=dict(embed_dims=[8, 16, 24],
                                                        num_heads=[1, 2, 3], depths=[1, 1, 1])))
    assert isinstance(model, CvT)


def test_registration_is_idempotent():
    from mmdet.registry import MODELS
    cvt_dense.register_all_modules()
    assert MODELS.get('CvT') is CvT

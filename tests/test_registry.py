"""`custom_imports=['cvt_dense']` makes CvT buildable from mmdet and mmseg configs, with
either library, both, or neither installed."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch

import cvt_dense  # noqa: F401
from cvt_dense import registry as toolkit_registry
from cvt_dense.models import CvT

TINY_ARCH = dict(embed_dims=[8, 16, 24], num_heads=[1, 2, 3], depths=[1, 1, 1])

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
    assert out.split()[-4:] == ['cvt_dense.models.backbones.cvt.model', 'CvT', '(1,', '2)']


@pytest.mark.parametrize('registry_module', ['mmdet.registry', 'mmseg.registry'])
def test_registered_in_both_registries(registry_module):
    registry = __import__(registry_module, fromlist=['MODELS']).MODELS
    assert registry.module_dict['CvT'] is CvT  # its own, not only the parent it falls back to
    model = registry.build(dict(type='CvT', arch=TINY_ARCH)).eval()
    assert model(torch.randn(1, 3, 32, 32))[2].shape == (1, 24, 2, 2)


@pytest.mark.parametrize('scope', ['mmengine', 'mmdet', 'mmseg'])
def test_builds_whatever_the_current_default_scope(scope):
    """Registry.build switches to the default scope's registry (e.g. after a Runner ran)."""
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(dict(type='CvT', arch=TINY_ARCH))
    assert isinstance(model, CvT)


def test_registration_is_idempotent():
    from mmdet.registry import MODELS
    cvt_dense.register_all_modules()
    assert MODELS.get('CvT') is CvT


# Run first in a subprocess: the listed top-level packages then import as if they were not
# installed (the same ModuleNotFoundError), whatever sys.path holds.
BLOCK_IMPORTS = textwrap.dedent('''
    import importlib.abc
    import json
    import sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def __init__(self, names):
            self.names = set(names)

        def find_spec(self, fullname, path=None, target=None):
            if fullname.split('.')[0] in self.names:
                raise ModuleNotFoundError(f'No module named {fullname!r}', name=fullname)
            return None

    BLOCKED = sys.argv[1].split(',')
    sys.meta_path.insert(0, NotInstalled(BLOCKED))

    def unimportable(name):
        try:
            __import__(name)
        except ModuleNotFoundError:
            return True
        return False

    def report(**fields):
        """Print the fields and proof of the blocking as the last line, in JSON."""
        print(json.dumps(dict(fields, blocked_unimportable=[unimportable(n) for n in BLOCKED],
                              blocked_loaded=[n for n in BLOCKED if n in sys.modules])))
''')

BUILD_WITH_OTHER_LIBRARY = BLOCK_IMPORTS + textwrap.dedent('''
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(sys.argv[2])  # custom_imports: import cvt_dense
    import cvt_dense
    init_default_scope(cfg.default_scope)
    MODELS = __import__(f'{cfg.default_scope}.registry', fromlist=['MODELS']).MODELS
    model = MODELS.build(cfg.model).eval()
    report(registered=MODELS.module_dict.get('CvT') is cvt_dense.models.CvT,
           model=f'{type(model).__module__}.{type(model).__name__}',
           shape=list(model(torch.randn(1, 3, 32, 32))[-1].shape))
''')

PLAIN_PYTORCH = BLOCK_IMPORTS + textwrap.dedent('''
    import torch
    import cvt_dense
    from cvt_dense.models import CvT
    model = CvT(arch=json.loads(sys.argv[2]))
    outs = model.eval()(torch.randn(1, 3, 32, 32))
    report(registries=[r.scope for r in cvt_dense.registry.installed_model_registries()],
           shapes=[list(out.shape) for out in outs])
''')


def run_blocked(script, blocked, *args):
    """Run ``script`` with ``blocked`` unimportable; its report, checked that they were."""
    result = subprocess.run([sys.executable, '-c', script, ','.join(blocked), *args],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report.pop('blocked_unimportable') == [True] * len(blocked)
    assert report.pop('blocked_loaded') == []
    return report


@pytest.mark.parametrize('blocked,scope', [('mmdet', 'mmseg'), ('mmseg', 'mmdet')])
def test_one_library_alone(tmp_path, blocked, scope):
    """With mmdet (resp. mmseg) not installed, `custom_imports` still works for the other."""
    config = tmp_path / 'cfg.py'
    config.write_text(textwrap.dedent(f'''
        default_scope = '{scope}'
        custom_imports = dict(imports=['cvt_dense'], allow_failed_imports=False)
        model = dict(type='CvT', arch={TINY_ARCH!r})
    '''))
    report = run_blocked(BUILD_WITH_OTHER_LIBRARY, [blocked], str(config))
    assert report['registered'] is True  # in the library's own MODELS, not only the root
    assert report['model'] == 'cvt_dense.models.backbones.cvt.model.CvT'
    assert report['shape'] == [1, 24, 2, 2]


def test_neither_library_plain_pytorch():
    report = run_blocked(PLAIN_PYTORCH, ['mmdet', 'mmseg'], json.dumps(TINY_ARCH))
    assert report['registries'] == ['mmengine']
    assert report['shapes'] == [[1, 8, 8, 8], [1, 16, 4, 4], [1, 24, 2, 2]]


def test_library_not_installed_is_skipped(monkeypatch):
    monkeypatch.setattr(toolkit_registry, 'DOWNSTREAM_LIBRARIES',
                        ('mmdet', 'cvt_dense_no_such_library'))
    from mmdet.registry import MODELS
    from mmengine.registry import MODELS as ROOT
    assert toolkit_registry.installed_model_registries() == [MODELS, ROOT]


def test_library_hidden_in_sys_modules_is_skipped(monkeypatch):
    """``sys.modules[name] = None``, the usual way to hide a package, reads as not installed."""
    monkeypatch.setitem(sys.modules, 'mmseg', None)
    monkeypatch.setitem(sys.modules, 'mmseg.registry', None)  # imported by this process
    from mmdet.registry import MODELS
    from mmengine.registry import MODELS as ROOT
    assert toolkit_registry.installed_model_registries() == [MODELS, ROOT]


def test_library_without_registry_names_the_versions_needed(tmp_path, monkeypatch):
    package = tmp_path / 'cvt_dense_old_library'
    package.mkdir()
    (package / '__init__.py').write_text("__version__ = '2.28.2'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(toolkit_registry, 'DOWNSTREAM_LIBRARIES', ('cvt_dense_old_library',))
    with pytest.raises(ImportError, match=r'cvt_dense_old_library 2\.28\.2 is installed but '
                       r'has no cvt_dense_old_library\.registry.*mmdet 3\.x'):
        toolkit_registry.installed_model_registries()


def test_broken_library_is_not_hidden(tmp_path, monkeypatch):
    """An installed library that fails to import raises its own error, not a silent skip."""
    package = tmp_path / 'cvt_dense_broken_library'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'registry.py').write_text('import cvt_dense_missing_dependency\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(toolkit_registry, 'DOWNSTREAM_LIBRARIES', ('cvt_dense_broken_library',))
    with pytest.raises(ModuleNotFoundError) as err:
        toolkit_registry.installed_model_registries()
    assert err.value.name == 'cvt_dense_missing_dependency'


STAND_IN = textwrap.dedent('''
    import json, sys, warnings
    import torch
    from mmdet.registry import MODELS as DET
    from mmengine.model import BaseModule
    from mmengine.registry import DefaultScope
    from mmengine.registry import MODELS as ROOT
    from mmseg.registry import MODELS as SEG

    def stand_in(registry, name):
        """A model of another owner, e.g. mmdet's ViTDet project's SimpleFPN."""
        cls = type(name, (BaseModule, ), dict(
            __module__='other.project', __init__=lambda self, backbone_channel, **kwargs:
            BaseModule.__init__(self)))
        return registry.register_module(module=cls)  # as their decorator: no force

    def owner(registry, name):
        module = registry.module_dict.get(name)
        return module and f'{module.__module__}.{module.__qualname__}'

    def built(registry, scope, name):
        with DefaultScope.overwrite_default_scope(scope):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                model = registry.build(dict(type=name, in_channels=8, out_channels=4))
        return [type(model).__name__,
                [str(w.message) for w in caught if w.category is FutureWarning]]

    if sys.argv[1] == 'before':
        first, backbone = stand_in(DET, 'SimpleFPN'), stand_in(SEG, 'ConViT')
    import cvt_dense
    if sys.argv[1] == 'after':
        stand_in(DET, 'SimpleFPN')  # raises if our alias took the name in mmdet's MODELS
    print(json.dumps(dict(
        owners={scope: owner(registry, 'SimpleFPN') for scope, registry in
                (('mmdet', DET), ('mmseg', SEG), ('mmengine', ROOT))},
        convit=[owner(SEG, 'ConViT'), owner(DET, 'ConViT')],
        ours=built(DET, 'mmdet', 'CvtDenseSimpleFPN'),
        former_name_in_mmseg=built(SEG, 'mmseg', 'SimpleFPN')
        if owner(SEG, 'SimpleFPN') is None and 'SimpleFPN' in ROOT.module_dict else None)))
''')


def run_stand_in(order: str):
    done = subprocess.run([sys.executable, '-c', STAND_IN, order], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout + done.stderr


def test_a_name_another_owner_registered_first_keeps_its_owner():
    """mmdet's ViTDet project (stand-in) registered SimpleFPN before `import cvt_dense`: it
    stays, our neck builds under its own name, and a log line says why the former name was
    not registered. A backbone name held by another module stays theirs as well."""
    report, output = run_stand_in('before')
    assert report['owners'] == dict(mmdet='other.project.SimpleFPN', mmseg=None, mmengine=None)
    assert report['ours'] == ['CvtDenseSimpleFPN', []]
    assert report['former_name_in_mmseg'] is None
    assert ("'SimpleFPN' is already registered in mmdet::model (other.project.SimpleFPN); "
            "cvt_dense does not register it as the former name of CvtDenseSimpleFPN") in output
    assert report['convit'] == ['other.project.ConViT',
                                'cvt_dense.models.backbones.convit.model.ConViT']
    assert "'ConViT' is already registered in mmseg::model (other.project.ConViT)" in output


def test_the_former_name_never_blocks_a_later_owner():
    """Without another owner, type='SimpleFPN' (our former name) still builds ours with a
    FutureWarning, from mmengine's root registry only: mmdet's ViTDet project imported
    afterwards registers its own without a clash and wins in mmdet's scope."""
    report, _ = run_stand_in('after')
    assert report['owners'] == dict(mmdet='other.project.SimpleFPN', mmseg=None,
                                    mmengine='cvt_dense.registry.SimpleFPN')
    assert report['ours'] == ['CvtDenseSimpleFPN', []]
    name, warned = report['former_name_in_mmseg']
    assert name == 'CvtDenseSimpleFPN'
    assert len(warned) == 1 and "use type='CvtDenseSimpleFPN'" in warned[0]

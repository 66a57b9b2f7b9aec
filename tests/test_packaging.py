"""The package as a library for an existing environment: requirement ranges with the pins in
one lock file, a wheel that carries the configs, and an install that leaves torch alone.

Everything runs offline: the wheel is built with ``--no-build-isolation --no-index`` and
the resolver checks use ``--no-index`` with stub distributions (metadata only) instead of
PyPI, so the result does not depend on the network or on what PyPI serves today.
"""
import json
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / 'requirements'
CONFIG_DIR = REPO / 'configs'
RANGE_FILES = ('runtime', 'det', 'seg', 'tests')  # what setup.py declares
MAKEFILE_ONLY_FILES = ('build', 'mmcv')  # what make installs before the package
# Not the working tree's build products, environments, data or caches.
COPY_IGNORE = shutil.ignore_patterns('.git', '.venv', 'build', 'dist', '*.egg-info',
                                     '__pycache__', '*.pyc', 'data', 'work_dirs',
                                     'checkpoints', '.pytest_cache')


def requirement_lines(path: Path):
    for line in path.read_text().splitlines():
        line = line.split('#')[0].strip()
        if line:
            yield line


def declared(name: str):
    return [Requirement(line) for line in requirement_lines(REQUIREMENTS / f'{name}.txt')]


def pins() -> dict:
    """Canonical name -> exact version, from requirements/constraints.txt."""
    result = {}
    for line in requirement_lines(REQUIREMENTS / 'constraints.txt'):
        req = Requirement(line)
        exact = [spec.version for spec in req.specifier if spec.operator == '==']
        assert len(exact) == 1, f'constraints.txt: {line!r} is not an exact pin'
        result[canonicalize_name(req.name)] = exact[0]
    return result


def run(*cmd, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f'{cmd}\n{result.stdout}\n{result.stderr}'
    return result.stdout


def pip(*args, **kwargs):
    return run(sys.executable, '-m', 'pip', '--disable-pip-version-check', *args, **kwargs)


def offline_env() -> dict:
    """Environment of the subprocesses: no PYTHONPATH (the source tree must not be seen)."""
    return {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}


def stub_wheel(folder: Path, name: str, version: str) -> Path:
    """A wheel with metadata only (no code, no dependencies): enough for the resolver."""
    dist = re.sub(r'[-_.]+', '_', name)
    info = f'{dist}-{version}.dist-info'
    files = {
        f'{info}/METADATA': f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n',
        f'{info}/WHEEL': ('Wheel-Version: 1.0\nGenerator: cvt_dense-tests\n'
                          'Root-Is-Purelib: true\nTag: py3-none-any\n'),
    }
    files[f'{info}/RECORD'] = ''.join(f'{path},,\n' for path in [*files, f'{info}/RECORD'])
    path = folder / f'{dist}-{version}-py3-none-any.whl'
    with zipfile.ZipFile(path, 'w') as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """The package's wheel, built offline from a copy of the source tree (an in-tree build
    would leave build/ and .egg-info behind, and could pick up stale files from them)."""
    root = tmp_path_factory.mktemp('wheel')
    source = root / 'source'
    shutil.copytree(REPO, source, ignore=COPY_IGNORE)
    pip('wheel', '--no-deps', '--no-build-isolation', '--no-index', '-w', root / 'dist', source)
    (built,) = (root / 'dist').glob('cvt_dense-*.whl')
    return built


def test_pins_live_only_in_the_constraints_file():
    for name in RANGE_FILES + MAKEFILE_ONLY_FILES:
        for req in declared(name):
            exact = [s for s in req.specifier if s.operator in ('==', '===')]
            assert not exact, f'requirements/{name}.txt pins {req}: pins go in constraints.txt'


@pytest.mark.parametrize('name', RANGE_FILES + MAKEFILE_ONLY_FILES)
def test_every_requirement_is_pinned_within_its_range(name):
    """`make install` is reproducible (everything pinned) and the pins satisfy the ranges."""
    locked = pins()
    for req in declared(name):
        key = canonicalize_name(req.name)
        assert key in locked, f'{req.name} (requirements/{name}.txt) has no pin in constraints.txt'
        assert req.specifier.contains(locked[key], prereleases=True), (
            f'constraints.txt pins {req.name}=={locked[key]}, outside {req} '
            f'(requirements/{name}.txt)')


def test_wheel_metadata_declares_ranges_and_extras(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith('.dist-info/METADATA')]
        text = archive.read(metadata).decode()
    requires = [Requirement(line.split(':', 1)[1]) for line in text.splitlines()
                if line.startswith('Requires-Dist:')]
    core = {canonicalize_name(r.name) for r in requires if r.marker is None}
    assert {'torch', 'mmcv', 'mmengine'} <= core
    assert not {'mmdet', 'mmsegmentation'} & core  # optional: extras det / seg
    for extra, library in (('det', 'mmdet'), ('seg', 'mmsegmentation')):
        assert any(canonicalize_name(r.name) == library and r.marker is not None
                   and r.marker.evaluate({'extra': extra}) for r in requires)
    assert all(s.operator != '==' for r in requires for s in r.specifier)


@pytest.mark.parametrize('folder', ['configs', 'tools'])
def test_wheel_carries_every_config_and_tool(wheel, folder):
    """In OpenMMLab's layout, where ``mim train cvt_dense CONFIG`` looks for them."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    source = REPO / folder
    expected = {f'cvt_dense/.mim/{folder}/{p.relative_to(source).as_posix()}'
                for p in source.rglob('*') if p.is_file() and '__pycache__' not in p.parts}
    if folder == 'configs':
        assert any('/_base_/' in n for n in expected) and any('/demo/' in n for n in expected)
    else:
        assert {'cvt_dense/.mim/tools/train.py', 'cvt_dense/.mim/tools/test.py'} <= expected
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(('configs/', 'tests/', 'tools/')) for n in names)


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory):
    """A venv that sees this environment's packages but not the source tree, with the
    wheel installed: (its python, its site-packages)."""
    venv = tmp_path_factory.mktemp('installed') / 'venv'
    run(sys.executable, '-m', 'venv', '--without-pip', venv)
    python = venv / 'bin' / 'python'
    venv_site = Path(run(python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))')
                     .strip())
    # A plain path line: this environment's packages, but not its .pth files (which would
    # put an editable cvt_dense on the path).
    (venv_site / 'project_env.pth').write_text('\n'.join(site.getsitepackages()) + '\n')
    run(python, '-m', 'pip', '--disable-pip-version-check', 'install', '--no-deps',
        '--no-index', '--ignore-installed', wheel, env=offline_env())
    return python, venv_site


def test_installed_wheel_builds_a_model_from_its_config(installed, tmp_path):
    """cvt_dense and the config both come from the installed wheel."""
    python, venv_site = installed
    script = '''
import json
import cvt_dense
from cvt_dense.config_files import config_path
from mmengine.config import Config
from mmengine.registry import init_default_scope
path = config_path('maskrcnn_cvt13_coco')
cfg = Config.fromfile(path)
init_default_scope(cfg.default_scope)
from mmdet.registry import MODELS
model = MODELS.build(cfg.model)
print(json.dumps(dict(package=cvt_dense.__file__, config=path,
                      model=type(model).__name__, backbone=type(model.backbone).__name__)))
'''
    out = run(python, '-c', script, cwd=tmp_path, env=offline_env())
    report = json.loads(out.strip().splitlines()[-1])
    installed = venv_site / 'cvt_dense'
    assert Path(report['package']).resolve() == (installed / '__init__.py').resolve()
    config = Path(report['config']).resolve()
    assert config == (installed / '.mim' / 'configs' / 'maskrcnn_cvt13_coco.py').resolve()
    assert config.read_text() == (CONFIG_DIR / 'maskrcnn_cvt13_coco.py').read_text()
    assert (report['model'], report['backbone']) == ('MaskRCNN', 'CvT')


def test_installed_tools_train_and_test_as_mim_runs_them(installed, tmp_path):
    """``mim train cvt_dense upernet_cvt13_shapes.py`` finds the config and the tool in
    ``<site-packages>/cvt_dense/.mim`` and runs ``python .mim/tools/train.py CONFIG
    --launcher none ...`` (openmim 0.3.9's command; ``mim test`` likewise with test.py).
    Those commands, on 2 iterations of a tiny model."""
    from cvt_dense.datasets import generate_shapes
    python, venv_site = installed
    mim = venv_site / 'cvt_dense' / '.mim'
    config = mim / 'configs' / 'demo' / 'upernet_cvt13_shapes.py'
    generate_shapes(tmp_path / 'data' / 'shapes', num_train=2, num_val=1, seed=0, verbose=False)
    tiny = ['model.backbone.arch._delete_=True', 'model.backbone.arch.embed_dims=[16,32,64]',
            'model.backbone.arch.num_heads=[1,1,2]', 'model.backbone.arch.depths=[1,1,1]',
            'model.decode_head.in_channels=[16,32,64]', 'model.decode_head.channels=16',
            'model.auxiliary_head.in_channels=64', 'model.auxiliary_head.channels=16']
    env = dict(offline_env(), OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    run(python, mim / 'tools' / 'train.py', config, '--launcher', 'none', '--work-dir',
        tmp_path / 'run', '--cfg-options', *tiny, 'train_cfg.max_iters=2',
        'default_hooks.checkpoint.interval=2', 'val_cfg=None',
        'val_dataloader=None', 'val_evaluator=None', cwd=tmp_path, env=env)
    assert (tmp_path / 'run' / 'iter_2.pth').is_file()
    out = run(python, mim / 'tools' / 'test.py', config, tmp_path / 'run' / 'iter_2.pth',
              '--launcher', 'none', '--work-dir', tmp_path / 'test', '--cfg-options', *tiny,
              cwd=tmp_path, env=env)
    assert 'metrics: {"aAcc": ' in out


@pytest.fixture
def env_with_other_torch(tmp_path, wheel):
    """An empty venv whose torch (a stub) is not the Makefile's pin, and a local index of
    stubs for every requirement at its pinned version: the Makefile's torch is on offer."""
    locked = pins()
    other_torch = '2.5.1'
    assert other_torch != locked['torch']
    links = tmp_path / 'links'
    links.mkdir()
    env = tmp_path / 'env'
    run(sys.executable, '-m', 'venv', '--without-pip', env)
    pip('--python', env / 'bin' / 'python', 'install', '--no-index', '--no-deps',
        stub_wheel(tmp_path, 'torch', other_torch), env=offline_env())
    for name in RANGE_FILES[:-1]:  # runtime, det, seg
        for req in declared(name):
            stub_wheel(links, req.name, locked[canonicalize_name(req.name)])
    return env / 'bin' / 'python', links, other_torch


def dry_run_installs(python, links, *requirements) -> dict:
    """What ``pip install`` would install into ``python``'s environment: name -> version."""
    report = python.parent.parent / 'report.json'
    pip('--python', python, 'install', '--dry-run', '--no-index', '--find-links', links,
        '--quiet', '--report', report, *requirements, env=offline_env())
    return {canonicalize_name(item['metadata']['name']): item['metadata']['version']
            for item in json.loads(report.read_text())['install']}


def test_install_keeps_the_environments_torch(env_with_other_torch, wheel):
    python, links, other_torch = env_with_other_torch
    installs = dry_run_installs(python, links, f'{wheel}[det,seg]')
    assert {'cvt-dense', 'mmcv', 'mmengine', 'timm', 'mmdet', 'mmsegmentation'} <= set(installs)
    assert 'torch' not in installs, f'would replace torch {other_torch}: {installs}'
    # The check can fail: an exact pin of torch (what setup.py declared before) does propose
    # the Makefile's torch from the same local index.
    assert dry_run_installs(python, links, f'torch=={pins()["torch"]}') == {
        'torch': pins()['torch']}

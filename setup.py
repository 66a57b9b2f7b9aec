"""cvt_dense: CvT backbones for mmdet 3.x and mmsegmentation 1.x."""
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


def read_requirements(name):
    """Requirement lines of ``requirements/<name>.txt``: the compatible ranges.

    The exact versions of ``make install`` live in ``requirements/constraints.txt`` only.
    """
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


def read_version():
    namespace = {}
    exec((HERE / 'cvt_dense' / 'version.py').read_text(), namespace)
    return namespace['__version__']


class BuildWithConfigs(build_py):
    """Also copy ``configs/`` and ``tools/`` into the package as ``cvt_dense/.mim/configs``
    and ``cvt_dense/.mim/tools`` (OpenMMLab's layout, where ``mim train cvt_dense CONFIG``
    finds them), so that wheels carry them. Editable installs read the source tree's
    ``configs/`` instead (see ``cvt_dense/config_files.py``)."""

    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        for folder in ('configs', 'tools'):
            target = Path(self.build_lib) / 'cvt_dense' / '.mim' / folder
            shutil.rmtree(target, ignore_errors=True)  # no stale files from an earlier build
            shutil.copytree(HERE / folder, target,
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


setup(
    name='cvt_dense',
    version=read_version(),
    description='CvT and ConViT backbones for mmdet and mmseg',
    long_description=(HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'configs.*', 'tools',
                                    'tools.*')),
    python_requires='>=3.10',
    # Ranges, not pins: installing into an environment that has its own torch and compiled
    # mmcv must keep them. mmdet and mmseg are optional; `import cvt_dense` works with
    # either, both or neither.
    install_requires=read_requirements('runtime'),
    extras_require={
        'det': read_requirements('det'),
        'seg': read_requirements('seg'),
        'tests': read_requirements('tests'),
        'onnx': read_requirements('onnx'),
    },
    cmdclass={'build_py': BuildWithConfigs},
)

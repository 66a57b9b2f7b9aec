"""cvt_dense: CvT backbones for mmdet 3.x and mmsegmentation 1.x."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements(name):
    """Requirement lines of ``requirements/<name>.txt`` (the one place pins live)."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


def read_version():
    namespace = {}
    exec((HERE / 'cvt_dense' / 'version.py').read_text(), namespace)
    return namespace['__version__']


setup(
    name='cvt_dense',
    version=read_version(),
    description='CvT (Convolutional vision Transformer) backbones for mmdet and mmseg',
    long_description=(HERE / 'README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.10',
    # torch/torchvision and the compiled mmcv are installed first by the Makefile from the
    # same files; listing them here keeps pip from swapping them for other builds later.
    install_requires=(read_requirements('build')[:2] + read_requirements('mmcv')
                      + read_requirements('runtime')),
    extras_require={'tests': read_requirements('tests'), 'onnx': read_requirements('onnx')},
)

"""cvt_dense: CvT and ConViT backbones for mmdet 3.x and mmsegmentation 1.x.

Importing the package registers its models into the ``MODELS`` registries of mmdet and
mmseg, whichever of the two are installed (see :mod:`cvt_dense.registry`); the configs that
come with the package are found with :func:`cvt_dense.config_files.config_path`.
"""
from . import optim  # noqa: F401  (registers the optimizer constructor)
from .engine import allow_mmengine_checkpoints
from .registry import register_all_modules
from .version import __version__

register_all_modules()
allow_mmengine_checkpoints()  # mmengine checkpoints load under torch.load(weights_only=True)

__all__ = ['__version__', 'register_all_modules']

"""cvt_dense: CvT and ConViT backbones for mmdet 3.x and mmsegmentation 1.x.

Importing the package registers its models into the ``MODELS`` registries of mmdet and
mmseg, whichever of the two are installed (see :mod:`cvt_dense.registry`); its training
machinery (:mod:`cvt_dense.runtime`, :mod:`cvt_dense.optim`) is loaded when a config first
builds one of its hooks or optimizer wrappers, or by the tools. The configs that come with
the package are found with :func:`cvt_dense.config_files.config_path`.
"""
from .registry import register_all_modules
from .version import __version__

register_all_modules()

__all__ = ['__version__', 'register_all_modules']

"""The one place that puts the toolkit's models into the model registries.

Registering lets ``custom_imports=dict(imports=['cvt_dense'])`` make ``CvT``, ``ConViT`` and
``SimpleFPN`` (``cvt_dense.models.TOOLKIT_MODELS``) buildable from mmdet and mmseg configs. Either library is optional (mmseg does not need mmdet): the models
go into the ``MODELS`` of each one that is installed. ``Registry.build`` switches to the
registry of the current default scope, which may be neither (mmengine's own, or another
library's), so the models also go into mmengine's root registry, the parent every
downstream registry falls back to. With neither library installed the models are plain
PyTorch modules; the model modules themselves never import mmdet or mmseg.
"""
import importlib
import sys
from typing import List

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

from .models import TOOLKIT_MODELS

# Optional downstream libraries (import names) whose MODELS get the toolkit's models.
DOWNSTREAM_LIBRARIES = ('mmdet', 'mmseg')


def installed_model_registries() -> List[Registry]:
    """``MODELS`` of every installed downstream library, then mmengine's root ``MODELS``.

    A library that is not installed (or hidden with ``sys.modules[name] = None``) is
    skipped. One that is installed but fails to import (e.g. a dependency of its own is
    missing, or it refuses the installed mmcv) raises: the error is the library's, not
    hidden.

    Raises:
        ImportError: A library is installed in a version without ``<library>.registry``
            (mmdet 2.x, mmseg 0.x).
    """
    registries = []
    for library in DOWNSTREAM_LIBRARIES:
        try:
            registries.append(importlib.import_module(f'{library}.registry').MODELS)
        except ModuleNotFoundError as err:
            if err.name == library or sys.modules.get(library, False) is None:
                continue
            if err.name == f'{library}.registry':
                version = getattr(sys.modules.get(library), '__version__', 'unknown')
                raise ImportError(
                    f'{library} {version} is installed but has no {library}.registry: '
                    f'cvt_dense needs the mmengine-based releases (mmdet 3.x, '
                    f'mmsegmentation 1.x)') from err
            raise
    return registries + [MMENGINE_MODELS]


def register_all_modules() -> List[Registry]:
    """Register every toolkit model into the installed libraries' ``MODELS`` (idempotent).

    Returns:
        list[Registry]: The registries the models are now in.
    """
    registries = installed_model_registries()
    for registry in registries:
        for cls in TOOLKIT_MODELS:
            if registry.module_dict.get(cls.__name__) is not cls:
                registry.register_module(module=cls, force=True)
    return registries

"""The one place that puts the toolkit's models into the mmdet and mmseg registries.

Registering into both lets ``custom_imports=dict(imports=['cvt_dense'])`` make ``CvT``
buildable whatever a config's ``default_scope`` is. The models themselves never import
mmdet or mmseg.
"""
from mmdet.registry import MODELS as MMDET_MODELS
from mmseg.registry import MODELS as MMSEG_MODELS

from .models import CvT

DOWNSTREAM_MODEL_REGISTRIES = (MMDET_MODELS, MMSEG_MODELS)
TOOLKIT_MODELS = (CvT,)


def register_all_modules():
    """Register every toolkit model into mmdet's and mmseg's ``MODELS`` (idempotent)."""
    for registry in DOWNSTREAM_MODEL_REGISTRIES:
        for cls in TOOLKIT_MODELS:
            if registry.module_dict.get(cls.__name__) is not cls:
                registry.register_module(module=cls, force=True)

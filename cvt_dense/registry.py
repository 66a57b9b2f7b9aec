"""The one place that puts the toolkit's models into the mmdet and mmseg registries.

Registering into both lets ``custom_imports=dict(imports=['cvt_dense'])`` make ``CvT``
buildable from mmdet and mmseg configs. ``Registry.build`` switches to the registry of the
current default scope, which may be neither (mmengine's own, or another library's), so the
models also go into mmengine's root registry, the parent every downstream registry falls
back to. The models themselves never import mmdet or mmseg.
"""
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmseg.registry import MODELS as MMSEG_MODELS

from .models import TOOLKIT_MODELS

MODEL_REGISTRIES = (MMDET_MODELS, MMSEG_MODELS, MMENGINE_MODELS)


def register_all_modules():
    """Register every toolkit model into mmdet's, mmseg's and mmengine's ``MODELS``
    (idempotent)."""
    for registry in MODEL_REGISTRIES:
        for cls in TOOLKIT_MODELS:
            if registry.module_dict.get(cls.__name__) is not cls:
                registry.register_module(module=cls, force=True)

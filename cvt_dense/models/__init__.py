"""The toolkit's models: the backbones (each registered once), the necks and their layers.

Importing this package loads no training machinery and changes no torch global; it needs
neither mmdet nor mmseg (:mod:`cvt_dense.registry` puts the models into their registries).
"""
from typing import Tuple

from .backbones import (ConViT, CvT, DenseBackbone, get_backbone, register_backbone,
                        registered_backbones)
from .layers import QuickGELU
from .necks import CvtDenseSimpleFPN

# The necks the toolkit puts into the OpenMMLab registries, next to every backbone.
NECKS = (CvtDenseSimpleFPN,)


def toolkit_models() -> Tuple[type, ...]:
    """Every model the toolkit puts into the OpenMMLab registries: the registered backbones
    (including any registered later), then the necks."""
    return tuple(info.cls for info in registered_backbones()) + NECKS


__all__ = ['ConViT', 'CvT', 'CvtDenseSimpleFPN', 'DenseBackbone', 'NECKS', 'QuickGELU',
           'get_backbone', 'register_backbone', 'registered_backbones', 'toolkit_models']

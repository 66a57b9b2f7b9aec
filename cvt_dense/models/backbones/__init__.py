"""The backbones: one subpackage each, which registers itself once when imported (see
:mod:`.registration`); registration order is the tools' default order."""
from .base import DenseBackbone
from .registration import (BackboneInfo, Peer, get_backbone, on_register, register_backbone,
                           registered_backbones, unregister_backbone)
from .cvt import ARCH_SETTINGS, CvT  # noqa: E402, I001  (CvT first: the demo's default)
from .convit import ConViT  # noqa: E402

__all__ = ['ARCH_SETTINGS', 'BackboneInfo', 'ConViT', 'CvT', 'DenseBackbone', 'Peer',
           'get_backbone', 'on_register', 'register_backbone', 'registered_backbones',
           'unregister_backbone']

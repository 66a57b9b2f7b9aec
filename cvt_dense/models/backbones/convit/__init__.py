"""ConViT: the model and its preset table, its GPSA blocks, its checkpoint description."""
from .model import ConViT
from .presets import ARCH_SETTINGS, resolve_arch
from .pretrained import CONVIT_CHECKPOINTS

__all__ = ['ARCH_SETTINGS', 'CONVIT_CHECKPOINTS', 'ConViT', 'resolve_arch']

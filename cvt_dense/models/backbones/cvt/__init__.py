"""CvT: the model and its preset table, its blocks, its checkpoint description."""
from .model import CvT
from .presets import ARCH_SETTINGS, resolve_arch
from .pretrained import CVT_CHECKPOINTS, convert_to_cvt

__all__ = ['ARCH_SETTINGS', 'CVT_CHECKPOINTS', 'CvT', 'convert_to_cvt', 'resolve_arch']

from .base import DenseBackbone
from .convit import ConViT
from .cvt import ARCH_SETTINGS, CvT

__all__ = ['ARCH_SETTINGS', 'ConViT', 'CvT', 'DenseBackbone']

from .cvt import ARCH_SETTINGS, CvT

__all__ = ['ARCH_SETTINGS', 'CvT']

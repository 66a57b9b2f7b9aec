from .backbones import CvT
from .layers import QuickGELU

__all__ = ['CvT', 'QuickGELU']

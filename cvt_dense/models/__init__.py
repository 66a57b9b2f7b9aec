from .backbones import ConViT, CvT, DenseBackbone
from .layers import QuickGELU
from .necks import SimpleFPN

# Everything the toolkit puts into the OpenMMLab registries.
TOOLKIT_MODELS = (CvT, ConViT, SimpleFPN)

__all__ = ['ConViT', 'CvT', 'DenseBackbone', 'QuickGELU', 'SimpleFPN', 'TOOLKIT_MODELS']

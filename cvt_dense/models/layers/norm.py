from mmengine.registry import MODELS
from timm.layers import LayerNorm2d

# LayerNorm over the channels of an NCHW map (ViTDet's neck norm), buildable as
# ``norm_cfg=dict(type='LN2d')`` by mmcv's ``build_norm_layer`` from any scope.
if 'LN2d' not in MODELS.module_dict:
    MODELS.register_module('LN2d', module=LayerNorm2d)

__all__ = ['LayerNorm2d']

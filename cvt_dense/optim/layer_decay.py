"""Layer-wise learning-rate decay for backbones that define ``get_layer_depth``."""
from typing import List

from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(force=True)  # over the stand-in of cvt_dense.registry
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Scales each backbone parameter's lr by ``decay_rate ** (num_layers - 1 - layer_id)``.

    The layer id comes from ``model.backbone.get_layer_depth(name, 'backbone.')``; every
    parameter outside the backbone (neck, heads) gets the full lr. Registered in mmengine's
    root registry, so mmdet and mmseg configs find it whatever their ``default_scope``::

        optim_wrapper = dict(
            type='OptimWrapper', constructor='LayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            paramwise_cfg=dict(decay_rate=0.9))

    Args:
        optim_wrapper_cfg (dict): The optimizer wrapper config.
        paramwise_cfg (dict, optional): ``decay_rate`` (float, default 1.0 = no decay) and
            ``no_decay_names`` (names whose parameters get no weight decay, default
            ``('cls_token', 'pos_embed')``). Biases and norm weights (1-D parameters) never
            get weight decay.
    """

    def add_params(self, params: List[dict], module: nn.Module, **kwargs) -> None:
        decay_rate = self.paramwise_cfg.get('decay_rate', 1.0)
        no_decay_names = tuple(self.paramwise_cfg.get('no_decay_names', ('cls_token',
                                                                         'pos_embed')))
        backbone = getattr(module, 'backbone', None)
        if not hasattr(backbone, 'get_layer_depth'):
            raise TypeError(f'LayerDecayOptimWrapperConstructor needs model.backbone with a '
                            f'get_layer_depth method; got {type(backbone).__name__}')
        num_layers = None
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer_id, num_layers = backbone.get_layer_depth(name, prefix='backbone.')
            no_decay = param.ndim == 1 or any(n in name for n in no_decay_names)
            group = dict(params=[param],
                         lr=self.base_lr * decay_rate ** (num_layers - 1 - layer_id))
            if self.base_wd is not None:
                group['weight_decay'] = 0. if no_decay else self.base_wd
            params.append(group)
        MMLogger.get_current_instance().info(
            f'Layer-wise lr decay: rate {decay_rate} over {num_layers} layers, '
            f'{len(params)} parameter groups')

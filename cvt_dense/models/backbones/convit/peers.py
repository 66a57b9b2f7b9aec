"""The reference ConViT that ``benchmark_backbone`` measures ours against."""
from typing import Callable, Optional, Tuple

import torch
from torch import nn


def timm_convit(model: nn.Module, size: Tuple[int, int]
                ) -> Optional[Tuple[nn.Module, Callable]]:
    """timm's ``ConVit`` of the same width and depth, with our model's weights (its
    ``pos_embed`` resampled to the input's grid by timm's rule, as ours does at run time),
    so both compute the same features. None for non-square sizes: timm takes the grid
    side from ``sqrt(N)``."""
    if size[0] != size[1]:
        return None
    from timm.models.convit import ConVit
    from timm.layers import resample_abs_pos_embed
    settings = model.arch_settings
    peer = ConVit(img_size=size[0], patch_size=settings['patch_size'],
                  embed_dim=settings['embed_dims'] // settings['num_heads'],
                  num_heads=settings['num_heads'], depth=settings['depth'],
                  local_up_to_layer=settings['local_up_to_layer'],
                  mlp_ratio=settings['mlp_ratio'], num_classes=0)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith('out_norm')}
    grid = peer.patch_embed.grid_size
    with torch.no_grad():
        state['pos_embed'] = resample_abs_pos_embed(state['pos_embed'], new_size=grid,
                                                    old_size=model.pos_embed_grid,
                                                    num_prefix_tokens=0)
    peer.load_state_dict(state, strict=False)
    return peer, lambda reference, images: reference.forward_features(images)

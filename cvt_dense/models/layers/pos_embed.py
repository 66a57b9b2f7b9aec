from typing import Tuple

import torch
import torch.nn.functional as F


def resample_pos_embed(pos_embed: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bicubically resample a (1, C, H, W) positional embedding to ``size`` = (H', W').

    Returns the input unchanged when the grid already matches.
    """
    if pos_embed.dim() != 4:
        raise ValueError(f'pos_embed must be (1, C, H, W), got shape {tuple(pos_embed.shape)}')
    if tuple(pos_embed.shape[-2:]) == tuple(size):
        return pos_embed
    out = F.interpolate(pos_embed.float(), size=tuple(size), mode='bicubic',
                        align_corners=False)
    return out.to(pos_embed.dtype)

"""Adapting checkpoint tensors whose shape depends on the input grid or the input channels.

Two kinds of tensor are adapted instead of being rejected:

* ``stage{i}.pos_embed`` (the paper's positional-embedding ablation): resampled bicubically
  to the model's reference grid. Stored as (1, C, H, W); a (1, H*W, C) token layout with a
  square grid is accepted too.
* ``stage0.patch_embed.proj.weight`` when the model's ``in_channels`` is not 3. The RGB
  kernels W_r, W_g, W_b become, for N input channels,

  - N = 1: ``W_r + W_g + W_b``, so a grayscale image g gives exactly the response the RGB
    model gives to the image (g, g, g);
  - N >= 2: every channel gets ``(W_r + W_g + W_b) / N``, i.e. the mean RGB kernel scaled
    by 3/N: the response to N identical channels equals the RGB response to the gray image,
    and the activation scale stays the one the later layers were trained on.
"""
import math
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

import torch

from ..models.layers import resample_pos_embed

INPUT_CONV_KEY = 'stage0.patch_embed.proj.weight'
_POS_EMBED_KEY = re.compile(r'^stage\d+\.pos_embed$')
RGB_CHANNELS = 3


@dataclass
class Adaptation:
    """One tensor that was reshaped to fit the model.

    Args:
        key (str): Official name.
        source_shape (tuple): Shape in the checkpoint.
        target_shape (tuple): Shape in the model.
        rule (str): What was done.
    """

    key: str
    source_shape: Tuple[int, ...]
    target_shape: Tuple[int, ...]
    rule: str


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB patch-embedding kernel (O, 3, k, k) -> (O, in_channels, k, k), see module doc."""
    if weight.dim() != 4 or weight.shape[1] != RGB_CHANNELS:
        raise ValueError(f'expected an RGB conv weight (O, 3, k, k), got shape '
                         f'{tuple(weight.shape)}')
    if in_channels < 1:
        raise ValueError(f'in_channels must be >= 1, got {in_channels}')
    if in_channels == RGB_CHANNELS:
        return weight
    total = weight.float().sum(dim=1, keepdim=True)
    out = total if in_channels == 1 else (total / in_channels).repeat(1, in_channels, 1, 1)
    return out.to(weight.dtype)


def pos_embed_as_map(pos_embed: torch.Tensor, channels: int) -> torch.Tensor:
    """A (1, C, H, W) view of a positional embedding stored as a map or as square tokens."""
    if pos_embed.dim() == 4 and pos_embed.shape[:2] == (1, channels):
        return pos_embed
    if pos_embed.dim() == 3 and pos_embed.shape[0] == 1 and pos_embed.shape[2] == channels:
        side = math.isqrt(pos_embed.shape[1])
        if side * side == pos_embed.shape[1]:
            return pos_embed.transpose(1, 2).reshape(1, channels, side, side)
    raise ValueError(f'cannot read a positional embedding of shape {tuple(pos_embed.shape)} '
                     f'as (1, {channels}, H, W) or (1, H*W, {channels}) with a square grid')


def adapt_to_model(state_dict: Mapping[str, torch.Tensor],
                   model_state: Mapping[str, torch.Tensor]
                   ) -> Tuple[Dict[str, torch.Tensor], List[Adaptation]]:
    """Resample positional embeddings and adapt the input conv where shapes differ.

    Tensors whose shape matches, or that cannot be adapted, are returned unchanged (the
    loader reports the remaining mismatches).

    Args:
        state_dict (Mapping): Checkpoint tensors under official names.
        model_state (Mapping): The model's ``state_dict()`` (only shapes are used).

    Returns:
        tuple: (new state dict, list of :class:`Adaptation`).
    """
    out, done = dict(state_dict), []
    for key, value in state_dict.items():
        if key not in model_state:
            continue
        target = tuple(model_state[key].shape)
        if tuple(value.shape) == target:
            continue
        new, rule = None, None
        if key == INPUT_CONV_KEY and value.dim() == 4 and value.shape[1] == RGB_CHANNELS \
                and (value.shape[0], *value.shape[2:]) == (target[0], *target[2:]):
            new = adapt_input_conv(value, target[1])
            rule = ('sum of the RGB kernels' if target[1] == 1 else
                    f'mean RGB kernel x 3/{target[1]} on every channel')
        elif _POS_EMBED_KEY.match(key) and len(target) == 4:
            try:
                grid = pos_embed_as_map(value, target[1])
            except ValueError:
                continue
            new = resample_pos_embed(grid, target[2:])
            rule = f'bicubic resampling {tuple(grid.shape[2:])} -> {target[2:]}'
        if new is not None:
            out[key] = new
            done.append(Adaptation(key, tuple(value.shape), target, rule))
    return out, done

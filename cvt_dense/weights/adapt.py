"""Adapting checkpoint tensors whose shape depends on the input grid or the input channels.

Two kinds of tensor are adapted instead of being rejected:

* grid-dependent tensors (positional embeddings): resampled to the model's reference grid
  by the backbone's own rule (``CheckpointSpec.adapt_grid_tensor``);
* the first conv weight (``CheckpointSpec.input_conv``) when the model's ``in_channels`` is
  not 3. The RGB kernels W_r, W_g, W_b become, for N input channels,

  - N = 1: ``W_r + W_g + W_b``, so a grayscale image g gives exactly the response the RGB
    model gives to the image (g, g, g);
  - N >= 2: every channel gets ``(W_r + W_g + W_b) / N``, i.e. the mean RGB kernel scaled
    by 3/N: the response to N identical channels equals the RGB response to the gray image,
    and the activation scale stays the one the later layers were trained on.
"""
from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

import torch

from .spec import CheckpointSpec

RGB_CHANNELS = 3


@dataclass
class Adaptation:
    """One tensor that was reshaped to fit the model.

    Args:
        key (str): Our name.
        source_shape (tuple): Shape in the checkpoint.
        target_shape (tuple): Shape in the model.
        rule (str): What was done.
    """

    key: str
    source_shape: Tuple[int, ...]
    target_shape: Tuple[int, ...]
    rule: str


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB first-conv kernel (O, 3, k, k) -> (O, in_channels, k, k), see module doc."""
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


def _adapt_input_conv_to(value: torch.Tensor, target: Tuple[int, ...]):
    if value.dim() != 4 or value.shape[1] != RGB_CHANNELS \
            or (value.shape[0], *value.shape[2:]) != (target[0], *target[2:]):
        return None
    rule = ('sum of the RGB kernels' if target[1] == 1 else
            f'mean RGB kernel x 3/{target[1]} on every channel')
    return adapt_input_conv(value, target[1]), rule


def adapt_to_model(state_dict: Mapping[str, torch.Tensor],
                   model_state: Mapping[str, torch.Tensor], spec: CheckpointSpec
                   ) -> Tuple[Dict[str, torch.Tensor], List[Adaptation]]:
    """Resample grid-dependent tensors and adapt the input conv where shapes differ.

    Tensors whose shape matches, or that cannot be adapted, are returned unchanged (the
    loader reports the remaining mismatches).

    Args:
        state_dict (Mapping): Checkpoint tensors under our names.
        model_state (Mapping): The model's ``state_dict()`` (only shapes are used).
        spec (CheckpointSpec): The backbone's description (first conv, grid rule).

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
        if key == spec.input_conv:
            adapted = _adapt_input_conv_to(value, target)
        else:
            adapted = spec.adapt_grid_tensor(key, value, model_state[key])
        if adapted is not None:
            out[key], rule = adapted
            done.append(Adaptation(key, tuple(value.shape), target, rule))
    return out, done

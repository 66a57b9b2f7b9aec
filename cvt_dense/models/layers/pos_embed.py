"""Position embeddings stored at their pretraining grid and resampled to any other grid:
at run time for each input, and once when a checkpoint of another grid is loaded."""
import math
import re
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

from .tokens import Grid, map_to_tokens

# (resampled tensor, what was done) or None: the weight loader's grid-adaptation rule.
Adapted = Optional[Tuple[torch.Tensor, str]]


def resample_pos_embed(pos_embed: torch.Tensor, size: Grid, antialias: bool = False
                       ) -> torch.Tensor:
    """Bicubically resample a (1, C, H, W) positional embedding to ``size`` = (H', W').

    Returns the input unchanged when the grid already matches.

    Args:
        pos_embed (Tensor): (1, C, H, W).
        size (tuple): (H', W').
        antialias (bool): Widen the kernel when shrinking (timm's rule for ViTs, PIL's
            kernel); False is plain bicubic interpolation (the CvT paper's ablation).
    """
    if pos_embed.dim() != 4:
        raise ValueError(f'pos_embed must be (1, C, H, W), got shape {tuple(pos_embed.shape)}')
    if tuple(pos_embed.shape[-2:]) == tuple(size):
        return pos_embed
    out = F.interpolate(pos_embed.float(), size=tuple(size), mode='bicubic',
                        align_corners=False, antialias=antialias)
    return out.to(pos_embed.dtype)


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


def pos_embed_adapter(key_pattern: str, antialias: bool
                      ) -> Callable[[str, torch.Tensor, torch.Tensor], Adapted]:
    """A ``CheckpointSpec.adapt_grid_tensor`` rule for position embeddings.

    The rule takes a checkpoint's embedding stored as a (1, C, H, W) map or as (1, H*W, C)
    square-grid tokens, resamples it to the grid of the model's tensor (which may use the
    other layout; a token layout must then be square), and returns it in the model's
    layout.

    Args:
        key_pattern (str): Regex of the model keys that are position embeddings.
        antialias (bool): See :func:`resample_pos_embed`.
    """
    def adapt(key: str, value: torch.Tensor, target: torch.Tensor) -> Adapted:
        channels = target.shape[1] if target.dim() == 4 else target.shape[-1]
        if not re.match(key_pattern, key):
            return None
        try:
            source, goal = pos_embed_as_map(value, channels), pos_embed_as_map(target, channels)
        except ValueError:
            return None
        resampled = resample_pos_embed(source, tuple(goal.shape[2:]), antialias)
        if target.dim() == 3:
            resampled = map_to_tokens(resampled)
        return resampled, (f'bicubic{" antialiased" * antialias} resampling '
                           f'{tuple(source.shape[2:])} -> {tuple(goal.shape[2:])}')
    return adapt


def _bicubic_aa_weights(in_size: int, out_size, reference: torch.Tensor) -> torch.Tensor:
    """(out, in) matrix of antialiased bicubic interpolation along one axis, as PyTorch's
    ``interpolate(mode='bicubic', antialias=True, align_corners=False)`` computes it (PIL's
    kernel, a = -0.5, widened by the scale when shrinking; weights renormalised at the
    borders). ``out_size`` may be a traced size: the matrix follows it in exported graphs.
    """
    a = -0.5
    out_positions = torch.arange(out_size, dtype=torch.float32, device=reference.device)
    scale = torch.as_tensor(in_size / out_size, dtype=torch.float32)
    stretch = torch.clamp(scale, min=1.)  # the kernel widens only when shrinking
    centers = (out_positions + 0.5) * scale
    inputs = torch.arange(in_size, dtype=torch.float32, device=reference.device)
    x = ((inputs.view(1, -1) + 0.5 - centers.view(-1, 1)) / stretch).abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    weights = torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))
    return weights / weights.sum(dim=1, keepdim=True)


def resample_tokens_bicubic_aa(pos_embed: torch.Tensor, old_size: Grid,
                               new_size) -> torch.Tensor:
    """A (1, H*W, C) token embedding on grid ``old_size`` resampled to ``new_size`` with
    antialiased bicubic interpolation, as two matrix products.

    Numerically the same as timm's ``resample_abs_pos_embed`` (``F.interpolate`` with
    ``antialias=True``), but made of ops the legacy TorchScript ONNX exporter knows (it
    has no antialiased bicubic resize at any opset; the dynamo exporter does, at opset 18).
    ``new_size`` may hold traced sizes (dynamic ONNX axes).
    """
    rows = _bicubic_aa_weights(old_size[0], new_size[0], pos_embed)
    cols = _bicubic_aa_weights(old_size[1], new_size[1], pos_embed)
    grid = pos_embed.float().reshape(old_size[0], old_size[1], -1)
    out = torch.einsum('ih,hwc,jw->ijc', rows, grid, cols)
    return out.reshape(1, -1, pos_embed.shape[-1]).to(pos_embed.dtype)

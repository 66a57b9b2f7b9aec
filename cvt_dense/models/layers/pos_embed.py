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


def resample_tokens_bicubic_aa(pos_embed: torch.Tensor, old_size: Tuple[int, int],
                               new_size) -> torch.Tensor:
    """A (1, H*W, C) token embedding on grid ``old_size`` resampled to ``new_size`` with
    antialiased bicubic interpolation, as two matrix products.

    Numerically the same as timm's ``resample_abs_pos_embed`` (``F.interpolate`` with
    ``antialias=True``), but made of ops every exporter knows: ONNX has no antialiased
    bicubic resize. ``new_size`` may hold traced sizes (dynamic ONNX axes).
    """
    rows = _bicubic_aa_weights(old_size[0], new_size[0], pos_embed)
    cols = _bicubic_aa_weights(old_size[1], new_size[1], pos_embed)
    grid = pos_embed.float().reshape(old_size[0], old_size[1], -1)
    out = torch.einsum('ih,hwc,jw->ijc', rows, grid, cols)
    return out.reshape(1, -1, pos_embed.shape[-1]).to(pos_embed.dtype)

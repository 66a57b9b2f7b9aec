from typing import Tuple

import torch


def tokens_to_map(x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) tokens in row-major order -> (B, C, H, W) map."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map -> (B, H*W, C) tokens in row-major order."""
    return x.flatten(2).transpose(1, 2)

from typing import Tuple

import torch

# (rows, cols) of a token grid; it travels with the tokens through every block.
Grid = Tuple[int, int]


def tokens_to_map(x: torch.Tensor, hw: Grid) -> torch.Tensor:
    """(B, H*W, C) tokens in row-major order -> (B, C, H, W) map."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map -> (B, H*W, C) tokens in row-major order."""
    return x.flatten(2).transpose(1, 2)

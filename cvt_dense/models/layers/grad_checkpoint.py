import torch
import torch.utils.checkpoint as cp
from torch import nn


def call_block(block: nn.Module, x: torch.Tensor, *args, with_cp: bool = False
               ) -> torch.Tensor:
    """``block(x, *args)``, recomputed in the backward pass instead of stored when
    ``with_cp`` (gradient checkpointing: same outputs and gradients, less memory).

    Only in training with gradients; everywhere else checkpointing would change nothing.
    """
    if with_cp and block.training and x.requires_grad:
        return cp.checkpoint(block, x, *args, use_reentrant=False)
    return block(x, *args)

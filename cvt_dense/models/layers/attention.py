import torch
import torch.nn.functional as F


def scaled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T * scale) v without materialising the full score matrix.

    The single call site for attention in the toolkit: swap the kernel here.

    Args:
        q (Tensor): (B, heads, Nq, d).
        k (Tensor): (B, heads, Nk, d).
        v (Tensor): (B, heads, Nk, d).
        scale (float): Explicit score scale. CvT uses the full stage width, not the head
            width, so SDPA's default ``d ** -0.5`` would be wrong.
        dropout_p (float): Attention dropout probability (training only).

    Returns:
        Tensor: (B, heads, Nq, d).
    """
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)

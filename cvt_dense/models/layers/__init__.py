from .activation import QuickGELU
from .attention import scaled_attention
from .fused_linear import linear
from .pos_embed import resample_pos_embed

__all__ = ['QuickGELU', 'linear', 'scaled_attention', 'resample_pos_embed']

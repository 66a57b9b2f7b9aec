from .activation import QuickGELU
from .attention import scaled_attention
from .pos_embed import resample_pos_embed

__all__ = ['QuickGELU', 'scaled_attention', 'resample_pos_embed']

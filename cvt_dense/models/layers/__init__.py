from .activation import QuickGELU
from .attention import observe_attention, scaled_attention
from .fused_linear import linear
from .pos_embed import resample_pos_embed

__all__ = ['QuickGELU', 'linear', 'observe_attention', 'scaled_attention',
           'resample_pos_embed']

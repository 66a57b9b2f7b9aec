from .activation import QuickGELU
from .attention import observe_attention, scaled_attention
from .checkpoint import call_block
from .fused_linear import linear
from .mlp import Mlp
from .norm import LayerNorm2d
from .pre_norm_block import PreNormBlock
from .pos_embed import resample_pos_embed, resample_tokens_bicubic_aa
from .tokens import map_to_tokens, tokens_to_map

__all__ = ['LayerNorm2d', 'Mlp', 'PreNormBlock', 'QuickGELU', 'call_block', 'linear', 'map_to_tokens',
           'observe_attention', 'resample_pos_embed', 'resample_tokens_bicubic_aa',
           'scaled_attention', 'tokens_to_map']

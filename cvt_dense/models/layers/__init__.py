from .activation import QuickGELU
from .attention import (AttentionLayout, PixelGeometry, TokenGrid, attention_observed,
                        merge_heads, observe_attention, scaled_attention, split_heads)
from .fused_linear import linear
from .grad_checkpoint import call_block
from .mlp import Mlp
from .norm import LayerNorm2d
from .pos_embed import (pos_embed_adapter, pos_embed_as_map, resample_pos_embed,
                        resample_tokens_bicubic_aa)
from .pre_norm_block import PreNormBlock
from .tokens import Grid, map_to_tokens, tokens_to_map

__all__ = ['AttentionLayout', 'Grid', 'LayerNorm2d', 'Mlp', 'PixelGeometry', 'PreNormBlock',
           'QuickGELU', 'TokenGrid', 'attention_observed', 'call_block', 'linear',
           'map_to_tokens', 'merge_heads', 'observe_attention', 'pos_embed_adapter',
           'pos_embed_as_map', 'resample_pos_embed', 'resample_tokens_bicubic_aa',
           'scaled_attention', 'split_heads', 'tokens_to_map']

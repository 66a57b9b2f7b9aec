"""ConViT's checkpoints as the shared loader sees them.

The official release (facebookresearch/convit, ``{'model': state_dict}``) and timm's
``convit_{tiny,small,base}.fb_in1k`` (``.safetensors``, ``.bin``, ``.pth``) use the same
names, which are ours too: nothing is renamed. ``pos_embed`` is (1, H*W, C) on the square
grid of the pretraining size (14 x 14 for 224 inputs).
"""
import re
from typing import Collection, Mapping, Optional

import torch

from ....weights import ArchGuess, CheckpointSpec
from ...layers import pos_embed_adapter
from .presets import ARCH_SETTINGS, DEFAULTS

CLASSIFIER_ONLY_PREFIXES = ('head.', 'norm.')
INPUT_CONV_KEY = 'patch_embed.proj.weight'
POS_EMBED_KEY = 'pos_embed'
# A gating parameter is what tells GPSA blocks (ConViT) from plain ViT blocks.
_GPSA_KEY = re.compile(r'^blocks\.(\d+)\.attn\.gating_param$')
_BLOCK_KEY = re.compile(r'^blocks\.(\d+)\.')


def detect_format(keys: Collection[str]) -> Optional[str]:
    """'official' (official / timm, with classifier), 'cvt_dense' (backbone only) or None."""
    keys = list(keys)
    if INPUT_CONV_KEY not in keys or not any(_GPSA_KEY.match(k) for k in keys):
        return None
    return 'official' if any(k.startswith(CLASSIFIER_ONLY_PREFIXES) for k in keys) \
        else 'cvt_dense'


def guess_arch(state_dict: Mapping[str, torch.Tensor]) -> ArchGuess:
    """Width, heads, depth, GPSA blocks and input channels read from a state dict."""
    conv = state_dict.get(INPUT_CONV_KEY)
    dims, in_channels = (None, None) if conv is None else (int(conv.shape[0]),
                                                           int(conv.shape[1]))
    depth = len({m.group(1) for k in state_dict for m in [_BLOCK_KEY.match(k)] if m})
    gpsa = sorted(int(m.group(1)) for k in state_dict for m in [_GPSA_KEY.match(k)] if m)
    heads = int(state_dict[f'blocks.{gpsa[0]}.attn.gating_param'].shape[0]) if gpsa else None
    preset = next((name for name, arch in ARCH_SETTINGS.items()
                   if (arch['embed_dims'], arch['num_heads']) == (dims, heads)
                   and (depth, len(gpsa)) == (DEFAULTS['depth'], DEFAULTS['local_up_to_layer'])),
                  None)
    return ArchGuess(preset, f'embed_dims {dims}, num_heads {heads}, depth {depth}, '
                             f'local_up_to_layer {len(gpsa)}, in_channels {in_channels}')


CONVIT_CHECKPOINTS = CheckpointSpec(
    backbone='ConViT',
    detect_format=detect_format,
    to_model_key=lambda key, fmt: key,
    classifier_prefixes=CLASSIFIER_ONLY_PREFIXES,
    input_conv=INPUT_CONV_KEY,
    guess_arch=guess_arch,
    # timm's rule (antialiased bicubic), the one the model applies at run time.
    adapt_grid_tensor=pos_embed_adapter(f'^{POS_EMBED_KEY}$', antialias=True),
    new_in_dense=(r'out_norm\d+\.',),
)

"""The one table of CvT architecture facts (official configs ``cvt-13-224x224.yaml`` etc.)."""
from typing import Union

from ..presets import resolve_preset

ARCH_SETTINGS = {
    'cvt-13': dict(embed_dims=[64, 192, 384], num_heads=[1, 3, 6], depths=[1, 2, 10]),
    'cvt-21': dict(embed_dims=[64, 192, 384], num_heads=[1, 3, 6], depths=[1, 4, 16]),
    'cvt-w24': dict(embed_dims=[192, 768, 1024], num_heads=[3, 12, 16], depths=[2, 2, 20]),
}
# Stage-wise constants shared by every preset; a custom arch dict may override them.
STAGE_DEFAULTS = dict(patch_sizes=[7, 3, 3], patch_strides=[4, 2, 2], patch_paddings=[2, 1, 1],
                      mlp_ratios=[4, 4, 4], cls_tokens=[False, False, True])
REQUIRED_ARCH_KEYS = ('embed_dims', 'num_heads', 'depths')


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Full per-stage settings for a preset name or a custom dict."""
    settings = resolve_preset(arch, ARCH_SETTINGS, REQUIRED_ARCH_KEYS, STAGE_DEFAULTS, 'CvT')
    lengths = {k: len(v) for k, v in settings.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f'All per-stage lists of the CvT arch must have the same length, '
                         f'got {lengths}')
    return settings

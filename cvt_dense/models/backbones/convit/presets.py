"""The one table of ConViT architecture facts (d'Ascoli et al. 2021; timm ``convit_*``)."""
from typing import Union

from ..presets import resolve_preset

# Width = 48 per head x heads.
ARCH_SETTINGS = {
    'convit-tiny': dict(embed_dims=192, num_heads=4),
    'convit-small': dict(embed_dims=432, num_heads=9),
    'convit-base': dict(embed_dims=768, num_heads=16),
}
# Shared by every preset: 12 blocks, the first 10 gated positional self-attention (GPSA),
# 16x16 patches, MLP ratio 4. A custom arch dict may override them.
DEFAULTS = dict(depth=12, local_up_to_layer=10, patch_size=16, mlp_ratio=4.)
REQUIRED_ARCH_KEYS = ('embed_dims', 'num_heads')


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Full settings for a preset name or a custom dict."""
    settings = resolve_preset(arch, ARCH_SETTINGS, REQUIRED_ARCH_KEYS, DEFAULTS, 'ConViT')
    if settings['embed_dims'] % settings['num_heads']:
        raise ValueError(f"ConViT embed_dims={settings['embed_dims']} is not divisible by "
                         f"num_heads={settings['num_heads']}")
    if not 0 <= settings['local_up_to_layer'] <= settings['depth']:
        raise ValueError(f"ConViT local_up_to_layer={settings['local_up_to_layer']} must be "
                         f"within 0..depth={settings['depth']}")
    return settings

"""timm's ConVit as the oracle of the ConViT tests, plus a dense GPSA with the true geometry."""
import torch

from hf_oracle import randomize_

# Small enough for milliseconds, with both GPSA and MHSA blocks.
TINY_CONVIT = dict(embed_dims=32, num_heads=4, depth=4, local_up_to_layer=2)
TIMM_NAMES = {'convit-tiny': 'convit_tiny', 'convit-small': 'convit_small',
              'convit-base': 'convit_base'}


def randomize_convit_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every tensor perturbed; gates and positional projections fully random, so that both
    attention branches and their mix matter."""
    randomize_(model, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(('gating_param', 'pos_proj.weight', 'pos_proj.bias')):
                param.copy_(torch.randn(param.shape, generator=g))
    return model


def timm_convit(arch: str = None, seed: int = 0, **kwargs):
    """A random, eval-mode timm ``ConVit`` (a preset name, or kwargs for a custom one)."""
    import timm
    from timm.models.convit import ConVit
    torch.manual_seed(seed)
    if arch is not None:
        model = timm.create_model(TIMM_NAMES[arch], pretrained=False, **kwargs)
    else:
        model = ConVit(**kwargs)
    return randomize_convit_(model, seed).eval()


def timm_tiny_kwargs():
    """timm ``ConVit`` kwargs of :data:`TINY_CONVIT` (timm's embed_dim is per head)."""
    return dict(embed_dim=TINY_CONVIT['embed_dims'] // TINY_CONVIT['num_heads'],
                num_heads=TINY_CONVIT['num_heads'], depth=TINY_CONVIT['depth'],
                local_up_to_layer=TINY_CONVIT['local_up_to_layer'], num_classes=10)


def true_grid_offsets(height: int, width: int) -> torch.Tensor:
    """(1, N, N, 3) offsets (dx, dy, dx^2 + dy^2), key minus query, of row-major tokens on an
    H x W grid: the paper's r_ij, built from the grid itself."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing='ij')
    ys, xs = ys.flatten().float(), xs.flatten().float()
    dx = xs.view(1, -1) - xs.view(-1, 1)
    dy = ys.view(1, -1) - ys.view(-1, 1)
    return torch.stack((dx, dy, dx ** 2 + dy ** 2), dim=-1).unsqueeze(0)


def dense_gpsa(attn, x: torch.Tensor, hw) -> torch.Tensor:
    """GPSA written from the paper's formula with the N x N matrices (a module with timm's
    parameter names), offsets from the true grid ``hw``."""
    b, n, c = x.shape
    heads = attn.num_heads
    q, k = attn.qk(x).reshape(b, n, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
    v = attn.v(x).reshape(b, n, heads, c // heads).transpose(1, 2)
    content = torch.softmax(q @ k.transpose(-2, -1) * (c // heads) ** -0.5, dim=-1)
    position = torch.softmax(attn.pos_proj(true_grid_offsets(*hw)).permute(0, 3, 1, 2), dim=-1)
    gate = torch.sigmoid(attn.gating_param).view(1, -1, 1, 1)
    mixed = (1 - gate) * content + gate * position
    return attn.proj((mixed @ v).transpose(1, 2).reshape(b, n, c))


def timm_features_on_true_grid(model, x: torch.Tensor, indices):
    """Block outputs (B, C, h, w) of a timm ``ConVit`` for any input: padded bottom/right to a
    multiple of 16, ``pos_embed`` resampled with timm's rule, and every GPSA given the
    offsets of the true grid (timm's own modules do the rest)."""
    from timm.layers import resample_abs_pos_embed
    patch = model.patch_embed.patch_size[0]
    pad_h, pad_w = (-x.shape[2]) % patch, (-x.shape[3]) % patch
    x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h))
    hw = (x.shape[2] // patch, x.shape[3] // patch)
    tokens = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
    grid = model.patch_embed.grid_size
    tokens = tokens + resample_abs_pos_embed(model.pos_embed, new_size=hw, old_size=grid,
                                             num_prefix_tokens=0)
    outs = []
    for i, block in enumerate(model.blocks):
        if i == model.local_up_to_layer:
            tokens = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), tokens), dim=1)
        if block.use_gpsa:
            block.attn.rel_indices = true_grid_offsets(*hw)
        tokens = block(tokens)
        if i in indices:
            patches = tokens[:, 1:] if i >= model.local_up_to_layer else tokens
            outs.append(patches.transpose(1, 2).reshape(x.shape[0], -1, *hw))
    return outs

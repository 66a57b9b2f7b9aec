"""A compact re-implementation of the official CvT (leoxiaobin/CvT ``lib/models/cls_cvt.py``)
from its math, for parity tests of every per-stage field: the official module names (so
its state dict is an official-format checkpoint), einsum attention over the full score
matrix, fp32 everywhere.

Two places where the released code gives no answer:
- ``QKV_PROJ_METHOD: linear`` fails there (``Attention.forward`` only defines q, k, v when
  some projection exists); here q, k and v are then the tokens, as the method intends.
- ``POS_EMBED`` is read nowhere there. Here, as in the paper's ablation, a stage with it
  adds a learned (1, C, H, W) embedding of the pretraining grid to its patch tokens (before
  the cls token), bicubically resampled (``align_corners=False``) to each input's grid.
"""
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Tuple

import torch
import torch.nn.functional as F
import yaml
from torch import nn

# The official experiment YAMLs (MIT-licensed copies, see the README there).
OFFICIAL_CONFIGS = Path(__file__).parent / 'models' / 'backbones' / 'cvt' / 'official_configs'


def official_spec(name: str) -> dict:
    """``MODEL.SPEC`` of an official experiment YAML, e.g. ``'cvt-13-224x224'``."""
    return yaml.safe_load((OFFICIAL_CONFIGS / f'{name}.yaml').read_text())['MODEL']['SPEC']


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def stage_settings(spec: Mapping, i: int) -> dict:
    """Stage ``i`` of an official ``MODEL.SPEC`` dict, under the official names."""
    return {name: values[i] for name, values in spec.items() if isinstance(values, list)}


class Attention(nn.Module):
    def __init__(self, dim: int, settings: dict):
        super().__init__()
        method, kernel = settings['QKV_PROJ_METHOD'], settings['KERNEL_QKV']
        self.num_heads, self.scale = settings['NUM_HEADS'], dim ** -0.5
        self.with_cls_token = settings['CLS_TOKEN']
        self.conv_proj_q = self.projection('linear' if method == 'avg' else method, dim,
                                           kernel, settings['STRIDE_Q'], settings['PADDING_Q'])
        self.conv_proj_k = self.projection(method, dim, kernel, settings['STRIDE_KV'], settings['PADDING_KV'])
        self.conv_proj_v = self.projection(method, dim, kernel, settings['STRIDE_KV'], settings['PADDING_KV'])
        for name in 'qkv':
            setattr(self, f'proj_{name}', nn.Linear(dim, dim, bias=settings['QKV_BIAS']))
        self.proj = nn.Linear(dim, dim)

    @staticmethod
    def projection(method, dim, kernel, stride, padding):
        if method == 'dw_bn':
            return nn.Sequential(OrderedDict(
                conv=nn.Conv2d(dim, dim, kernel, stride, padding, groups=dim, bias=False),
                bn=nn.BatchNorm2d(dim)))
        if method == 'avg':
            return nn.AvgPool2d(kernel, stride, padding, ceil_mode=True)
        assert method == 'linear', method
        return None

    def forward(self, x, h, w):
        if self.with_cls_token:
            cls_token, x = torch.split(x, [1, h * w], 1)
        fmap = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
        heads = []
        for name in 'qkv':
            proj = getattr(self, f'conv_proj_{name}')
            t = x if proj is None else proj(fmap).flatten(2).transpose(1, 2)
            if self.with_cls_token:
                t = torch.cat((cls_token, t), 1)
            t = getattr(self, f'proj_{name}')(t)
            heads.append(t.reshape(t.shape[0], t.shape[1], self.num_heads, -1).transpose(1, 2))
        q, k, v = heads
        attn = torch.softmax(torch.einsum('bhlk,bhtk->bhlt', q, k) * self.scale, -1)
        out = torch.einsum('bhlt,bhtv->bhlv', attn, v).transpose(1, 2).flatten(2)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(quick_gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, settings: dict):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-5), nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, settings)
        self.mlp = Mlp(dim, int(dim * settings['MLP_RATIO']))

    def forward(self, x, h, w):
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.mlp(self.norm2(x))


class ConvEmbed(nn.Module):
    def __init__(self, in_chans: int, settings: dict):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, settings['DIM_EMBED'], settings['PATCH_SIZE'], settings['PATCH_STRIDE'],
                              settings['PATCH_PADDING'])
        self.norm = nn.LayerNorm(settings['DIM_EMBED'], eps=1e-5)


class Stage(nn.Module):
    def __init__(self, in_chans: int, settings: dict, grid: Tuple[int, int]):
        super().__init__()
        dim = settings['DIM_EMBED']
        self.patch_embed = ConvEmbed(in_chans, settings)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if settings['CLS_TOKEN'] else None
        self.pos_embed = (nn.Parameter(torch.zeros(1, dim, *grid))
                          if settings.get('POS_EMBED', False) else None)
        self.blocks = nn.ModuleList(Block(dim, settings) for _ in range(settings['DEPTH']))

    def forward(self, x):
        x = self.patch_embed.proj(x)
        b, c, h, w = x.shape
        x = self.patch_embed.norm(x.flatten(2).transpose(1, 2))
        if self.pos_embed is not None:
            pos = F.interpolate(self.pos_embed, size=(h, w), mode='bicubic',
                                align_corners=False)
            x = x + pos.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(b, -1, -1), x), 1)
        for block in self.blocks:
            x = block(x, h, w)
        if self.cls_token is not None:
            x = x[:, 1:]
        return x.transpose(1, 2).reshape(b, c, h, w)


class OfficialCvT(nn.Module):
    """``ConvolutionalVisionTransformer`` of ``cls_cvt.py`` in eval mode (no dropout or
    drop path); ``forward`` returns every stage's map.

    Args:
        spec (Mapping): ``MODEL.SPEC`` of an official experiment YAML.
        num_classes (int): Classifier outputs (the release's head, 1000).
        img_size (int): Pretraining image size (sets the positional embeddings' grid).
    """

    def __init__(self, spec: Mapping, num_classes: int = 1000, img_size: int = 224):
        super().__init__()
        in_chans, grid = 3, (img_size, img_size)
        self.num_stages = len(spec['DEPTH'])
        for i in range(self.num_stages):
            settings = stage_settings(spec, i)
            grid = tuple((g + 2 * settings['PATCH_PADDING'] - settings['PATCH_SIZE']) // settings['PATCH_STRIDE'] + 1
                         for g in grid)
            setattr(self, f'stage{i}', Stage(in_chans, settings, grid))
            in_chans = settings['DIM_EMBED']
        self.norm = nn.LayerNorm(in_chans, eps=1e-5)
        self.head = nn.Linear(in_chans, num_classes)

    def forward(self, x):
        maps = []
        for i in range(self.num_stages):
            x = getattr(self, f'stage{i}')(x)
            maps.append(x)
        return maps

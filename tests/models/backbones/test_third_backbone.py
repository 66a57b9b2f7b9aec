"""A third backbone, written and registered here and nowhere else, works everywhere.

``ToyConvFormer`` (two stages: a strided conv, then a pre-norm block whose attention reads
keys pooled 2x2) is registered with ``@register_backbone`` below. It passes the whole
contract suite, loads a checkpoint of its own "published" format through the shared loader,
and works in ``get_flops``, ``benchmark_backbone`` and the attention pictures, with no
edit to any other file of the toolkit.
"""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contract import BackboneContract
from cvt_dense.models.backbones import DenseBackbone, get_backbone, register_backbone
from cvt_dense.models.layers import (AttentionLayout, Mlp, PixelGeometry, PreNormBlock,
                                     TokenGrid, attention_observed, linear, map_to_tokens,
                                     merge_heads, scaled_attention, split_heads, tokens_to_map)
from cvt_dense.weights import ArchGuess, CheckpointSpec, load_pretrained

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
# The "published" checkpoints of the toy model name its stages 'encoder.layer{i}'.
PUBLISHED_PREFIX = re.compile(r'^encoder\.layer(\d+)\.')


class PooledAttention(nn.Module):
    """Multi-head attention whose keys and values are the tokens pooled 2x2 (as PVT's
    spatial reduction)."""

    def __init__(self, embed_dims: int, num_heads: int, geometry: PixelGeometry):
        super().__init__()
        self.num_heads = num_heads
        self.geometry = geometry
        self.q = nn.Linear(embed_dims, embed_dims)
        self.kv = nn.Linear(embed_dims, 2 * embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x, hw):
        pooled = F.avg_pool2d(tokens_to_map(x, hw), 2, ceil_mode=True)
        q = split_heads(linear(x, self.q.weight, self.q.bias), self.num_heads)[0]
        k, v = split_heads(linear(map_to_tokens(pooled), self.kv.weight, self.kv.bias),
                           self.num_heads, 2)
        layout = None
        if attention_observed():
            layout = AttentionLayout(self, TokenGrid(hw, self.geometry),
                                     TokenGrid(tuple(pooled.shape[2:]),
                                               self.geometry.after_conv(2, 2, 0)))
        out = scaled_attention(q, k, v, scale=(x.shape[-1] // self.num_heads) ** -0.5,
                               layout=layout)
        return linear(merge_heads(out), self.proj.weight, self.proj.bias)


def detect_format(keys):
    keys = list(keys)
    if any(PUBLISHED_PREFIX.match(k) for k in keys):
        return 'published'
    return 'cvt_dense' if any(k.startswith('stage0.') for k in keys) else None


TOY_CHECKPOINTS = CheckpointSpec(
    backbone='ToyConvFormer',
    detect_format=detect_format,
    to_model_key=lambda key, fmt: PUBLISHED_PREFIX.sub(r'stage\1.', key)
    if fmt == 'published' else key,
    classifier_prefixes=('head.',),
    input_conv='stage0.embed.weight',
    guess_arch=lambda state: ArchGuess(None, f'{len(state)} tensors'),
    new_in_dense=(r'out_norm\d+\.',),
)


@register_backbone(small=dict(widths=(8, 16)))
class ToyConvFormer(DenseBackbone):
    """Two stages at strides 4 and 8: a strided conv, then one pre-norm attention block.

    Args:
        widths (tuple): Channels of the two stages.
        in_channels (int): Input channels.
        out_indices (tuple): Levels to return.
        out_norm (bool): LayerNorm on each returned level.
        frozen_stages (int): -1 nothing, 0 the stem (stage 0's conv and norm), k >= 1
            stages 0..k-1 (the toolkit's rule).
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
        with_cp (bool): Accepted for the contract; the toy model is too small to need it.
        init_cfg (dict, optional): Pretrained weights.
    """

    checkpoint_spec = TOY_CHECKPOINTS

    def __init__(self, widths=(8, 16), in_channels=3, out_indices=(0, 1), out_norm=True,
                 frozen_stages=-1, norm_eval=False, with_cp=False, init_cfg=None):
        super().__init__(in_channels, frozen_stages, norm_eval, init_cfg)
        geometry, channels = PixelGeometry(), in_channels
        for i, (width, stride) in enumerate(zip(widths, (4, 2))):
            geometry = geometry.after_conv(stride, stride, 0)
            stage = nn.Module()
            stage.embed = nn.Conv2d(channels, width, stride, stride)
            stage.norm = nn.BatchNorm2d(width)
            stage.block = PreNormBlock(width, PooledAttention(width, 2, geometry),
                                       Mlp(width, 2 * width, dict(type='GELU')), 0.,
                                       dict(type='LN'))
            self.add_module(f'stage{i}', stage)
            channels = width
        self._set_outputs(widths, (4, 8), out_indices, out_norm, dict(type='LN'))
        self._freeze_stages()

    def _levels(self, x, needed):
        levels = []
        for i in range(needed + 1):
            stage = getattr(self, f'stage{i}')
            x = stage.norm(stage.embed(x))
            hw = tuple(x.shape[2:])
            x = tokens_to_map(stage.block(map_to_tokens(x), hw), hw)
            levels.append(x)
        return levels

    def _stem_parts(self):
        return [self.stage0.embed, self.stage0.norm]

    def _level_parts(self, level):
        return [getattr(self, f'stage{level}')]

    def layer_groups(self):
        return [('stage0.embed', 'stage0.norm'), ('stage0.block',),
                ('stage1.embed', 'stage1.norm'), ('stage1.block',)]


class TestThirdBackbone(BackboneContract):

    @pytest.fixture
    def backbone(self):
        return get_backbone('ToyConvFormer')


def test_a_published_checkpoint_loads_through_the_shared_loader(tmp_path):
    torch.manual_seed(1)
    source = ToyConvFormer().eval()
    published = {re.sub(r'^stage(\d+)\.', r'encoder.layer\1.', k): v
                 for k, v in source.state_dict().items() if k.startswith('stage')}
    published['head.weight'] = torch.randn(10, 16)
    path = tmp_path / 'toy_published.pth'
    torch.save({'state_dict': published}, path)
    model = ToyConvFormer(init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    report = load_pretrained(ToyConvFormer(), str(path))
    assert report.source_format == 'published' and report.complete
    assert report.dropped_classifier == ['head.weight']
    assert len(report.loaded) == len([k for k in source.state_dict() if k.startswith('stage')])
    model.load_state_dict({k: v for k, v in source.state_dict().items()
                           if k.startswith('out_norm')}, strict=False)
    x = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        for ours, theirs in zip(model.eval()(x), source(x)):
            torch.testing.assert_close(ours, theirs)


def test_attention_pictures_show_the_pooled_key_grid():
    from cvt_dense.analysis.attention_maps import query_attention
    model = ToyConvFormer().eval()
    layers = query_attention(model, torch.randn(1, 3, 50, 66), point=(40, 10))
    assert [layer.name for layer in layers] == ['stage0.block.attn', 'stage1.block.attn']
    assert [layer.query_grid for layer in layers] == [(12, 16), (6, 8)]
    assert [tuple(layer.maps.shape[1:]) for layer in layers] == [(6, 8), (3, 4)]


@pytest.fixture(scope='module')
def toy_config(tmp_path_factory):
    """The seg demo config with the toy backbone, importing this module to register it."""
    path = tmp_path_factory.mktemp('toy') / 'fcn_toy.py'
    path.write_text(textwrap.dedent(f'''
        _base_ = ['{REPO / "configs/demo/upernet_cvt13_shapes.py"}']
        custom_imports = dict(imports=['cvt_dense', 'test_third_backbone'],
                              allow_failed_imports=False)
        model = dict(
            backbone=dict(_delete_=True, type='ToyConvFormer', widths=(8, 16)),
            decode_head=dict(_delete_=True, type='FCNHead', in_channels=16, in_index=1,
                             channels=8, num_convs=1, num_classes=5),
            auxiliary_head=None)
    '''))
    return str(path)


def run_tool(*args) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(HERE), str(REPO / 'tests'), str(REPO), os.environ.get('PYTHONPATH', '')]))
    done = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_get_flops_counts_its_attention(toy_config):
    out = run_tool(REPO / 'tools/analysis/get_flops.py', toy_config, '--shape', '64', '96')
    row = next(line for line in out.splitlines() if line.startswith('| backbone |'))
    attention_share = float(row.split('|')[5].strip().rstrip('%'))
    assert attention_share > 0, out


def test_benchmark_backbone_measures_it():
    out = run_tool(REPO / 'tools/analysis/benchmark_backbone.py', '--import',
                   'test_third_backbone', '--backbone', 'toyconvformer', '--sizes', '64x96',
                   '--repeats', '1', '--threads', '1')
    row = next(line for line in out.splitlines() if 'cvt_dense' in line and '64x96' in line)
    assert float(row.split()[2]) > 0  # latency (s)


def test_the_attention_tool_draws_it(toy_config, tmp_path):
    import cv2
    import numpy as np
    image = tmp_path / 'image.png'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (50, 66, 3),
                                                              dtype=np.uint8))
    out = run_tool(REPO / 'tools/analysis/visualize_attention.py', image, toy_config,
                   '--point', '40', '10', '--out-dir', tmp_path / 'pictures')
    assert 'stage1.block.attn' in out
    assert len(list((tmp_path / 'pictures').glob('*.png'))) == 1

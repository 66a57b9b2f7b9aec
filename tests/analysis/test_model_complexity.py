"""Whole-model MACs: components add up, the backbone agrees with count_macs, and the
attention matches a count by hand."""
from pathlib import Path

import pytest
import torch

from cvt_dense.analysis.builder import (build_model, config_test_shape, read_config,
                                        synthetic_batch)
from cvt_dense.analysis.complexity import model_complexity
from cvt_dense.models.complexity import count_macs

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'


def hand_attention_macs(embed_dims, num_heads, depths, size):
    """q k^T plus attn v of every CvT block: 2 * heads * Nq * Nk * head_dim each (batch 1),
    with Nk from the stride-2 k/v convs and a cls token in the last stage."""
    h, w = size
    total = 0
    for i, (dim, heads, depth) in enumerate(zip(embed_dims, num_heads, depths)):
        kernel, stride, pad = (7, 4, 2) if i == 0 else (3, 2, 1)
        h, w = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
        cls = 1 if i == len(depths) - 1 else 0
        nq = h * w + cls
        nk = ((h - 1) // 2 + 1) * ((w - 1) // 2 + 1) + cls
        total += depth * 2 * heads * nq * nk * (dim // heads)
    return total


def complexity(config, shape):
    cfg = read_config(str(CONFIGS / config))
    model = build_model(cfg)
    batch = synthetic_batch(cfg, shape)
    rows, input_shape = model_complexity(model, batch)
    return model, {r.name: r for r in rows}, model.data_preprocessor(batch, False)['inputs']


@pytest.mark.parametrize('config, shape, heads', [
    ('demo/maskrcnn_cvt13_shapes.py', (90, 130), ('rpn_head', 'roi_head')),
    ('upernet_cvt13_ade20k.py', (128, 96), ('decode_head',)),
])
def test_components_backbone_and_hand_count(config, shape, heads):
    model, rows, inputs = complexity(config, shape)
    total = rows['total']
    parts = [r for name, r in rows.items() if name != 'total']
    assert sum(r.macs for r in parts) == pytest.approx(total.macs)
    assert sum(r.params for r in parts) == total.params
    assert total.params == sum(p.numel() for p in model.parameters())
    assert rows['backbone'].params == sum(p.numel() for p in model.backbone.parameters())
    # The backbone inside the whole model = the backbone counter on the padded input.
    assert rows['backbone'].macs == count_macs(model.backbone, inputs)['total']
    s = model.backbone.arch_settings
    hand = hand_attention_macs(s['embed_dims'], s['num_heads'], s['depths'],
                               inputs.shape[-2:])
    assert rows['backbone'].attention_macs == hand
    assert total.attention_macs == hand  # necks and heads have no attention
    for name in ('neck', *heads):
        if name in rows:
            assert rows[name].macs > 0, name


def test_detection_input_is_padded_like_the_model_sees_it():
    _, rows, inputs = complexity('demo/maskrcnn_cvt13_shapes.py', (90, 130))
    assert tuple(inputs.shape[-2:]) == (96, 160)  # pad_size_divisor=32


def test_auxiliary_head_has_params_but_no_inference_macs():
    _, rows, _ = complexity('upernet_cvt13_ade20k.py', (64, 64))
    assert rows['auxiliary_head'].params > 0 and rows['auxiliary_head'].macs == 0


def test_one_attention_layer_by_hand():
    """A one-block, one-stage CvT: every attention MAC is that block's."""
    cfg = read_config(str(CONFIGS / 'upernet_cvt13_ade20k.py'), {
        'model.backbone.arch': dict(_delete_=True, embed_dims=[24], num_heads=[3], depths=[1],
                                    patch_sizes=[7], patch_strides=[4], patch_paddings=[2],
                                    mlp_ratios=[4], cls_tokens=[False]),
        'model.backbone.out_indices': (0,),
        'model.decode_head.in_channels': [24], 'model.decode_head.in_index': [0],
        'model.auxiliary_head.in_channels': 24, 'model.auxiliary_head.in_index': 0})
    model = build_model(cfg)
    rows, _ = model_complexity(model, synthetic_batch(cfg, (36, 52)))
    nq, nk, heads, head_dim = 9 * 13, 5 * 7, 3, 8
    assert rows[0].name == 'backbone'
    assert rows[0].attention_macs == 2 * 1 * heads * nq * nk * head_dim


def test_test_shape_from_configs():
    def shape_of(config):
        return config_test_shape(read_config(str(CONFIGS / config)))

    assert shape_of('maskrcnn_cvt13_coco.py')[0] == (800, 1333)
    assert shape_of('upernet_cvt13_ade20k.py')[0] == (512, 2048)
    shape, source = shape_of('demo/upernet_cvt13_shapes.py')
    assert shape == (224, 224) and 'no size' in source


def test_missing_config_is_named():
    with pytest.raises(FileNotFoundError, match='nope.py'):
        read_config('nope.py')


def test_counter_sees_attention_on_every_path():
    """The whole-model count does not depend on the fused inference path being taken."""
    cfg = read_config(str(CONFIGS / 'demo/upernet_cvt13_shapes.py'))
    model = build_model(cfg)
    batch = synthetic_batch(cfg, (64, 64))
    fused, _ = model_complexity(model, batch)
    with torch.autocast('cpu', dtype=torch.bfloat16):  # oneDNN linear path off
        plain, _ = model_complexity(model, batch)
    assert fused[-1].macs == plain[-1].macs

"""CvT's checkpoint description: the name table against real transformers and CvT state
dicts, through the shared conversion."""
import pytest
import torch

from cvt_dense.models import CvT
from cvt_dense.models.backbones.cvt.pretrained import (CVT_CHECKPOINTS, convert_to_cvt,
                                                      detect_format, hf_to_official_key,
                                                      infer_arch, official_to_hf_key)
from cvt_dense.weights import CheckpointError, add_prefix, convert_checkpoint
from hf_oracle import TINY_ARCH, cvt_for_hf, hf_model, official_shapes

HF_CLASSIFIER_KEYS = {'classifier.weight', 'classifier.bias', 'layernorm.weight',
                      'layernorm.bias'}


@pytest.fixture(scope='module')
def hf_cls_state():
    return hf_model(with_classifier=True).state_dict()


@pytest.fixture(scope='module')
def official_state(hf_cls_state):
    """The official release layout: stage keys, final ``norm`` and ``head``."""
    return {hf_to_official_key(k): v for k, v in hf_cls_state.items()}


def our_keys():
    return set(cvt_for_hf().state_dict())


@pytest.mark.parametrize('with_classifier', [False, True])
def test_every_hf_key_maps_to_a_key_of_our_model(with_classifier):
    hf_keys = list(hf_model(with_classifier=with_classifier).state_dict())
    mapped = {hf_to_official_key(k) for k in hf_keys}
    assert None not in mapped, [k for k in hf_keys if hf_to_official_key(k) is None]
    assert len(mapped) == len(hf_keys)  # no two HF keys collapse onto one name
    head = {'norm.weight', 'norm.bias', 'head.weight', 'head.bias'}
    assert mapped - head == our_keys()
    assert (mapped & head == head) == with_classifier


def test_table_is_invertible(hf_cls_state):
    for key in hf_cls_state:
        assert official_to_hf_key(hf_to_official_key(key)) == key
    plain = list(hf_model().state_dict())
    for key in plain:
        assert official_to_hf_key(hf_to_official_key(key), with_cvt_prefix=False) == key


def test_mapping_matches_documented_official_names():
    # Spot checks against the official cls_cvt.py names, written out by hand.
    assert hf_to_official_key('cvt.encoder.stages.2.layers.1.attention.attention.'
                              'convolution_projection_key.convolution_projection.'
                              'normalization.running_var') == \
        'stage2.blocks.1.attn.conv_proj_k.bn.running_var'
    assert hf_to_official_key('encoder.stages.0.embedding.convolution_embeddings.projection'
                              '.weight') == 'stage0.patch_embed.proj.weight'
    assert hf_to_official_key('cvt.encoder.stages.2.layers.0.attention.output.dense.bias') \
        == 'stage2.blocks.0.attn.proj.bias'
    assert hf_to_official_key('cvt.encoder.stages.1.layers.1.intermediate.dense.weight') == \
        'stage1.blocks.1.mlp.fc1.weight'
    assert hf_to_official_key('cvt.encoder.stages.1.layers.1.output.dense.weight') == \
        'stage1.blocks.1.mlp.fc2.weight'
    assert hf_to_official_key('cvt.encoder.stages.2.cls_token') == 'stage2.cls_token'
    assert hf_to_official_key('classifier.weight') == 'head.weight'
    assert hf_to_official_key('layernorm.bias') == 'norm.bias'
    assert hf_to_official_key('pooler.dense.weight') is None


def test_detect_format(hf_cls_state, official_state):
    assert detect_format(hf_cls_state) == 'hf'
    assert detect_format(hf_model().state_dict()) == 'hf'
    assert detect_format(official_state) == 'official'
    assert detect_format(convert_to_cvt(official_state)) == 'cvt_dense'
    assert detect_format(['conv1.weight', 'fc.bias']) is None


def test_hf_conversion_drops_classifier_and_renames(hf_cls_state):
    result = convert_checkpoint(hf_cls_state, CVT_CHECKPOINTS)
    assert result.source_format == 'hf'
    assert set(result.dropped_classifier) == HF_CLASSIFIER_KEYS
    assert set(result.state_dict) == our_keys()
    assert len(result.renamed) == len(result.state_dict)
    assert not result.unmapped and not result.dropped_other
    for old, new in result.renamed:
        assert result.state_dict[new] is hf_cls_state[old]  # tensors shared, not copied


def test_official_conversion_only_drops_head(official_state):
    result = convert_checkpoint(official_state, CVT_CHECKPOINTS)
    assert set(result.dropped_classifier) == {'norm.weight', 'norm.bias', 'head.weight',
                                              'head.bias'}
    assert not result.renamed
    assert result.state_dict == {k: v for k, v in official_state.items()
                                 if not k.startswith(('norm.', 'head.'))}


def _mmdet_checkpoint(state):
    inner = add_prefix(state)
    inner['neck.lateral_convs.0.conv.weight'] = torch.zeros(8, 16, 1, 1)
    inner['rpn_head.rpn_conv.bias'] = torch.zeros(8)
    return {'meta': {'epoch': 12}, 'state_dict': inner, 'optimizer': {'state': {}}}


@pytest.mark.parametrize('wrap', ['plain', 'state_dict', 'model', 'ddp', 'mmdet',
                                  'mmdet_explicit_prefix'])
@pytest.mark.parametrize('source', ['hf', 'official'])
def test_wrappers_and_prefixes_give_the_same_state_dict(wrap, source, hf_cls_state,
                                                        official_state):
    state = hf_cls_state if source == 'hf' else official_state
    expected = convert_to_cvt(state)
    prefix = None
    if wrap == 'state_dict':
        ckpt = {'state_dict': state, 'meta': {}}
    elif wrap == 'model':
        ckpt = {'model': state, 'epoch': 3}
    elif wrap == 'ddp':
        ckpt = {'module.' + k: v for k, v in state.items()}
    elif wrap.startswith('mmdet'):
        ckpt = _mmdet_checkpoint(state)
        prefix = 'backbone.' if wrap.endswith('prefix') else None
    else:
        ckpt = state
    result = convert_checkpoint(ckpt, CVT_CHECKPOINTS, prefix=prefix)
    assert result.state_dict.keys() == expected.keys()
    assert all(result.state_dict[k] is expected[k] for k in expected)
    if wrap.startswith('mmdet'):
        assert result.dropped_other == ['neck.lateral_convs.0.conv.weight',
                                        'rpn_head.rpn_conv.bias']
        assert result.wrapper == ['state_dict', 'backbone.']


@pytest.mark.parametrize('source', ['hf', 'official', 'mmdet'])
def test_conversion_is_idempotent(source, hf_cls_state, official_state):
    ckpt = {'hf': hf_cls_state, 'official': official_state,
            'mmdet': _mmdet_checkpoint(official_state)}[source]
    once = convert_to_cvt(ckpt)
    twice = convert_checkpoint(once, CVT_CHECKPOINTS)
    assert twice.state_dict == once
    assert not (twice.renamed or twice.dropped_classifier or twice.dropped_other)
    # The --prefix-backbone output converts back to the same state dict as well.
    assert convert_to_cvt(add_prefix(once)) == once
    assert add_prefix(add_prefix(once)) == add_prefix(once)


def test_unknown_hf_keys_are_kept_and_listed(hf_cls_state):
    state = dict(hf_cls_state)
    state['cvt.encoder.stages.0.something_new.weight'] = torch.zeros(1)
    result = convert_checkpoint(state, CVT_CHECKPOINTS)
    assert result.unmapped == ['cvt.encoder.stages.0.something_new.weight']
    assert 'cvt.encoder.stages.0.something_new.weight' in result.state_dict


def test_non_cvt_checkpoint_is_rejected_with_its_keys():
    with pytest.raises(CheckpointError, match=r'no CvT tensors.*conv1\.weight'):
        convert_checkpoint({'conv1.weight': torch.zeros(1), 'fc.bias': torch.zeros(1)},
                           CVT_CHECKPOINTS)


def test_missing_prefix_is_rejected(official_state):
    with pytest.raises(CheckpointError, match="prefix 'encoder.'"):
        convert_checkpoint(official_state, CVT_CHECKPOINTS, prefix='encoder')


def test_non_tensor_entries_are_dropped(official_state):
    result = convert_checkpoint(dict(official_state, _note='hello'), CVT_CHECKPOINTS)
    assert '_note' in result.dropped_other and '_note' not in result.state_dict


def test_infer_arch_recognises_presets():
    from cvt_dense.models.backbones.cvt import ARCH_SETTINGS
    for arch, settings in ARCH_SETTINGS.items():
        found = infer_arch(official_shapes(**settings))
        assert found['preset'] == arch
        assert found['depths'] == settings['depths']
    tiny = CvT(arch=TINY_ARCH, in_channels=4).state_dict()
    assert infer_arch(tiny) == dict(embed_dims=[16, 32, 48], depths=[1, 2, 3], in_channels=4,
                                    preset=None)

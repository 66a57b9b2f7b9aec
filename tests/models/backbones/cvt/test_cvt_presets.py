"""CvT's arch fields: official names, official experiment YAMLs, overrides, errors."""
import re
from pathlib import Path

import pytest
import torch
import yaml

from cvt_dense.models import CvT
from cvt_dense.models.backbones.cvt.presets import (ARCH_SETTINGS, OFFICIAL_NAMES,
                                                    STAGE_DEFAULTS, arch_from_official_yaml,
                                                    resolve_arch)
from cvt_official_oracle import OFFICIAL_CONFIGS, OfficialCvT, official_spec
from hf_oracle import TINY_ARCH

REPO = Path(__file__).resolve().parents[4]
# Published sizes (paper Table 2, model zoo), millions of parameters with the classifier.
PUBLISHED_MILLIONS = {'cvt-13-224x224': 20, 'cvt-13-384x384': 20, 'cvt-21-224x224': 32,
                      'cvt-21-384x384': 32, 'cvt-w24-384x384': 277}
PRESET_OF_YAML = {'cvt-13-224x224': 'cvt-13', 'cvt-13-384x384': 'cvt-13',
                  'cvt-21-224x224': 'cvt-21', 'cvt-21-384x384': 'cvt-21',
                  'cvt-w24-384x384': 'cvt-w24'}


def write_yaml(tmp_path, spec, name='cvt.yaml', model_name='cls_cvt'):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(dict(MODEL=dict(NAME=model_name, SPEC=spec))))
    return str(path)


def test_the_fixtures_are_every_official_experiment_yaml():
    assert sorted(p.stem for p in OFFICIAL_CONFIGS.glob('*.yaml')) == sorted(PUBLISHED_MILLIONS)


@pytest.mark.parametrize('name', sorted(PUBLISHED_MILLIONS))
def test_official_yaml_gives_the_official_parameter_count(name):
    """Backbone + the release's final norm and 1000-class head, counted two ways: our model
    built from the YAML and the re-implementation of cls_cvt.py, exactly equal; rounded, the
    published size."""
    path = str(OFFICIAL_CONFIGS / f'{name}.yaml')
    with torch.device('meta'):
        ours = CvT(arch=path, out_norm=False)
        official = OfficialCvT(official_spec(name))
    width = ours.embed_dims[-1]
    head = width * 1000 + 1000 + 2 * width
    count = sum(p.numel() for p in ours.parameters()) + head
    assert count == sum(p.numel() for p in official.parameters())
    assert round(count / 1e6) == PUBLISHED_MILLIONS[name], count


@pytest.mark.parametrize('name', sorted(PUBLISHED_MILLIONS))
def test_official_yaml_equals_its_preset(name):
    """The presets are the official YAMLs: the same settings, the same state-dict keys."""
    from_yaml = resolve_arch(str(OFFICIAL_CONFIGS / f'{name}.yaml'))
    assert from_yaml == resolve_arch(PRESET_OF_YAML[name])
    with torch.device('meta'):
        keys = set(CvT(str(OFFICIAL_CONFIGS / f'{name}.yaml')).state_dict())
        assert keys == set(CvT(PRESET_OF_YAML[name]).state_dict())


def test_every_official_field_has_one_name_of_ours():
    spec = official_spec('cvt-13-224x224')
    per_stage = {name for name, value in spec.items() if isinstance(value, list)}
    assert per_stage == set(OFFICIAL_NAMES.values())
    assert len(set(OFFICIAL_NAMES.values())) == len(OFFICIAL_NAMES)  # one to one
    assert set(resolve_arch('cvt-13')) == set(OFFICIAL_NAMES)
    assert set(STAGE_DEFAULTS) | {'embed_dims', 'num_heads', 'depths'} == set(OFFICIAL_NAMES)


def test_docs_table_is_the_code_table():
    """docs/custom_configs.md lists every arch field next to its official name, as here."""
    text = (REPO / 'docs' / 'custom_configs.md').read_text()
    rows = dict(re.findall(r'^\| `(\w+)` \| `([A-Z_]+)` \|', text, flags=re.M))
    assert rows == OFFICIAL_NAMES


def test_presets_are_unchanged():
    assert ARCH_SETTINGS['cvt-13'] == dict(embed_dims=[64, 192, 384], num_heads=[1, 3, 6],
                                           depths=[1, 2, 10])
    settings = resolve_arch('cvt-w24')
    assert settings['drop_path_rates'] == [0., 0., 0.3]
    assert settings['qkv_proj_methods'] == ['dw_bn'] * 3 and settings['kv_strides'] == [2] * 3


def test_uniform_defaults_fit_any_number_of_stages():
    arch = dict(embed_dims=[16, 32], num_heads=[1, 2], depths=[1, 1], patch_sizes=[7, 3],
                patch_strides=[4, 2], patch_paddings=[2, 1], cls_tokens=[False, True])
    settings = resolve_arch(arch)
    assert settings['kv_strides'] == [2, 2] and settings['qkv_proj_methods'] == ['dw_bn'] * 2
    assert settings['drop_path_rates'] == [0., 0.1]  # the last stage only
    model = CvT(arch, out_indices=(0, 1)).eval()
    assert [o.shape[1] for o in model(torch.randn(1, 3, 32, 32))] == [16, 32]
    with pytest.raises(ValueError, match='same length'):
        resolve_arch(dict(embed_dims=[16, 32], num_heads=[1, 2], depths=[1, 1]))


@pytest.mark.parametrize('arch, match', [
    (dict(TINY_ARCH, qkv_proj_methods=['dw_bn', 'conv', 'avg']), r"unknown \['conv'\]"),
    (dict(TINY_ARCH, kv_strides=2), r"\['kv_strides'\] must be lists"),
    (dict(TINY_ARCH, stride_kv=[2, 2, 2]), r"unknown keys \['stride_kv'\]"),
    (dict(TINY_ARCH, q_strides=[1, 2, 1]), 'q projection must keep the token grid'),
    (dict(TINY_ARCH, qkv_kernel_sizes=[5, 3, 3]), 'q projection must keep the token grid'),
])
def test_bad_arch_fields_are_named(arch, match):
    with pytest.raises(ValueError, match=match):
        CvT(arch)


def test_overrides_for_every_stage():
    model = CvT('cvt-13', qkv_bias=False, use_pos_embed=True, kv_strides=(4, 2, 2),
                attn_drop_rate=0.1, drop_rate=0.2)
    settings = model.arch_settings
    assert settings['qkv_biases'] == [False] * 3 and settings['pos_embeds'] == [True] * 3
    assert settings['kv_strides'] == [4, 2, 2]
    assert model.stage0.blocks[0].attn.proj_q.bias is None
    assert model.stage0.blocks[0].attn.conv_proj_k.conv.stride == (4, 4)
    assert model.stage1.blocks[0].attn.conv_proj_k.conv.stride == (2, 2)
    assert model.stage2.blocks[0].attn.attn_drop == 0.1
    assert model.stage2.pos_drop.p == 0.2
    assert resolve_arch('cvt-13')['kv_strides'] == [2, 2, 2]  # the preset table is untouched
    with pytest.raises(ValueError, match='one stride per stage'):
        CvT('cvt-13', kv_strides=(4, 2))


def test_drop_path_rate_scales_the_per_stage_rates():
    assert CvT('cvt-13').arch_settings['drop_path_rates'] == [0., 0., 0.1]
    assert CvT('cvt-13', drop_path_rate=0.2).arch_settings['drop_path_rates'] == [0., 0., 0.2]
    assert CvT('cvt-w24', drop_path_rate=0.).arch_settings['drop_path_rates'] == [0.] * 3
    custom = dict(TINY_ARCH, drop_path_rates=[0., 0.05, 0.1])
    assert CvT(custom, drop_path_rate=0.3).arch_settings['drop_path_rates'] == \
        pytest.approx([0., 0.15, 0.3])
    with pytest.raises(ValueError, match='all 0'):
        CvT(dict(TINY_ARCH, drop_path_rates=[0., 0., 0.]), drop_path_rate=0.1)


def test_yaml_loader_maps_every_field(tmp_path):
    spec = official_spec('cvt-13-224x224')
    spec.update(STRIDE_KV=[4, 2, 1], QKV_PROJ_METHOD=['avg', 'linear', 'dw_bn'],
                POS_EMBED=[True, False, False], DROP_PATH_RATE=[0.1, 0.2, 0.3])
    arch = arch_from_official_yaml(write_yaml(tmp_path, spec))
    assert arch == {ours: spec[official] for ours, official in OFFICIAL_NAMES.items()}
    del spec['POS_EMBED']  # the released code never reads it
    assert 'pos_embeds' not in arch_from_official_yaml(write_yaml(tmp_path, spec))


@pytest.mark.parametrize('edit, match', [
    (lambda spec: spec.pop('STRIDE_KV'), r"lacks \['STRIDE_KV'\]"),
    (lambda spec: spec.update(WINDOW=[7, 7, 7]), r"unknown fields \['WINDOW'\]"),
    (lambda spec: spec.update(NUM_STAGES=4), 'NUM_STAGES is 4'),
    (lambda spec: spec.update(INIT='xavier'), "INIT 'xavier'"),
    (lambda spec: spec.update(DEPTH=10), r"\['DEPTH'\] must be lists"),
])
def test_yaml_errors_name_the_file_and_field(tmp_path, edit, match):
    spec = official_spec('cvt-13-224x224')
    edit(spec)
    path = write_yaml(tmp_path, spec)
    with pytest.raises(ValueError, match=match) as error:
        CvT(arch=path)
    assert path in str(error.value)


def test_yaml_that_is_not_a_cvt_config(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.yaml'):
        CvT(arch=str(tmp_path / 'missing.yaml'))
    with pytest.raises(ValueError, match="not 'cls_cvt'"):
        CvT(arch=write_yaml(tmp_path, official_spec('cvt-13-224x224'), model_name='cls_hrnet'))
    (tmp_path / 'other.yaml').write_text('TRAIN:\n  LR: 0.1\n')
    with pytest.raises(ValueError, match='no MODEL.SPEC'):
        CvT(arch=str(tmp_path / 'other.yaml'))

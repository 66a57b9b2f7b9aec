"""Every projection method, k/v stride and POS_EMBED against the official cls_cvt.py math
(tests/cvt_official_oracle.py): random weights saved as an official-format checkpoint,
loaded through init_cfg into a CvT built from the same experiment YAML."""
import pytest
import torch
import yaml

from cvt_dense.models import CvT
from cvt_dense.models.layers import observe_attention
from cvt_dense.weights import CheckpointMismatchError, load_pretrained
from cvt_official_oracle import OfficialCvT, official_spec
from hf_oracle import TINY_ARCH, assert_stage_outputs_close, randomize_

TINY_SPEC = dict(
    NUM_STAGES=3, PATCH_SIZE=[7, 3, 3], PATCH_STRIDE=[4, 2, 2], PATCH_PADDING=[2, 1, 1],
    DIM_EMBED=[16, 32, 48], NUM_HEADS=[1, 2, 3], DEPTH=[1, 2, 2], MLP_RATIO=[4., 4., 4.],
    ATTN_DROP_RATE=[0.] * 3, DROP_RATE=[0.] * 3, DROP_PATH_RATE=[0., 0., 0.1],
    QKV_BIAS=[True] * 3, CLS_TOKEN=[False, False, True], POS_EMBED=[False] * 3,
    QKV_PROJ_METHOD=['dw_bn'] * 3, KERNEL_QKV=[3] * 3, PADDING_KV=[1] * 3, STRIDE_KV=[2] * 3,
    PADDING_Q=[1] * 3, STRIDE_Q=[1] * 3)
VARIANTS = {
    'dw_bn': {},
    'avg': dict(QKV_PROJ_METHOD=['avg'] * 3),
    # ceil_mode windows: stride 3 does not divide the grids below.
    'avg_stride_3_kernel_5': dict(QKV_PROJ_METHOD=['avg'] * 3, STRIDE_KV=[3, 2, 2],
                                  KERNEL_QKV=[5, 3, 3], PADDING_KV=[2, 1, 1]),
    'linear': dict(QKV_PROJ_METHOD=['linear'] * 3),
    'mixed_methods_bias_mlp': dict(QKV_PROJ_METHOD=['linear', 'avg', 'dw_bn'],
                                   QKV_BIAS=[True, False, True], MLP_RATIO=[4., 2., 3.]),
    'kv_stride_4': dict(STRIDE_KV=[4, 2, 2]),
    'kv_stride_8_kernel_5_padding_0': dict(STRIDE_KV=[8, 1, 2], KERNEL_QKV=[5, 3, 3],
                                           PADDING_KV=[2, 0, 1], PADDING_Q=[2, 1, 1]),
    'pos_embed': dict(POS_EMBED=[True, False, True]),
}
SIZES = [(64, 48), (97, 151), (40, 33)]


def official_checkpoint(spec, tmp_path, seed=0):
    """A random official model and its state dict saved as the release does (with head)."""
    torch.manual_seed(seed)
    oracle = randomize_(OfficialCvT(spec), seed).eval()
    path = tmp_path / 'CvT-variant-224x224-IN-1k.pth'
    torch.save(oracle.state_dict(), path)
    return oracle, str(path)


def from_yaml_and_checkpoint(spec, checkpoint, tmp_path, **kwargs):
    config = tmp_path / 'cvt-variant-224x224.yaml'
    config.write_text(yaml.safe_dump(dict(MODEL=dict(NAME='cls_cvt', SPEC=spec))))
    model = CvT(arch=str(config), out_norm=False,
                init_cfg=dict(type='Pretrained', checkpoint=checkpoint), **kwargs)
    model.init_weights()
    return model.eval()


def assert_loaded(model, oracle):
    official = oracle.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, official[key]), key


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_matches_the_official_math(variant, tmp_path):
    spec = dict(TINY_SPEC, **VARIANTS[variant])
    oracle, checkpoint = official_checkpoint(spec, tmp_path)
    model = from_yaml_and_checkpoint(spec, checkpoint, tmp_path)
    assert_loaded(model, oracle)
    for size in SIZES:
        x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(size[0]))
        with torch.no_grad():
            assert_stage_outputs_close(model(x), oracle(x), atol=1e-4)


def test_projection_modules_follow_the_method():
    arch = dict(TINY_ARCH, qkv_proj_methods=['linear', 'avg', 'dw_bn'])
    model = CvT(arch)
    linear, avg, conv = (getattr(model, f'stage{i}').blocks[0].attn for i in range(3))
    assert linear.conv_proj_q is linear.conv_proj_k is linear.conv_proj_v is None
    assert avg.conv_proj_q is None and isinstance(avg.conv_proj_k, torch.nn.AvgPool2d)
    assert not any('stage0.blocks.0.attn.conv_proj' in k or 'stage1.blocks.0.attn.conv_proj' in k
                   for k in model.state_dict())
    assert conv.conv_proj_k.conv.stride == (2, 2)


def test_official_cvt13_yaml_matches_at_full_size(tmp_path):
    """The real CvT-13 experiment YAML, random weights, one non-square input."""
    spec = official_spec('cvt-13-224x224')
    oracle, checkpoint = official_checkpoint(spec, tmp_path, seed=1)
    model = from_yaml_and_checkpoint(spec, checkpoint, tmp_path)
    x = torch.randn(1, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert_stage_outputs_close(model(x), oracle(x), atol=1e-4)


def test_kv_stride_knob_loads_the_released_weights_and_says_so(tmp_path):
    """A released (k/v stride 2) checkpoint into the (4, 2, 2) model: every tensor loads,
    the report says how the network differs, and the model is the official math at k/v
    stride 4."""
    oracle, checkpoint = official_checkpoint(TINY_SPEC, tmp_path)
    model = CvT(dict(TINY_ARCH, depths=[1, 2, 2]), kv_strides=(4, 2, 2), out_norm=False)
    report = load_pretrained(model, checkpoint)
    assert report.complete and report.source_format == 'official'
    assert len(report.notes) == 1 and "'kv_strides': [4, 2, 2]" in report.notes[0]
    assert "{'kv_strides': 2}" in report.notes[0]
    assert not load_pretrained(CvT(dict(TINY_ARCH, depths=[1, 2, 2])), checkpoint).notes
    strided = OfficialCvT(dict(TINY_SPEC, STRIDE_KV=[4, 2, 2])).eval()
    strided.load_state_dict(oracle.state_dict())
    x = torch.randn(1, 3, 80, 112)
    with torch.no_grad():
        assert_stage_outputs_close(model.eval()(x), strided(x), atol=1e-4)


def test_kv_stride_4_keeps_every_other_key_of_stride_2():
    """With kernel 3 and padding 1, the stride-4 keys are the stride-2 keys at even rows
    and columns: the knob subsamples the keys the pretrained kernels make."""
    exact = CvT(TINY_ARCH).eval()
    cheap = CvT(TINY_ARCH, kv_strides=(4, 2, 2)).eval()
    cheap.load_state_dict(randomize_(exact).state_dict())

    def stage0_keys(model):
        seen = []
        with observe_attention(lambda q, k, v, scale, layout: seen.append((k, layout)),
                               with_layout=True), torch.no_grad():
            model(torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(0)))
        keys, layout = seen[0]
        return keys.reshape(*keys.shape[:2], *layout.keys.size, -1), layout

    keys2, layout2 = stage0_keys(exact)
    keys4, layout4 = stage0_keys(cheap)
    assert layout2.keys.size == (8, 6) and layout4.keys.size == (4, 3)
    assert layout4.keys.geometry.stride == 16 and layout4.queries.size == (16, 12)
    assert torch.allclose(keys4, keys2[:, :, ::2, ::2], atol=1e-5)


def test_dw_bn_checkpoint_into_avg_model_needs_allow_partial(tmp_path):
    _, checkpoint = official_checkpoint(TINY_SPEC, tmp_path)
    arch = dict(TINY_ARCH, depths=[1, 2, 2], qkv_proj_methods=['avg'] * 3)
    with pytest.raises(CheckpointMismatchError, match=r"(?s)conv_proj_q.*allow_partial=True to "
                                                      r"drop them") as error:
        load_pretrained(CvT(arch), checkpoint)
    assert "'dw_bn'" in str(error.value)
    report = load_pretrained(CvT(arch), checkpoint, allow_partial=True)
    assert report.unexpected and all('.conv_proj_' in k for k in report.unexpected)
    assert not report.missing and "'qkv_proj_methods'" in report.notes[0]


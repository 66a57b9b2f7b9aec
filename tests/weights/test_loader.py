"""Loading through ``init_cfg``: parity with transformers' CvT, adaptation, reports, errors."""
import argparse

import pytest
import torch
from safetensors.torch import save_file

from cvt_dense.models import CvT
from cvt_dense.models.backbones import ARCH_SETTINGS
from cvt_dense.models.backbones.cvt.pretrained import convert_to_cvt, hf_to_official_key
from cvt_dense.weights import (CheckpointError, CheckpointMismatchError, PickleNotAllowedError,
                               add_prefix, load_pretrained)
from hf_oracle import (TINY_ARCH, assert_stage_outputs_close, cvt_for_hf, hf_model,
                       hf_stage_outputs, official_shapes, randomize_)


def save_as(model, fmt, tmp_path):
    """Write a transformers model's weights in one of the supported layouts."""
    state = model.state_dict()
    if fmt == 'bin':
        path = tmp_path / 'pytorch_model.bin'
        torch.save(state, path)
    elif fmt == 'safetensors':
        path = tmp_path / 'model.safetensors'
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif fmt == 'hf_dir':
        path = tmp_path / 'hub_model'
        model.save_pretrained(path)
    elif fmt == 'official':
        # The official release: our mapping applied, checked against our model's own names.
        path = tmp_path / 'CvT-tiny-224x224-IN-1k.pth'
        official = {hf_to_official_key(k): v for k, v in state.items()}
        assert set(official) - {'norm.weight', 'norm.bias', 'head.weight', 'head.bias'} == \
            set(cvt_for_hf().state_dict())
        torch.save(official, path)
    elif fmt == 'mmdet':
        path = tmp_path / 'mask_rcnn_cvt_epoch_12.pth'
        inner = add_prefix(convert_to_cvt(state))
        inner['neck.fpn_convs.0.conv.weight'] = torch.randn(8, 8, 3, 3)
        inner['roi_head.bbox_head.fc_cls.bias'] = torch.randn(81)
        torch.save({'meta': {'epoch': 12}, 'state_dict': inner}, path)
    return path


def build_from_init_cfg(checkpoint, arch=TINY_ARCH, **kwargs):
    model = cvt_for_hf(arch, init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint),
                                           **kwargs.pop('init', {})), **kwargs)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('with_classifier', [False, True], ids=['CvtModel', 'ForClassification'])
@pytest.mark.parametrize('fmt', ['bin', 'safetensors', 'hf_dir', 'official', 'mmdet'])
def test_stage_outputs_match_transformers(fmt, with_classifier, tmp_path, image):
    source = hf_model(with_classifier=with_classifier, seed=3)
    model = build_from_init_cfg(save_as(source, fmt, tmp_path))
    with torch.no_grad():
        ours = model(image)
    backbone = source.cvt if with_classifier else source
    assert_stage_outputs_close(ours, hf_stage_outputs(backbone, image))


def test_parity_test_would_catch_wrong_weights(tmp_path, image):
    """Control: weights of another random model give clearly different outputs."""
    model = build_from_init_cfg(save_as(hf_model(seed=4), 'bin', tmp_path))
    with torch.no_grad():
        ours = model(image)
    other = hf_stage_outputs(hf_model(seed=5), image)
    assert all((a - b).abs().max() > 1e-2 for a, b in zip(ours, other))


def test_loaded_when_a_parent_module_initialises(tmp_path, image):
    """The way mmengine's runner reaches the backbone: init_weights() of the detector."""
    from mmengine.model import BaseModule

    class Detector(BaseModule):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

    source = hf_model(seed=12)
    path = save_as(source, 'safetensors', tmp_path)
    detector = Detector(cvt_for_hf(init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    detector.init_weights()
    with torch.no_grad():
        assert_stage_outputs_close(detector.backbone.eval()(image),
                                   hf_stage_outputs(source, image))


def test_real_cvt13_size_model_matches_transformers(tmp_path):
    from transformers import CvtConfig, CvtModel
    torch.manual_seed(0)
    source = randomize_(CvtModel(CvtConfig()), seed=0).eval()  # defaults = CvT-13
    path = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = build_from_init_cfg(path, arch='cvt-13')
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_stage_outputs_close(model(x), hf_stage_outputs(source, x))


def test_loading_report_goes_to_the_mm_logger(tmp_path, mm_log):
    path = save_as(hf_model(with_classifier=True), 'bin', tmp_path)
    model = CvT(arch=TINY_ARCH, extra_level=True, out_indices=(0, 1, 2, 3))
    report = load_pretrained(model, path)
    n_backbone = len(cvt_for_hf().state_dict())
    assert len(report.loaded) == n_backbone
    assert report.source_format == 'hf'
    assert set(report.dropped_classifier) == {'classifier.weight', 'classifier.bias',
                                              'layernorm.weight', 'layernorm.bias'}
    assert set(report.newly_initialised) == {
        k for k in model.state_dict() if k.startswith(('out_norm', 'extra_embed'))}
    assert report.complete
    text = mm_log.text
    assert f'loaded {n_backbone}/{len(model.state_dict())} model tensors' in text
    assert 'classifier.weight' in text and 'layernorm.bias' in text
    assert 'out_norm0.weight' in text and 'extra_embed.proj.weight' in text


def test_out_norm_and_extra_level_keep_their_init(tmp_path):
    path = save_as(hf_model(), 'bin', tmp_path)
    model = CvT(arch=TINY_ARCH, extra_level=True, out_indices=(0, 1, 2, 3),
                init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    before = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(('out_norm', 'extra_embed'))}
    model.init_weights()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    src = convert_to_cvt(torch.load(path))
    assert all(torch.equal(src[k], after[k]) for k in src)


def test_checkpoint_without_bn_counters_is_complete():
    state = convert_to_cvt(hf_model().state_dict())
    counters = {k for k in state if k.endswith('num_batches_tracked')}
    assert counters
    report = load_pretrained(cvt_for_hf(), {k: v for k, v in state.items() if k not in counters})
    assert report.complete and set(report.newly_initialised) == counters


def test_in_memory_and_mmdet_prefixed_checkpoints(tmp_path, image):
    source = hf_model(seed=6)
    reference = hf_stage_outputs(source, image)
    state = convert_to_cvt(source.state_dict())
    for ckpt in (state, {'state_dict': add_prefix(state), 'meta': {}}):
        model = cvt_for_hf().eval()
        report = load_pretrained(model, ckpt)
        assert report.complete
        with torch.no_grad():
            assert_stage_outputs_close(model(image), reference)


@pytest.mark.parametrize('in_channels', [1, 4])
def test_in_channels_adapted_from_rgb(in_channels, tmp_path, image, mm_log):
    path = save_as(hf_model(seed=7), 'bin', tmp_path)
    rgb = build_from_init_cfg(path)
    adapted = build_from_init_cfg(path, in_channels=in_channels)
    assert 'adapted stage0.patch_embed.proj.weight (16, 3, 7, 7) -> ' \
        f'(16, {in_channels}, 7, 7)' in mm_log.text
    gray = image.mean(1, keepdim=True)
    with torch.no_grad():
        expected = rgb(gray.expand(-1, 3, -1, -1))
        got = adapted(gray.expand(-1, in_channels, -1, -1))
    assert_stage_outputs_close(got, expected, atol=1e-4)


def test_pos_embed_resampled_to_another_pretrain_size(tmp_path, image):
    # A checkpoint of the positional-embedding ablation, trained at 224 (grids 56/28/14).
    torch.manual_seed(0)
    trained = randomize_(cvt_for_hf(use_pos_embed=True, pretrain_img_size=224), seed=8)
    assert trained.stage2.pos_embed.shape[-2:] == (14, 14)
    path = tmp_path / 'cvt_pos.pth'
    torch.save(trained.state_dict(), path)
    model = build_from_init_cfg(path, use_pos_embed=True, pretrain_img_size=(160, 192))
    src, got = trained.state_dict(), model.state_dict()
    for i in range(3):
        key = f'stage{i}.pos_embed'
        assert got[key].shape[-2:] != src[key].shape[-2:]
        expected = torch.nn.functional.interpolate(src[key], size=got[key].shape[-2:],
                                                   mode='bicubic', align_corners=False)
        torch.testing.assert_close(got[key], expected)
    assert got['stage2.pos_embed'].shape[-2:] == (10, 12)
    for key in src:
        if not key.endswith('pos_embed'):
            assert torch.equal(src[key], got[key]), key
    with torch.no_grad():
        outs = model(torch.nn.functional.interpolate(image, size=(160, 192)))
    assert [o.shape[-2:] for o in outs] == [(40, 48), (20, 24), (10, 12)]


def test_missing_pos_embed_is_newly_initialised(tmp_path):
    path = save_as(hf_model(), 'bin', tmp_path)
    model = cvt_for_hf(use_pos_embed=True)
    report = load_pretrained(model, path)
    assert report.complete
    assert {f'stage{i}.pos_embed' for i in range(3)} <= set(report.newly_initialised)


def test_pos_embed_in_checkpoint_but_not_in_model_is_an_error(tmp_path):
    torch.manual_seed(0)
    state = cvt_for_hf(use_pos_embed=True).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r'(?s)stage0\.pos_embed.*'
                                                      r'use_pos_embed=True'):
        load_pretrained(cvt_for_hf(), state)


@pytest.fixture(scope='module')
def cvt13():
    return CvT(arch='cvt-13')


def test_cvt21_weights_into_cvt13_name_the_extra_blocks(cvt13):
    with pytest.raises(CheckpointMismatchError) as info:
        load_pretrained(cvt13, official_shapes(**ARCH_SETTINGS['cvt-21']))
    message = str(info.value)
    assert 'stage1.blocks.2.' in message
    assert 'looks like cvt-21' in message and 'depths [1, 2, 10]' in message
    assert 'allow_partial=True' in message


def test_w24_weights_into_cvt13_name_key_and_both_shapes(cvt13):
    with pytest.raises(CheckpointMismatchError) as info:
        load_pretrained(cvt13, official_shapes(**ARCH_SETTINGS['cvt-w24']))
    message = str(info.value)
    assert 'stage0.patch_embed.proj.weight: checkpoint (192, 3, 7, 7) vs model ' \
        '(64, 3, 7, 7)' in message
    assert 'looks like cvt-w24' in message
    assert 'stage0.blocks.1.' in message  # w24 has two blocks in stage 0


def test_wrong_arch_from_file_names_the_file(tmp_path):
    path = save_as(hf_model(), 'official', tmp_path)
    narrower = dict(TINY_ARCH, embed_dims=[16, 32, 64], num_heads=[1, 2, 4])
    with pytest.raises(CheckpointMismatchError) as info:
        build_from_init_cfg(path, arch=narrower)
    message = str(info.value)
    assert str(path) in message
    assert 'stage2.patch_embed.proj.weight: checkpoint (48, 32, 3, 3) vs model ' \
        '(64, 32, 3, 3)' in message


def test_allow_partial_loads_what_fits(tmp_path, mm_log):
    source = hf_model(seed=9)
    path = save_as(source, 'safetensors', tmp_path)
    deeper = dict(TINY_ARCH, depths=[1, 2, 4])
    model = build_from_init_cfg(path, arch=deeper, init=dict(allow_partial=True))
    state, src = model.state_dict(), convert_to_cvt(source.state_dict())
    assert all(torch.equal(src[k], state[k]) for k in src)
    n_missing = sum(k.startswith('stage2.blocks.3.') for k in state)
    assert f'missing {n_missing} [stage2.blocks.3.norm1.weight' in mm_log.text
    assert 'allow_partial=True' in mm_log.text


def test_unrelated_checkpoint_is_rejected_even_with_allow_partial(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(2, 3, 7, 7)}, path)
    with pytest.raises(CheckpointError, match=r'resnet\.pth: no CvT tensors'):
        build_from_init_cfg(path, init=dict(allow_partial=True))


def test_pickled_checkpoint_needs_opt_in_through_init_cfg(tmp_path, image):
    source = hf_model(seed=10)
    path = tmp_path / 'trainer_ckpt.pth'
    torch.save({'model': source.state_dict(), 'args': argparse.Namespace(epochs=300)}, path)
    with pytest.raises(PickleNotAllowedError, match='argparse.Namespace'):
        build_from_init_cfg(path)
    model = build_from_init_cfg(path, init=dict(allow_pickle=True))
    with torch.no_grad():
        assert_stage_outputs_close(model(image), hf_stage_outputs(source, image))


def test_missing_and_truncated_files_through_init_cfg(tmp_path):
    with pytest.raises(CheckpointError, match=r'absent\.pth: no such file'):
        build_from_init_cfg(tmp_path / 'absent.pth')
    path = save_as(hf_model(), 'bin', tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r'pytorch_model\.bin: .*truncated'):
        build_from_init_cfg(path)


def test_unknown_init_cfg_keys_are_logged(tmp_path, mm_log):
    path = save_as(hf_model(), 'bin', tmp_path)
    build_from_init_cfg(path, init=dict(allow_partal=True))
    assert "ignoring unknown init_cfg keys ['allow_partal']" in mm_log.text

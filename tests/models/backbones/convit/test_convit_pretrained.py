"""ConViT weights through the shared machinery: every published format, adaptation, errors."""
import argparse

import pytest
import torch
from safetensors.torch import save_file

from convit_oracle import TINY_CONVIT, timm_convit, timm_tiny_kwargs
from cvt_dense.models import ConViT, CvT
from cvt_dense.weights import (CheckpointError, CheckpointMismatchError, PickleNotAllowedError,
                               add_prefix, load_pretrained)
from hf_oracle import TINY_ARCH


@pytest.fixture(scope='module')
def source():
    return timm_convit(**timm_tiny_kwargs(), seed=5)


@pytest.fixture
def image():
    return torch.randn(1, 3, 80, 112, generator=torch.Generator().manual_seed(2))


def save_as(state, fmt, tmp_path):
    """A timm ConVit state dict in one of the published layouts."""
    if fmt == 'safetensors':  # timm's hub files
        path = tmp_path / 'model.safetensors'
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif fmt == 'bin':
        path = tmp_path / 'pytorch_model.bin'
        torch.save(state, path)
    elif fmt == 'official':  # facebookresearch/convit releases {'model': state_dict}
        path = tmp_path / 'convit_tiny.pth'
        torch.save({'model': state}, path)
    elif fmt == 'mmdet':
        path = tmp_path / 'epoch_12.pth'
        backbone = {k: v for k, v in state.items() if not k.startswith(('head.', 'norm.'))}
        torch.save({'state_dict': dict(add_prefix(backbone), **{'neck.x': torch.zeros(1)})},
                   path)
    return path


def timm_block_outputs(model, x):
    with torch.no_grad():
        return model.forward_intermediates(x, indices=[1, 3], intermediates_only=True)


@pytest.mark.parametrize('fmt', ['safetensors', 'bin', 'official', 'mmdet'])
def test_every_format_loads_through_init_cfg_with_timm_outputs(fmt, source, tmp_path, image):
    path = save_as(source.state_dict(), fmt, tmp_path)
    model = ConViT(TINY_CONVIT, out_indices=(1, 3), out_norm=False, drop_path_rate=0.,
                   init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    x = torch.nn.functional.interpolate(image, size=(224, 224))  # timm's fixed size
    with torch.no_grad():
        for ours, ref in zip(model.eval()(x), timm_block_outputs(source, x)):
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_report_drops_the_classifier_and_keeps_new_norms(source, tmp_path):
    path = save_as(source.state_dict(), 'safetensors', tmp_path)
    report = load_pretrained(ConViT(TINY_CONVIT, out_indices=(1, 3)), path)
    assert report.source_format == 'official' and report.complete
    assert sorted(report.dropped_classifier) == ['head.bias', 'head.weight', 'norm.bias',
                                                 'norm.weight']
    assert sorted(report.newly_initialised) == ['out_norm1.bias', 'out_norm1.weight',
                                                'out_norm3.bias', 'out_norm3.weight']


def test_pos_embed_of_another_grid_is_resampled_with_timm_rule(tmp_path, image):
    from timm.layers import resample_abs_pos_embed
    bigger = timm_convit(**timm_tiny_kwargs(), img_size=192, seed=6)  # 12x12 grid
    path = save_as(bigger.state_dict(), 'bin', tmp_path)
    model = ConViT(TINY_CONVIT, out_norm=False)
    report = load_pretrained(model, path)
    assert [(a.key, a.source_shape, a.target_shape) for a in report.adapted] == [
        ('pos_embed', (1, 144, 32), (1, 196, 32))]
    expected = resample_abs_pos_embed(bigger.pos_embed, (14, 14), (12, 12), num_prefix_tokens=0)
    torch.testing.assert_close(model.pos_embed.data, expected)


def test_pos_embed_kept_at_its_stored_grid_when_pretrain_size_matches(tmp_path):
    bigger = timm_convit(**timm_tiny_kwargs(), img_size=192, seed=6)
    model = ConViT(TINY_CONVIT, pretrain_img_size=192)
    report = load_pretrained(model, save_as(bigger.state_dict(), 'bin', tmp_path))
    assert report.adapted == []
    assert torch.equal(model.pos_embed.data, bigger.pos_embed.data)


@pytest.mark.parametrize('in_channels', [1, 4])
def test_in_channels_adapted_from_rgb(in_channels, source, tmp_path):
    model = ConViT(TINY_CONVIT, in_channels=in_channels)
    report = load_pretrained(model, save_as(source.state_dict(), 'bin', tmp_path))
    assert [a.key for a in report.adapted] == ['patch_embed.proj.weight']
    rgb_sum = source.patch_embed.proj.weight.sum(1, keepdim=True)
    # The shared rule (tests/weights/test_adapt.py): every channel gets the RGB sum / N.
    torch.testing.assert_close(model.patch_embed.proj.weight,
                               (rgb_sum / in_channels).expand(-1, in_channels, -1, -1))


def test_wrong_arch_names_the_arch_the_checkpoint_looks_like():
    with torch.device('meta'):
        small = ConViT('convit-small').state_dict()
    with pytest.raises(CheckpointMismatchError) as info:
        load_pretrained(ConViT('convit-tiny'), small)
    message = str(info.value)
    assert 'looks like convit-small' in message and 'model (convit-tiny)' in message
    assert 'patch_embed.proj.weight: checkpoint (432, 3, 16, 16) vs model (192, 3, 16, 16)' \
        in message


def test_checkpoint_of_the_other_backbone_says_which_it_is(source):
    with pytest.raises(CheckpointError, match=r"no CvT tensors.*They are a ConViT checkpoint "
                                              r"\(official format\): build type='ConViT'"):
        load_pretrained(CvT(TINY_ARCH), source.state_dict())
    with pytest.raises(CheckpointError, match=r"no ConViT tensors.*They are a CvT"):
        load_pretrained(ConViT(TINY_CONVIT), CvT(TINY_ARCH).state_dict())


def test_plain_vit_checkpoint_is_not_taken_for_convit():
    from timm.models.vision_transformer import VisionTransformer
    vit = VisionTransformer(embed_dim=32, depth=2, num_heads=2, patch_size=16)
    with pytest.raises(CheckpointError, match='no ConViT tensors'):
        load_pretrained(ConViT(TINY_CONVIT), vit.state_dict())


def test_truncated_and_pickled_files(source, tmp_path):
    path = save_as(source.state_dict(), 'safetensors', tmp_path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match=r'model\.safetensors: .*truncated'):
        load_pretrained(ConViT(TINY_CONVIT), path)
    pickled = tmp_path / 'train.pth'
    torch.save({'model': source.state_dict(), 'args': argparse.Namespace(epochs=300)}, pickled)
    with pytest.raises(PickleNotAllowedError, match='argparse.Namespace'):
        load_pretrained(ConViT(TINY_CONVIT), pickled)
    assert load_pretrained(ConViT(TINY_CONVIT), pickled, allow_pickle=True).complete

"""CvtDenseSimpleFPN: one stride-16 map to strides 4..64, as Mask R-CNN expects."""
import pytest
import torch

from cvt_dense.models import CvtDenseSimpleFPN


def test_strides_4_to_64_from_one_stride16_map():
    neck = CvtDenseSimpleFPN(in_channels=32, out_channels=16).eval()
    x = torch.randn(2, 32, 6, 10)  # a 96x160 image at stride 16
    with torch.no_grad():
        outs = neck((x, ))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 24, 40), (2, 16, 12, 20), (2, 16, 6, 10),
                                              (2, 16, 3, 5), (2, 16, 2, 3)]


def test_identity_level_is_a_conv_of_the_input_and_pooling_is_max():
    neck = CvtDenseSimpleFPN(32, 8, scale_factors=(1.0, 0.5), num_outs=2,
                             norm_cfg=dict(type='BN')).eval()
    x = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        same, half = neck((x, ))
        expected = neck.fpn_convs[1](neck.lateral_convs[1](
            torch.nn.functional.max_pool2d(x, 2)))
        torch.testing.assert_close(half, expected)
        assert torch.allclose(same, neck.fpn_convs[0](neck.lateral_convs[0](x)))


def test_ln2d_normalises_over_channels():
    neck = CvtDenseSimpleFPN(16, 8, scale_factors=(1.0, ), num_outs=1)
    norm = neck.lateral_convs[0].norm
    x = torch.randn(2, 8, 5, 7)
    expected = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8, ), norm.weight,
                                              norm.bias, norm.eps).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected)


@pytest.mark.parametrize('kwargs, match', [(dict(scale_factors=(3.0, )), 'scale_factors'),
                                           (dict(num_outs=2), 'num_outs')])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CvtDenseSimpleFPN(16, **kwargs)


def test_more_than_one_input_map_is_refused():
    with pytest.raises(ValueError, match='one backbone map'):
        CvtDenseSimpleFPN(16)((torch.randn(1, 16, 4, 4), torch.randn(1, 16, 2, 2)))


def test_outputs_are_contiguous_for_mmcv_roi_align():
    """mmcv's RoIAlign ignores strides: on LN2d's channels-last output it pooled other
    values than on the same tensor made contiguous, and Mask R-CNN's heads learned nothing."""
    from mmcv.ops import roi_align
    neck = CvtDenseSimpleFPN(16, 8, scale_factors=(1.0, ), num_outs=1).eval()
    with torch.no_grad():
        out = neck((torch.randn(1, 16, 12, 12), ))[0]
        rois = torch.tensor([[0, 1., 2., 9., 11.]])
        pooled = roi_align(out, rois, (4, 4), 1.0, 0, 'avg', True)
        reference = roi_align(out.clone(memory_format=torch.contiguous_format), rois, (4, 4),
                              1.0, 0, 'avg', True)
    assert out.is_contiguous()
    torch.testing.assert_close(pooled, reference)

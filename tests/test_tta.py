"""InstanceSegTTAModel: the views' boxes and masks flipped back, pooled, NMS'd together."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from cvt_dense.tta import InstanceSegTTAModel

H, W = 6, 10


class Detector(torch.nn.Module):
    """Stands in for the wrapped detector (only merging is tested)."""

    def test_step(self, data):
        raise NotImplementedError


def tta_model(max_per_img=100) -> InstanceSegTTAModel:
    return InstanceSegTTAModel(module=Detector(),
                               tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                            max_per_img=max_per_img))


def view(boxes, scores, labels, masks, flip=None) -> DetDataSample:
    sample = DetDataSample(metainfo=dict(ori_shape=(H, W), flip=flip is not None,
                                         flip_direction=flip))
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32), scores=torch.tensor(scores),
        labels=torch.tensor(labels), masks=masks)
    return sample


def mask_at(x0, x1, y0=0, y1=H) -> torch.Tensor:
    mask = torch.zeros(1, H, W, dtype=torch.bool)
    mask[:, y0:y1, x0:x1] = True
    return mask


@pytest.fixture
def tta():
    return tta_model()


def test_flipped_view_comes_back_and_duplicates_are_suppressed(tta):
    # One object at x 1..4. The flipped view sees it at x 6..9 (W - x) with a higher score.
    plain = view([[1., 0., 4., 6.]], [0.6], [2], mask_at(1, 4))
    flipped = view([[6., 0., 9., 6.]], [0.9], [2], mask_at(6, 9), flip='horizontal')
    merged = tta.merge_preds([[plain, flipped]])[0].pred_instances
    assert len(merged) == 1  # the same object twice: NMS keeps the better one
    torch.testing.assert_close(merged.bboxes, torch.tensor([[1., 0., 4., 6.]]))
    assert merged.scores.tolist() == pytest.approx([0.9])
    assert merged.labels.tolist() == [2]
    assert torch.equal(merged.masks, mask_at(1, 4))  # the flipped view's mask, unflipped


def test_other_classes_and_places_are_kept_and_sorted(tta):
    plain = view([[1., 0., 4., 6.], [0., 0., 2., 2.]], [0.5, 0.7], [0, 0],
                 torch.cat([mask_at(1, 4), mask_at(0, 2, 0, 2)]))
    # Same place as the first box but another class: not suppressed.
    flipped = view([[6., 0., 9., 6.]], [0.8], [1], mask_at(6, 9), flip='horizontal')
    merged = tta.merge_preds([[plain, flipped]])[0].pred_instances
    assert merged.scores.tolist() == pytest.approx([0.8, 0.7, 0.5])
    assert merged.labels.tolist() == [1, 0, 0]
    assert torch.equal(merged.masks[0], mask_at(1, 4)[0])


def test_vertical_flip_and_max_per_img():
    tta = tta_model(max_per_img=1)
    plain = view([[0., 0., 2., 2.]], [0.3], [0], mask_at(0, 2, 0, 2))
    flipped = view([[5., 4., 7., 6.]], [0.4], [1], mask_at(5, 7, 4, 6), flip='vertical')
    merged = tta.merge_preds([[plain, flipped]])[0].pred_instances
    assert len(merged) == 1 and merged.labels.tolist() == [1]
    torch.testing.assert_close(merged.bboxes, torch.tensor([[5., 0., 7., 2.]]))
    assert torch.equal(merged.masks, mask_at(5, 7, 0, 2))


def test_no_detections(tta):
    empty = view(torch.zeros(0, 4).tolist(), [], [], torch.zeros(0, H, W, dtype=torch.bool))
    flipped = view(torch.zeros(0, 4).tolist(), [], [], torch.zeros(0, H, W, dtype=torch.bool),
                   flip='horizontal')
    merged = tta.merge_preds([[empty, flipped]])[0].pred_instances
    assert len(merged) == 0 and merged.masks.shape == (0, H, W)

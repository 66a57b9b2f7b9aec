"""Test-time augmentation for instance segmentation (mmdet 3.x).

mmdet 3.3's ``DetTTAModel`` merges the boxes of the augmented views and refuses masks
("TTA of instance segmentation does not support now"), so Mask R-CNN cannot be tested with
``--tta``. :class:`InstanceSegTTAModel` merges them: each view's boxes and masks (already at the
original image size) are flipped back, pooled, and the class-wise NMS of ``DetTTAModel``
picks the survivors with their masks. Importing this module registers it (needs mmdet);
the det configs list it in ``custom_imports``.
"""
from typing import List

import torch
from mmcv.ops import batched_nms
from mmdet.models.test_time_augs import DetTTAModel
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_flip
from mmengine.registry import MODELS
from mmengine.structures import InstanceData

# Mask dimensions flipped for each of mmdet's flip directions (masks are ... x H x W).
MASK_FLIP_DIMS = {'horizontal': (-1, ), 'vertical': (-2, ), 'diagonal': (-2, -1)}


@MODELS.register_module()
class InstanceSegTTAModel(DetTTAModel):
    """``DetTTAModel`` that merges masks too (flip and multi-scale views).

    Args:
        tta_cfg (dict): ``nms`` (e.g. ``dict(type='nms', iou_threshold=0.5)``) and
            ``max_per_img``, as for ``DetTTAModel``.
        **kwargs: ``module`` (the detector) and the other ``BaseTTAModel`` arguments.
    """

    def _merge_single_sample(self, data_samples: List[DetDataSample]) -> DetDataSample:
        if 'masks' not in data_samples[0].pred_instances:
            return super()._merge_single_sample(data_samples)
        merged = InstanceData.cat([self._unflipped(s) for s in data_samples])
        result = data_samples[0]
        if len(merged) > 0:
            _, keep = batched_nms(merged.bboxes, merged.scores, merged.labels,
                                  self.tta_cfg['nms'])
            merged = merged[keep[:self.tta_cfg['max_per_img']]]
        result.pred_instances = merged
        return result

    @staticmethod
    def _unflipped(sample: DetDataSample) -> InstanceData:
        """The view's predictions in the original image's orientation."""
        instances = sample.pred_instances
        meta = sample.metainfo
        view = InstanceData(bboxes=instances.bboxes, scores=instances.scores,
                            labels=instances.labels, masks=instances.masks)
        if meta.get('flip', False):
            direction = meta['flip_direction']
            view.bboxes = bbox_flip(view.bboxes, img_shape=meta['ori_shape'],
                                    direction=direction)
            view.masks = torch.flip(view.masks, dims=MASK_FLIP_DIMS[direction])
        return view

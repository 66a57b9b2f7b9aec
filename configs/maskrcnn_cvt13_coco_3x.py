# Mask R-CNN + FPN, CvT-13, COCO 2017, 3x schedule (36 epochs, lr steps at 27 and 33) with
# multi-scale training, 8 GPUs x 2 images.
# Recipe: mmdet's swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py: DETR's resize /
# random-crop augmentation (shorter side 480..800, longer side <= 1333), 36 epochs, AdamW lr
# 1e-4, weight decay 0.05; the model is maskrcnn_cvt13_coco.py's. (mmdet's
# _amp-ms-crop-3x variant is the same with AmpOptimWrapper: tools/train.py --amp.)
# The q/k/v BatchNorm keeps its ImageNet statistics (norm_eval=True, as mmdet's ResNets;
# reason in _base_/models/mask-rcnn_cvt_fpn.py).
_base_ = [
    '_base_/models/mask-rcnn_cvt_fpn.py',
    '_base_/datasets/coco_instance_ms-crop.py',
    '_base_/schedules/adamw_3x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'https://huggingface.co/microsoft/cvt-13/resolve/main/model.safetensors'

model = dict(
    backbone=dict(
        arch='cvt-13',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 192, 384]))

# Mask R-CNN + FPN, CvT-13 backbone (ImageNet-1k, 224), COCO 2017, 1x schedule (12 epochs),
# 8 GPUs x 2 images:  tools/dist_train.sh configs/maskrcnn_cvt13_coco.py 8
# Recipe: mmdet's swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py (Mask R-CNN 1x: 1333x800,
# AdamW lr 1e-4, weight decay 0.05, none on norms and position tables, 1000-iteration
# warm-up, lr steps at 8 and 11), with CvT's three levels into FPN (extra levels by
# stride-2 convs on the stride-16 input). Drop path 0.1 is the official CvT-13 value
# (experiments/imagenet/cvt/cvt-13-224x224.yaml: DROP_PATH_RATE [0, 0, 0.1]) with its
# schedule: stage 3 only, rising linearly over its blocks.
# The q/k/v BatchNorm keeps its ImageNet statistics (norm_eval=True, as mmdet's ResNets;
# reason in _base_/models/mask-rcnn_cvt_fpn.py).
# The ImageNet weights are Hugging Face's microsoft/cvt-13 (the official
# CvT-13-224x224-IN-1k.pth, on OneDrive only, loads too); point elsewhere with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL
_base_ = [
    '_base_/models/mask-rcnn_cvt_fpn.py',
    '_base_/datasets/coco_instance.py',
    '_base_/schedules/adamw_1x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'https://huggingface.co/microsoft/cvt-13/resolve/main/model.safetensors'

model = dict(
    backbone=dict(
        arch='cvt-13',
        drop_path_rate=0.1,  # the official recipe: 0 in stages 1-2, up to 0.1 in stage 3
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 192, 384]))

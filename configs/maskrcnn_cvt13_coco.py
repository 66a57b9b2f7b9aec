# Mask R-CNN + FPN, CvT-13 backbone (ImageNet-1k, 224), COCO 2017, 1x schedule (12 epochs),
# 8 GPUs x 2 images:  tools/dist_train.sh configs/maskrcnn_cvt13_coco.py 8
# The ImageNet weights are read from `pretrained` (official .pth, Hugging Face or our
# format); point elsewhere with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '_base_/models/mask-rcnn_cvt_fpn.py',
    '_base_/datasets/coco_instance.py',
    '_base_/schedules/adamw_1x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'checkpoints/CvT-13-224x224-IN-1k.pth'

model = dict(
    backbone=dict(
        arch='cvt-13',
        drop_path_rate=0.1,  # the official recipe: 0 in stages 1-2, up to 0.1 in stage 3
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 192, 384]))

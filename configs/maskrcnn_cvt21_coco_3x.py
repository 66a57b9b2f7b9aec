# Mask R-CNN + FPN, CvT-21 backbone (ImageNet-1k, 224), COCO 2017, 3x schedule with
# multi-scale training, 8 GPUs x 2 images. Recipe: as maskrcnn_cvt13_coco_3x.py (mmdet's
# swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py) with the backbone of
# maskrcnn_cvt21_coco.py (drop path 0.2, as Swin-T's 3x config).
_base_ = './maskrcnn_cvt13_coco_3x.py'
pretrained = 'https://huggingface.co/microsoft/cvt-21/resolve/main/pytorch_model.bin'

model = dict(
    backbone=dict(
        arch='cvt-21',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

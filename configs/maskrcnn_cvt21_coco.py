# Mask R-CNN + FPN, CvT-21 backbone (ImageNet-1k, 224), COCO 2017, 1x schedule.
# Same widths as CvT-13 (64/192/384), deeper stages (1/4/16 blocks). Recipe: as
# maskrcnn_cvt13_coco.py (mmdet's Swin-T Mask R-CNN 1x). Stochastic depth: the official
# schedule's shape (stage 3 only, rising linearly over its 16 blocks) with peak 0.2 instead
# of ImageNet's 0.1 (a deviation, after mmdet's 0.2 for the similar-sized Swin-T, spread
# over all its blocks).
_base_ = './maskrcnn_cvt13_coco.py'
# microsoft/cvt-21's main branch holds pytorch_model.bin only (a plain state dict).
pretrained = 'https://huggingface.co/microsoft/cvt-21/resolve/main/pytorch_model.bin'

model = dict(
    backbone=dict(
        arch='cvt-21',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# Mask R-CNN + SimpleFPN, ConViT-Ti backbone (ImageNet-1k, 224), COCO 2017, 1x schedule,
# 8 GPUs x 2 images. Recipe: as maskrcnn_convit_small_coco.py (mmdet's 1x Mask R-CNN
# recipe on SimpleFPN with ViTDet's layer decay 0.7 and weight decay 0.1), at ConViT-Ti's
# width 192.
_base_ = './maskrcnn_convit_small_coco.py'
pretrained = 'https://huggingface.co/timm/convit_tiny.fb_in1k/resolve/main/model.safetensors'

model = dict(
    backbone=dict(arch='convit-tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=192))

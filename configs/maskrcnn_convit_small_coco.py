# Mask R-CNN + SimpleFPN, ConViT-S backbone (ImageNet-1k, 224), COCO 2017, 1x schedule
# (12 epochs), 8 GPUs x 2 images:  tools/dist_train.sh configs/maskrcnn_convit_small_coco.py 8
# Recipe: mmdet's 1x Mask R-CNN recipe (mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py: heads,
# 1333x800 single-scale training, epochs 12 with lr steps at 8 and 11; AdamW lr 1e-4 as
# mmdet's transformer 1x configs, e.g. swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py) on
# ViTDet's simple feature pyramid (SimpleFPN, LayerNorm), with ViTDet's optimizer for plain
# backbones: layer-wise lr decay 0.7 over the 12 blocks and weight decay 0.1, none on
# norms, biases, pos_embed and the cls token. It is not ViTDet's recipe (no large-scale
# jitter, 1-conv RPN, 2fc box head, 12 epochs at batch 16): that one is
# maskrcnn_convit_small_simplefpn_lsj-100e_coco.py.
# The ImageNet weights are timm's (the official https://dl.fbaipublicfiles.com/convit/
# convit_small.pth holds the same tensors); point elsewhere with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL
_base_ = [
    '_base_/models/mask-rcnn_convit_simplefpn.py',
    '_base_/datasets/coco_instance.py',
    '_base_/schedules/adamw_1x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'https://huggingface.co/timm/convit_small.fb_in1k/resolve/main/model.safetensors'

model = dict(
    backbone=dict(
        arch='convit-small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=432))
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(lr=1e-4, weight_decay=0.1),
    paramwise_cfg=dict(_delete_=True, decay_rate=0.7))

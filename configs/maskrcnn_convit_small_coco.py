# Mask R-CNN + SimpleFPN, ConViT-S backbone (ImageNet-1k, 224), COCO 2017, 1x schedule
# (12 epochs), 8 GPUs x 2 images:  tools/dist_train.sh configs/maskrcnn_convit_small_coco.py 8
# AdamW with layer-wise lr decay 0.7 over the 12 blocks (ViTDet's plain-backbone recipe)
# and weight decay 0.1, none on norms, biases, pos_embed and the cls token.
# The ImageNet weights (timm's convit_small.fb_in1k .safetensors/.bin/.pth or the official
# .pth) are read from `pretrained`; point elsewhere with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '_base_/models/mask-rcnn_convit_simplefpn.py',
    '_base_/datasets/coco_instance.py',
    '_base_/schedules/adamw_1x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'checkpoints/convit_small.fb_in1k.safetensors'

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

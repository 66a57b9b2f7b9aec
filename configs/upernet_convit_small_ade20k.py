# UperNet (+ auxiliary FCN head) + MultiLevelNeck, ConViT-S backbone (ImageNet-1k, 224),
# ADE20K, 512x512 crops (32x32 tokens), 160k iterations, 8 GPUs x 2 images:
#   tools/dist_train.sh configs/upernet_convit_small_ade20k.py 8
# AdamW with layer-wise lr decay 0.65 (mmseg's recipe for plain ViT backbones), no weight
# decay on norms, biases, pos_embed and the cls token. The ImageNet weights are read from
# `pretrained`; point elsewhere with --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '_base_/models/upernet_convit.py',
    '_base_/datasets/ade20k.py',
    '_base_/schedules/adamw_160k.py',
    '_base_/default_runtime_seg.py',
]
pretrained = 'checkpoints/convit_small.fb_in1k.safetensors'
crop_size = (512, 512)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='convit-small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
optim_wrapper = dict(
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, decay_rate=0.65))

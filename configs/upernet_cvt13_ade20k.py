# UperNet (+ auxiliary FCN head), CvT-13 backbone (ImageNet-1k, 224), ADE20K, 512x512
# crops, 160k iterations, 8 GPUs x 2 images:
#   tools/dist_train.sh configs/upernet_cvt13_ade20k.py 8
# The ImageNet weights are read from `pretrained`; point elsewhere with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = [
    '_base_/models/upernet_cvt.py',
    '_base_/datasets/ade20k.py',
    '_base_/schedules/adamw_160k.py',
    '_base_/default_runtime_seg.py',
]
pretrained = 'checkpoints/CvT-13-224x224-IN-1k.pth'
crop_size = (512, 512)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='cvt-13',
        drop_path_rate=0.1,  # the official recipe: 0 in stages 1-2, up to 0.1 in stage 3
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 192, 384], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

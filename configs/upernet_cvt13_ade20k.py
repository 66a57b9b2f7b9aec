# UperNet (+ auxiliary FCN head), CvT-13 backbone (ImageNet-1k, 224), ADE20K, 512x512
# crops, 160k iterations, 8 GPUs x 2 images:
#   tools/dist_train.sh configs/upernet_cvt13_ade20k.py 8
# Recipe: mmseg's swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py
# (AdamW lr 6e-5, weight decay 0.01, none on norms and position tables, 1500-iteration
# warm-up then poly, auxiliary FCN head with weight 0.4 on the stride-16 level), with CvT's
# three levels into UperNet (see _base_/models/upernet_cvt.py). Deviation: drop path 0.1,
# the official CvT-13 value and schedule (stage 3 only), where Swin-T's UperNet uses 0.3.
# The q/k/v BatchNorm is SyncBN (as mmseg's ResNets; reason in _base_/models/upernet_cvt.py).
# The ImageNet weights are Hugging Face's microsoft/cvt-13; point elsewhere with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL
_base_ = [
    '_base_/models/upernet_cvt.py',
    '_base_/datasets/ade20k.py',
    '_base_/schedules/adamw_160k.py',
    '_base_/default_runtime_seg.py',
]
pretrained = 'https://huggingface.co/microsoft/cvt-13/resolve/main/model.safetensors'
crop_size = (512, 512)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='cvt-13',
        drop_path_rate=0.1,  # the official recipe: 0 in stages 1-2, up to 0.1 in stage 3
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[64, 192, 384], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))

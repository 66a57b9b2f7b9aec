# UperNet (+ auxiliary FCN head) + MultiLevelNeck, ConViT-S backbone (ImageNet-1k, 224),
# ADE20K, 512x512 crops (32x32 tokens), 160k iterations, 8 GPUs x 2 images:
#   tools/dist_train.sh configs/upernet_convit_small_ade20k.py 8
# Recipe: mmseg's supervised-ImageNet plain-ViT recipe,
# vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py (ConViT's weights are supervised
# ImageNet-1k weights trained with DeiT's recipe): AdamW lr 6e-5, weight decay 0.01, none on
# norms, pos_embed and the cls token, no layer-wise lr decay, 1500-iteration warm-up then
# poly, drop path 0.1; MultiLevelNeck at the backbone's width (432, as DeiT-S's 384) and the
# auxiliary head on the last level (in_index 3). Not the MAE/BEiT recipe (layer decay 0.65,
# lr 1e-4, wd 0.05): that one is for self-supervised weights.
# Deviation: norms are found by layer type (norm_decay_mult=0), which also exempts the
# heads' BN, where mmseg matches the name 'norm'.
# The ImageNet weights are timm's (the official https://dl.fbaipublicfiles.com/convit/
# convit_small.pth holds the same tensors); point elsewhere with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL
_base_ = [
    '_base_/models/upernet_convit.py',
    '_base_/datasets/ade20k.py',
    '_base_/schedules/adamw_160k.py',
    '_base_/default_runtime_seg.py',
]
pretrained = 'https://huggingface.co/timm/convit_small.fb_in1k/resolve/main/model.safetensors'
crop_size = (512, 512)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch='convit-small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))

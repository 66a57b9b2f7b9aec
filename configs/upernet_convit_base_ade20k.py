# UperNet + MultiLevelNeck, ConViT-B backbone (ImageNet-1k, 224), ADE20K, 512x512 crops,
# 160k iterations, 8 GPUs x 2 images. Recipe: mmseg's
# vit/vit_deit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py (AdamW 6e-5, wd 0.01, no layer
# decay, drop path 0.1, MultiLevelNeck 768 -> 768, auxiliary head on level 3), as
# upernet_convit_small_ade20k.py at ConViT-B's width 768.
_base_ = './upernet_convit_small_ade20k.py'
pretrained = 'https://huggingface.co/timm/convit_base.fb_in1k/resolve/main/model.safetensors'
width = 768

model = dict(
    backbone=dict(arch='convit-base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[width] * 4, out_channels=width),
    decode_head=dict(in_channels=[width] * 4),
    auxiliary_head=dict(in_channels=width))

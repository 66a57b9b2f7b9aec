# UperNet + MultiLevelNeck, ConViT-Ti backbone (ImageNet-1k, 224), ADE20K, 512x512 crops,
# 160k iterations, 8 GPUs x 2 images. Recipe: as upernet_convit_small_ade20k.py (mmseg's
# vit/vit_deit-s16_mln_upernet_8xb2-160k_ade20k-512x512.py: AdamW 6e-5, wd 0.01, no layer
# decay), at ConViT-Ti's width 192 for the neck and heads' inputs. mmseg ships no DeiT-Ti
# UperNet; the DeiT-S/B configs keep the neck at the backbone's width, so this does too.
_base_ = './upernet_convit_small_ade20k.py'
pretrained = 'https://huggingface.co/timm/convit_tiny.fb_in1k/resolve/main/model.safetensors'
width = 192

model = dict(
    backbone=dict(arch='convit-tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[width] * 4, out_channels=width),
    decode_head=dict(in_channels=[width] * 4),
    auxiliary_head=dict(in_channels=width))

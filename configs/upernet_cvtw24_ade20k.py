# UperNet (+ auxiliary FCN head), CvT-W24 backbone (ImageNet-22k, fine-tuned at 384),
# ADE20K, 512x512 crops, 160k iterations, 8 GPUs x 2 images:
#   tools/dist_train.sh configs/upernet_cvtw24_ade20k.py 8
# Recipe: mmseg's swin/swin-base-patch4-window12-in22k-384x384-pre_upernet_8xb2-160k_ade20k-
# 512x512.py (the IN-22k 384 Swin-B UperNet: AdamW lr 6e-5, weight decay 0.01, poly,
# drop path 0.3, auxiliary head on the stride-16 level), with W24's three levels
# (192/768/1024) into UperNet as upernet_cvt13_ade20k.py does. Drop path 0.3 is also the
# official W24 value and schedule (stage 3 only).
# Gradient checkpointing is on (277M parameters, global attention at stride 4).
# The q/k/v BatchNorm is SyncBN (as mmseg's ResNets; reason in _base_/models/upernet_cvt.py).
_base_ = './upernet_cvt13_ade20k.py'
pretrained = 'https://huggingface.co/microsoft/cvt-w24-384-22k/resolve/main/pytorch_model.bin'

model = dict(
    backbone=dict(
        arch='cvt-w24',
        drop_path_rate=0.3,
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 768, 1024]),
    auxiliary_head=dict(in_channels=1024))

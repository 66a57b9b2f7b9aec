# UperNet (+ auxiliary FCN head), CvT-21 backbone (ImageNet-1k, 224), ADE20K, 512x512
# crops, 160k iterations. Recipe: as upernet_cvt13_ade20k.py (mmseg's Swin-T UperNet).
# Stochastic depth: the official schedule's shape (stage 3 only, rising linearly over its
# 16 blocks) with peak 0.2 instead of ImageNet's 0.1 for the deeper backbone (a deviation;
# mmseg's Swin-T UperNet uses 0.3 spread over all blocks).
_base_ = './upernet_cvt13_ade20k.py'
# microsoft/cvt-21's main branch holds pytorch_model.bin only (a plain state dict).
pretrained = 'https://huggingface.co/microsoft/cvt-21/resolve/main/pytorch_model.bin'

model = dict(
    backbone=dict(
        arch='cvt-21',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# UperNet (+ auxiliary FCN head), CvT-21 backbone (ImageNet-1k, 224), ADE20K, 512x512
# crops, 160k iterations. Recipe: as upernet_cvt13_ade20k.py (mmseg's Swin-T UperNet).
# Deviation: drop path 0.2 for the deeper backbone, where the official CvT-21 ImageNet
# recipe uses 0.1 (stage 3 only) and Swin-T's UperNet 0.3.
_base_ = './upernet_cvt13_ade20k.py'
# microsoft/cvt-21's main branch holds pytorch_model.bin only (a plain state dict).
pretrained = 'https://huggingface.co/microsoft/cvt-21/resolve/main/pytorch_model.bin'

model = dict(
    backbone=dict(
        arch='cvt-21',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# UperNet (+ auxiliary FCN head), CvT-21 backbone (ImageNet-1k, 224), ADE20K, 512x512
# crops, 160k iterations; stochastic depth 0.2 for the deeper backbone.
_base_ = './upernet_cvt13_ade20k.py'
pretrained = 'checkpoints/CvT-21-224x224-IN-1k.pth'

model = dict(
    backbone=dict(
        arch='cvt-21',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

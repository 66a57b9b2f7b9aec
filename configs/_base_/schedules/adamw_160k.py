# 160k-iteration schedule with the AdamW recipe used for transformer backbones in mmseg
# (e.g. Swin-T UperNet): lr 6e-5 for 16 images per iteration (8 GPUs x 2), weight decay
# 0.01 except on normalisation layers and CvT's cls token / position embeddings;
# 1500-iteration linear warm-up, then poly decay (power 1) to 0.
max_iters = 160000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=max_iters, by_epoch=False),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'cls_token': dict(decay_mult=0.),
            'pos_embed': dict(decay_mult=0.),
        }))

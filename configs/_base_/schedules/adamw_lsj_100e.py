# ViTDet's schedule (mmdet's projects/ViTDet/configs/lsj-100e_coco-instance.py): 100 epochs
# of COCO at batch 64 = 184375 iterations, lr x0.1 at 88 and 96 epochs (163889, 177546),
# 250-iteration linear warm-up; AdamW lr 1e-4, weight decay 0.1, layer-wise lr decay 0.7
# (LayerDecayOptimWrapperConstructor: the backbone's get_layer_depth gives the same ids as
# ViTDet's constructor, so block i trains at lr x 0.7^(12 - i)), no weight decay on
# biases, norms, pos_embed and the cls token; mixed precision (AmpOptimWrapper).
max_iters = 184375
interval = 5000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval,
                 dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(type='MultiStepLR', begin=0, end=max_iters, by_epoch=False,
         milestones=[163889, 177546], gamma=0.1),
]
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(decay_rate=0.7))
auto_scale_lr = dict(enable=False, base_batch_size=64)

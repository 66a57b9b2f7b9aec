# 1x schedule (12 epochs) with the AdamW recipe used for transformer backbones in mmdet
# (e.g. Swin-T Mask R-CNN): lr 1e-4 for 16 images per iteration (8 GPUs x 2), weight decay
# 0.05 except on normalisation layers (LayerNorm and the BatchNorm of CvT's convolutional
# projections) and CvT's cls token / position embeddings; 1000-iteration linear warm-up,
# lr x0.1 after epochs 8 and 11.
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'cls_token': dict(decay_mult=0.),
            'pos_embed': dict(decay_mult=0.),
        }))
# `tools/train.py --cfg-options auto_scale_lr.enable=True` scales lr to other batch sizes.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# UperNet (+ auxiliary FCN head) with a CvT-13 backbone trained from scratch on the
# built-in shapes data (cvt_dense/datasets/shapes.py; semantic masks: 0 = background,
# 1..4 = circle, square, triangle, star), sized for a 2-core CPU: no resizing, 64-channel
# heads, 1000 iterations of 2 images. Measured on 2 CPU cores: mIoU 33.8% in 10 minutes,
# evaluation included. `tools/demo.py --task seg` generates the data and runs it. Override
# anything with --cfg-options, e.g. train_cfg.max_iters=4 train_dataloader.dataset.indices=8.
_base_ = ['../_base_/models/upernet_cvt.py', '../_base_/default_runtime_seg.py']

data_root = 'data/shapes/'
# = cvt_dense.datasets.SEMANTIC_CLASSES / SEMANTIC_PALETTE
classes = ('background', 'circle', 'square', 'triangle', 'star')
palette = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25]]
num_classes = len(classes)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size_divisor=32),
    backbone=dict(drop_path_rate=0.0, conv_proj_norm_cfg=norm_cfg, init_cfg=None),
    decode_head=dict(channels=64, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(channels=64, num_classes=num_classes, norm_cfg=norm_cfg))

# Images are already small (128-192 px): no resizing; batches are padded to 32.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),  # reduce_zero_label comes from the dataset (False)
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# tools/test.py --tta: mmseg's multi-scale + flip test (configs/_base_/datasets/ade20k.py),
# scales relative to each image's own size.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale_factor=r, keep_ratio=True)
              for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)],
             [dict(type='RandomFlip', prob=0., direction='horizontal'),
              dict(type='RandomFlip', prob=1., direction='horizontal')],
             [dict(type='LoadAnnotations')],
             [dict(type='PackSegInputs')],
         ]),
]
dataset_type = 'BaseSegDataset'
metainfo = dict(classes=classes, palette=palette)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='train', seg_map_path='semantic/train'),
                 img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 data_prefix=dict(img_path='val', seg_map_path='semantic/val'),
                 img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 1000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

base_lr = 1e-3
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=0.01,
                   fused=True),  # fused: ~6x faster steps on the CPU
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'cls_token': dict(decay_mult=0.0),
                                    'pos_embed': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50, end=max_iters),
]

default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
visualizer = dict(alpha=0.5)
randomness = dict(seed=0)

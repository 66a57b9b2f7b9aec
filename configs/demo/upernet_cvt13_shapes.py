# UperNet (+ auxiliary FCN head) with a CvT-13 backbone trained from scratch on the
# built-in shapes data (semantic masks: 0 = background, 1..4 = shapes), sized for a 2-core
# CPU. `tools/demo.py --task seg` generates the data and runs it; override anything with
# --cfg-options (e.g. train_cfg.max_iters=4, train_dataloader.dataset.indices=8).
default_scope = 'mmseg'
custom_imports = dict(imports=['cvt_dense'], allow_failed_imports=False)

data_root = 'data/shapes/'
# = cvt_dense.datasets.SEMANTIC_CLASSES / SEMANTIC_PALETTE
classes = ('background', 'circle', 'square', 'triangle', 'star')
palette = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25]]
num_classes = len(classes)
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0, seg_pad_val=255,
        size_divisor=32),
    backbone=dict(
        type='CvT', arch='cvt-13', out_indices=(0, 1, 2), out_norm=True, extra_level=False,
        drop_path_rate=0.0, frozen_stages=-1, norm_eval=False, with_cp=False, init_cfg=None),
    decode_head=dict(
        type='UPerHead', in_channels=[64, 192, 384], in_index=[0, 1, 2],
        pool_scales=(1, 2, 3, 6), channels=64, dropout_ratio=0.1, num_classes=num_classes,
        norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead', in_channels=192, in_index=1, channels=64, num_convs=1,
        concat_input=False, dropout_ratio=0.1, num_classes=num_classes, norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

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

base_lr = 5e-4
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'cls_token': dict(decay_mult=0.0),
                                    'pos_embed': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=50, end=max_iters),
]

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters,
                    max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer',
                  alpha=0.5)
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)

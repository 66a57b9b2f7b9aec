# Mask R-CNN + FPN with a CvT-13 backbone trained from scratch on the built-in shapes data
# (cvt_dense/datasets/shapes.py: 500 train / 100 val images of 96-160 px, 4 classes), sized
# for a 2-core CPU: no resizing, a slim FPN and heads (128 channels), few RPN proposals and
# RoI samples, 3 epochs (750 iterations of 2 images). Measured on 2 CPU cores (2026-12-02):
# bbox mAP 0.334, mask mAP 0.315 in 10.5 minutes, data generation and evaluation
# included. `tools/demo.py --task det` generates the data and runs it. Override anything
# with --cfg-options, e.g. train_cfg.max_epochs=1 train_dataloader.dataset.indices=8.
_base_ = ['../_base_/models/mask-rcnn_cvt_fpn.py', '../_base_/default_runtime_det.py']

data_root = 'data/shapes/'
classes = ('circle', 'square', 'triangle', 'star')  # = cvt_dense.datasets.SHAPE_CLASSES
num_classes = len(classes)
neck_channels = 128

model = dict(
    # From scratch: no pretrained BatchNorm statistics to keep.
    backbone=dict(drop_path_rate=0.0, norm_eval=False, init_cfg=None),
    # Levels 4 and 5 (strides 32, 64) by max-pooling instead of extra convs.
    neck=dict(_delete_=True, type='FPN', in_channels=[64, 192, 384],
              out_channels=neck_channels, num_outs=5),
    rpn_head=dict(in_channels=neck_channels, feat_channels=neck_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=neck_channels),
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=256,
                       num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=neck_channels),
        mask_head=dict(num_convs=2, in_channels=neck_channels,
                       conv_out_channels=neck_channels, num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=1000, max_per_img=100),
        rcnn=dict(sampler=dict(num=32, pos_fraction=0.5))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100), rcnn=dict(max_per_img=20)))

# Images are already small: no resizing (scale_factor 1 keeps the metadata mmdet expects).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale_factor=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=1.0),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# tools/test.py --tta: the image and its horizontal flip.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale_factor=1.0)],
             [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
             [dict(type='LoadAnnotations', with_bbox=True, with_mask=True)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                              'flip', 'flip_direction'))],
         ]),
]
dataset_type = 'CocoDataset'
metainfo = dict(classes=classes)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=8),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val.json',
                     metric=['bbox', 'segm'], format_only=False)
test_evaluator = val_evaluator

max_epochs = 3
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

base_lr = 5e-4
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=0.05,
                   fused=True),  # fused: ~6x faster steps on the CPU
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'cls_token': dict(decay_mult=0.0),
                                    'pos_embed': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=10.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs, T_max=max_epochs,
         eta_min=base_lr * 0.01, convert_to_iter_based=True),
]

default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
log_processor = dict(window_size=20)
randomness = dict(seed=0)

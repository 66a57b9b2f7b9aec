# COCO 2017 instance segmentation with large-scale jitter (LSJ), as ViTDet trains (mmdet's
# projects/ViTDet/configs/lsj-100e_coco-instance.py): flip, resize to 0.1-2.0 x 1024,
# random 1024x1024 crop, pad to 1024x1024; test: longer side 1024, pad to 1024x1024.
# 4 images per GPU (16 GPUs = ViTDet's batch 64). Same layout as coco_instance.py.
_base_ = ['./coco_instance.py']

image_size = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='TestTimeAug',
         transforms=[
             [dict(type='Resize', scale=image_size, keep_ratio=True)],
             [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
             [dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114)))],
             [dict(type='LoadAnnotations', with_bbox=True, with_mask=True)],
             [dict(type='PackDetInputs',
                   meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                              'flip', 'flip_direction'))],
         ]),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=8,
    # Every training image is 1024x1024 after padding: no aspect-ratio grouping.
    batch_sampler=None,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

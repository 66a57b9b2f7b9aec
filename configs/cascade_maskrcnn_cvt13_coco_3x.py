# Cascade Mask R-CNN + FPN, CvT-13 backbone (ImageNet-1k, 224), COCO 2017, 3x schedule with
# multi-scale training and mixed precision, 8 GPUs x 2 images:
#   tools/dist_train.sh configs/cascade_maskrcnn_cvt13_coco_3x.py 8
# Recipe: mmdet's convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-
# 3x_coco.py: mmdet's Cascade Mask R-CNN with three 4conv1fc box heads (SyncBN, GIoU loss
# x10, decoded boxes), DETR's multi-scale crop augmentation, 36 epochs with lr steps at 27
# and 33, AmpOptimWrapper, AdamW lr 2e-4, weight decay 0.05 (none on biases, norms and the
# cls token), layer-wise lr decay.
# Deviations, and why:
# - Layer decay 0.84 instead of 0.7: mmdet's ConvNeXt constructor groups ConvNeXt-T's
#   blocks into 6 layer ids, so its stem trains at 0.7^7 = 8% of the lr; CvT's
#   get_layer_depth gives each of CvT-13's 13 blocks its own id (15 in all), where 0.7 would
#   leave the patch embedding 0.7^14 = 0.7%. 0.84 = 0.7^(7/14) gives the embedding the same
#   8% and spreads the decay over the blocks.
# - Drop path 0.1, the official CvT-13 value (ConvNeXt-T's 0.4 is tuned for ConvNeXt).
# - FPN builds its two extra levels by stride-2 convs on the stride-16 input, as in our
#   Mask R-CNN configs (CvT has three levels, ConvNeXt four).
# The q/k/v BatchNorm keeps its ImageNet statistics (norm_eval=True), as in our Mask R-CNN
# configs (reason in _base_/models/mask-rcnn_cvt_fpn.py).
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    '_base_/datasets/coco_instance_ms-crop.py',
    '_base_/schedules/adamw_3x.py',
    '_base_/default_runtime_det.py',
]
custom_imports = dict(imports=['cvt_dense', 'cvt_dense.tta'], allow_failed_imports=False)
pretrained = 'https://huggingface.co/microsoft/cvt-13/resolve/main/model.safetensors'


def giou_head(target_stds):
    """One stage's 4conv1fc box head, as mmdet's ConvNeXt-T Cascade config."""
    return dict(
        type='ConvFCBBoxHead',
        num_shared_convs=4,
        num_shared_fcs=1,
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                        target_stds=target_stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


model = dict(
    backbone=dict(
        _delete_=True,
        type='CvT',
        arch='cvt-13',
        out_indices=(0, 1, 2),
        out_norm=True,
        drop_path_rate=0.1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[64, 192, 384], add_extra_convs='on_input'),
    roi_head=dict(bbox_head=[
        giou_head([0.1, 0.1, 0.2, 0.2]),
        giou_head([0.05, 0.05, 0.1, 0.1]),
        giou_head([0.033, 0.033, 0.067, 0.067]),
    ]))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    optimizer=dict(lr=2e-4, weight_decay=0.05),
    paramwise_cfg=dict(_delete_=True, decay_rate=0.84))

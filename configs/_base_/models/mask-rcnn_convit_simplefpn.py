# Mask R-CNN with a ConViT backbone (mmdet 3.x). ConViT is a plain ViT: one stride-16 token
# grid. The last block's map goes through SimpleFPN (ViTDet's simple feature pyramid:
# transposed convs up to strides 4 and 8, identity at 16, max pool to 32, and a stride-64
# level by subsampling), so the five outputs have the RPN anchor strides 4..64 and the
# heads are the CvT detector's unchanged.
_base_ = ['./mask-rcnn_cvt_fpn.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConViT',
        arch='convit-small',
        out_indices=(11, ),
        out_norm=True,
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=False,
        with_cp=False),
    neck=dict(
        _delete_=True,
        type='CvtDenseSimpleFPN',
        in_channels=432,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5,
        norm_cfg=dict(type='LN2d')))

# UperNet (+ auxiliary FCN head) with a ConViT backbone (mmseg 1.x), as mmseg's ViT/DeiT
# configs (configs/_base_/models/upernet_vit-b16_ln_mln.py) do: four block outputs (3, 6, 9,
# 12 in the paper's 1-based count: indices 2, 5, 8, 11), all at stride 16, rescaled by
# mmseg's MultiLevelNeck to strides 4, 8, 16, 32 (bilinear 4x and 2x up, identity, 2x down)
# with 1x1 convs that keep the backbone's width (mmseg's DeiT-S: 384 -> 384; ConViT-S:
# 432). The auxiliary head reads the last level (in_index 3, stride 32), as mmseg's ViT
# configs do.
_base_ = ['./upernet_cvt.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ConViT',
        arch='convit-small',
        out_indices=(2, 5, 8, 11),
        out_norm=True,
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=False,
        with_cp=False),
    neck=dict(
        type='MultiLevelNeck',
        in_channels=[432, 432, 432, 432],
        out_channels=432,
        scales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[432, 432, 432, 432], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=432, in_index=3))

# UperNet + MultiLevelNeck with a ConViT-Tiny backbone trained from scratch on the built-in
# shapes data: the CvT demo (upernet_cvt13_shapes.py) with the backbone swapped (blocks
# 2, 5, 8, 11 rescaled to strides 4..32), everything else unchanged.
# `tools/demo.py --task seg --backbone convit` (or `make demo-seg BACKBONE=convit`) runs it.
_base_ = ['./upernet_cvt13_shapes.py']

neck_channels = 64
model = dict(
    backbone=dict(_delete_=True, type='ConViT', arch='convit-tiny', out_indices=(2, 5, 8, 11),
                  drop_path_rate=0.0),
    neck=dict(type='MultiLevelNeck', in_channels=[192] * 4, out_channels=neck_channels,
              scales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[neck_channels] * 4, in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=neck_channels, in_index=2))

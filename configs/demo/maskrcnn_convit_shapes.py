# Mask R-CNN + SimpleFPN with a ConViT-Tiny backbone trained from scratch on the built-in
# shapes data: the CvT demo (maskrcnn_cvt13_shapes.py) with the backbone and neck swapped,
# everything else (data, slim heads, 3 epochs, AdamW) unchanged.
# `tools/demo.py --task det --backbone convit` (or `make demo BACKBONE=convit`) runs it.
_base_ = ['./maskrcnn_cvt13_shapes.py']

model = dict(
    backbone=dict(_delete_=True, type='ConViT', arch='convit-tiny', out_indices=(11, ),
                  drop_path_rate=0.0),
    neck=dict(_delete_=True, type='CvtDenseSimpleFPN', in_channels=192, out_channels=128,
              num_outs=5))

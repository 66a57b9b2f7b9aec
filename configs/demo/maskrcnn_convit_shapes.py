# Mask R-CNN + SimpleFPN with a ConViT-Tiny-sized backbone trained from scratch on the
# built-in shapes data: the CvT demo (maskrcnn_cvt13_shapes.py) with the backbone and neck
# swapped, everything else (data, slim heads, 3 epochs, AdamW) unchanged.
# The demo images are small (96-160 px) and their shapes 15-60 px: with ConViT's 16-px
# patches an object is 1-4 tokens, and from scratch in 750 iterations the RoI head barely
# learned the classes (bbox mAP 0.018). The demo therefore uses 8-px patches (arch dict:
# ConViT-Tiny otherwise), a stride-8 grid, and SimpleFPN's 2x / 1x / 0.5x scales plus two
# pooled levels for strides 4..64.
# `tools/demo.py --task det --backbone convit` (or `make demo BACKBONE=convit`) runs it.
_base_ = ['./maskrcnn_cvt13_shapes.py']

model = dict(
    backbone=dict(_delete_=True, type='ConViT',
                  arch=dict(embed_dims=192, num_heads=4, patch_size=8),
                  out_indices=(11, ), drop_path_rate=0.0),
    neck=dict(_delete_=True, type='SimpleFPN', in_channels=192, out_channels=128,
              scale_factors=(2.0, 1.0, 0.5), num_outs=5))

# A transformer trained from scratch at 2 images per batch wants a smaller lr than CvT's
# convolutions (5e-4 left the RoI head at "all background").
base_lr = 1e-4
optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=3, T_max=3,
         eta_min=base_lr * 0.01, convert_to_iter_based=True),
]

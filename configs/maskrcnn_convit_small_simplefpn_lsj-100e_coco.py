# Mask R-CNN + SimpleFPN, ConViT-S backbone (ImageNet-1k, 224), COCO 2017, ViTDet's recipe:
# 16 GPUs x 4 images (batch 64):
#   tools/dist_train.sh configs/maskrcnn_convit_small_simplefpn_lsj-100e_coco.py 16
# Recipe: mmdet's projects/ViTDet/configs/vitdet_mask-rcnn_vit-b-mae_lsj-100e.py (ViTDet,
# Li et al. 2022): large-scale jitter with 1024x1024 crops, 100 epochs (184375 iterations)
# at batch 64, AdamW lr 1e-4, weight decay 0.1, layer-wise lr decay 0.7, mixed precision,
# simple feature pyramid with LayerNorm, a 2-conv RPN, a 4conv1fc box head and a mask head,
# both with LayerNorm, drop path 0.1, inputs padded to 1024x1024.
# Where it differs, and why:
# - The backbone is ConViT-S with supervised ImageNet-1k weights, not an MAE ViT-B; its
#   attention is global in every block (ConViT has no window attention or relative
#   position bias to switch on: its GPSA blocks hold their own positional attention).
# - ViTDet's Fp16CompresssionHook (fp16 gradients in the DDP all-reduce, a speed measure)
#   lives in mmdet's projects/ folder, which the mmdet package does not ship; it is left
#   out, so gradients are reduced in fp32.
# - Checkpoints: our ResumableCheckpointHook every 5000 iterations (ViTDet: CheckpointHook,
#   same interval).
# ConViT-S at 1024x1024 is 4096 tokens per block; use --cfg-options
# model.backbone.with_cp=True if 4 images do not fit in a GPU's memory.
_base_ = [
    '_base_/models/mask-rcnn_convit_simplefpn.py',
    '_base_/datasets/coco_instance_lsj.py',
    '_base_/schedules/adamw_lsj_100e.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'https://huggingface.co/timm/convit_small.fb_in1k/resolve/main/model.safetensors'
image_size = (1024, 1024)
norm_cfg = dict(type='LN2d', requires_grad=True)

model = dict(
    data_preprocessor=dict(
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]),
    backbone=dict(
        arch='convit-small',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=432, norm_cfg=norm_cfg),
    rpn_head=dict(num_convs=2),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', conv_out_channels=256,
                       norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=5000, max_keep_ckpts=5))
log_processor = dict(by_epoch=False)

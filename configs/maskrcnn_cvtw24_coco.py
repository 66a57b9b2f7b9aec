# Mask R-CNN + FPN, CvT-W24 backbone (the paper's headline model: ImageNet-22k, fine-tuned
# at 384), COCO 2017, 1x schedule, 8 GPUs x 2 images:
#   tools/dist_train.sh configs/maskrcnn_cvtw24_coco.py 8
# Recipe: as maskrcnn_cvt13_coco.py (mmdet's swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py),
# with W24's widths 192/768/1024 into FPN and drop path 0.3, the official W24 value
# (experiments/imagenet/cvt/cvt-w24-384x384.yaml: DROP_PATH_RATE [0, 0, 0.3]: stage 3
# only).
# Gradient checkpointing is on: 277M parameters and a 192-wide global attention at stride
# 4 (it costs ~30% more time; with_cp=False where memory allows).
# The q/k/v BatchNorm keeps its ImageNet statistics (norm_eval=True, as mmdet's ResNets;
# reason in _base_/models/mask-rcnn_cvt_fpn.py).
# The weights are Hugging Face's microsoft/cvt-w24-384-22k (pytorch_model.bin, 1.1 GB, a
# plain state dict; CvT has no position embedding, so 384 weights serve any input size).
_base_ = './maskrcnn_cvt13_coco.py'
pretrained = 'https://huggingface.co/microsoft/cvt-w24-384-22k/resolve/main/pytorch_model.bin'

model = dict(
    backbone=dict(
        arch='cvt-w24',
        drop_path_rate=0.3,
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 768, 1024]))

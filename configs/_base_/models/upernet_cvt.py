# UperNet (+ auxiliary FCN head) with a CvT backbone (mmseg 1.x). UPerHead takes any number
# of levels: lateral 1x1 convs on all but the last, the pyramid pooling module (PPM) on the
# last. With CvT's three levels (strides 4/8/16, in_index [0, 1, 2]) the PPM runs on the
# stride-16 map of the deepest stage (32x32 for a 512 crop, so pool scales 1/2/3/6 all
# fit) and the fused output is at stride 4, as with four levels. Nothing untrained is added
# between the ImageNet weights and the head; `extra_level=True` with out_indices
# (0, 1, 2, 3) is the 4-level alternative (see docs/custom_configs.md).
# The auxiliary head sits on the stride-16 level, like Swin-T's (its 384-channel stage 3).
custom_imports = dict(imports=['cvt_dense'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)  # heads and backbone; BN in one process
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='CvT',
        arch='cvt-13',
        out_indices=(0, 1, 2),
        out_norm=True,
        extra_level=False,
        drop_path_rate=0.1,  # peak of the official schedule: stage 3 only, linear in it
        # CvT's only BatchNorm (after the depth-wise q/k/v convs) synced over all GPUs, as
        # mmseg does for its BN backbones (ResNet: SyncBN, norm_eval=False): statistics of
        # the 8 x 2 fixed-size crops adapt the ImageNet ones to ADE20K. One process: BN.
        conv_proj_norm_cfg=norm_cfg,
        frozen_stages=-1,
        norm_eval=False,
        with_cp=False),
    decode_head=dict(
        type='UPerHead',
        in_channels=[64, 192, 384],
        in_index=[0, 1, 2],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=384,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

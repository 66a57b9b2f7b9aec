# Runtime settings for mmdet configs (hooks, logging, visualisation).
default_scope = 'mmdet'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='ResumableCheckpointHook', interval=1, max_keep_ckpts=3,
                    latest_seconds=1800),  # + latest.pth every 30 minutes
    # Long runs (docs/getting_started.md): SIGTERM/SIGINT write latest.pth and exit 143/130;
    # NaN/Inf losses are skipped, 5 in a row stop the run; unreadable samples are named
    # (bad_samples.skip=True: skipped and counted, at most 1%).
    preemption=dict(type='PreemptionHook'),
    nonfinite_guard=dict(type='NonFiniteGuardHook', max_consecutive=5),
    # With compile=True (mmengine's torch.compile of train_step) the optimizer update runs
    # eagerly; without it, nothing.
    compiled_train_step=dict(type='CompiledTrainStepHook'),
    bad_samples=dict(type='BadSampleHook', skip=False, max_skip_fraction=0.01),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False

# tools/test.py --tta: merges the views of tta_pipeline (configs/_base_/datasets/) with
# mmdet's DetTTAModel rule (class-wise NMS of the pooled boxes) and keeps each survivor's
# mask; mmdet 3.3's DetTTAModel refuses masks (cvt_dense/tta.py).
tta_model = dict(
    type='InstanceSegTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))

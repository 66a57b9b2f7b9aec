# Runtime settings for mmseg configs (hooks, logging, visualisation).
default_scope = 'mmseg'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='ResumableCheckpointHook', by_epoch=False, interval=16000,
                    max_keep_ckpts=3, latest_seconds=1800),  # + latest.pth every 30 minutes
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
    visualization=dict(type='SegVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False

tta_model = dict(type='SegTTAModel')

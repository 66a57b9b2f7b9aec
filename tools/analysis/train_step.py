"""Time and peak memory of whole-model training steps of a detection or segmentation config,
on synthetic data of a chosen size (no dataset needed).

    python tools/analysis/train_step.py configs/maskrcnn_convit_small_coco.py --shape 800 1344
    python tools/analysis/train_step.py configs/upernet_convit_small_ade20k.py --shape 512 512
    python tools/analysis/train_step.py configs/maskrcnn_cvt13_coco.py \
        --cfg-options "model.backbone.kv_strides=(4,2,2)"

Each step is forward + backward + optimizer step of the config's model and optimizer, with
random weights (``init_cfg`` is dropped) on a batch of random images with a few random
boxes and masks (detection) or a random label map (segmentation).

``--compile`` measures what mmengine's ``compile=True`` runs: ``model.train_step`` wrapped in
``torch.compile`` (as ``Runner`` does; inductor unless ``--compile-backend``), with the
optimizer update kept eager (``CompiledTrainStepHook``, in the shipped configs). The first
step then traces and compiles, and steps whose sizes differ (Mask R-CNN's RoIs) recompile
until dynamo treats those sizes as dynamic: the warm-up steps (``--warmup``) minus as many
median steps are printed as the compile time, from an empty inductor cache (a cold
compile). Every timed step is listed, so a recompile among them shows.

    python tools/analysis/train_step.py configs/demo/maskrcnn_cvt13_shapes.py \
        --shape 384 384 --batch 2 [--compile]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runnable from a checkout

from cvt_dense.analysis.builder import add_model_args, read_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=(800, 1344), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--steps', type=int, default=2, help='timed steps after the warm-up')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed steps first (compiled: where it compiles, and '
                        'recompiles for the sizes that vary, e.g. the RoIs of Mask R-CNN)')
    parser.add_argument('--compile', action='store_true',
                        help="compile train_step as mmengine's compile option does")
    parser.add_argument('--compile-backend', default='inductor',
                        help='torch.compile backend for --compile (default inductor)')
    parser.add_argument('--threads', type=int, help='torch threads (default: torch\'s)')
    add_model_args(parser)
    return parser.parse_args(argv)


def synthetic_batch(scope: str, shape, batch: int, num_classes: int):
    import torch
    height, width = shape
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8))
        meta = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=shape,
                    scale_factor=(1., 1.))
        if scope == 'mmdet':
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            from mmengine.structures import InstanceData
            boxes = torch.tensor([[0.1, 0.1, 0.4, 0.5], [0.5, 0.3, 0.9, 0.8]]) * torch.tensor(
                [width, height, width, height])
            masks = torch.zeros(2, height, width, dtype=torch.uint8)
            for mask, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
                mask[y1:y2, x1:x2] = 1
            sample = DetDataSample(metainfo=meta)
            sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1]),
                                               masks=BitmapMasks(masks.numpy(), height, width))
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            sample = SegDataSample(metainfo=meta)
            sample.gt_sem_seg = PixelData(
                data=torch.randint(0, num_classes, (1, height, width)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def read_peak_rss_gb() -> float:
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM:')) / 1e6


def main(argv=None):
    args = parse_args(argv)
    if args.compile:  # a cold compile: no kernels from an earlier run (read at import)
        os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', tempfile.mkdtemp(prefix='inductor_'))
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    import cvt_dense  # noqa: F401  (registers the backbones)
    from cvt_dense.runtime.hooks.compiled_train_step import keep_update_eager
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = read_config(args.config, args.cfg_options)
    init_default_scope(cfg.default_scope)
    registry = __import__(f'{cfg.default_scope}.registry', fromlist=['MODELS']).MODELS
    cfg.model.backbone.pop('init_cfg', None)
    model = registry.build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    train_step = model.train_step
    if args.compile:
        train_step = torch.compile(train_step, backend=args.compile_backend)
        keep_update_eager(optim_wrapper)
    head = cfg.model.get('decode_head') or cfg.model.roi_head.bbox_head
    data = synthetic_batch(cfg.default_scope, tuple(args.shape), args.batch, head.num_classes)
    times = []
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        train_step(data, optim_wrapper)
        times.append(time.perf_counter() - start)
    warmup, timed = times[:args.warmup], times[args.warmup:]
    median = statistics.median(timed)
    mode = f'compiled ({args.compile_backend})' if args.compile else 'eager'
    # What the warm-up took beyond as many ordinary steps.
    compile_time = (f', compile {sum(warmup) - len(warmup) * median:.1f} s (warm-up '
                    f'{", ".join(f"{t:.1f}" for t in warmup)} s)') if args.compile else ''
    # Every timed step is listed: a compiled one far above the others recompiled.
    steps = ', '.join(f'{t:.2f}' for t in timed)
    overrides = ''.join(f' {key}={value}' for key, value in (args.cfg_options or {}).items())
    print(f'{os.path.basename(args.config)}{overrides}: {args.batch} x {args.shape[0]}x'
          f'{args.shape[1]}, {mode}, {torch.get_num_threads()} threads: train step {median:.2f} s (median; steps '
          f'{steps} s){compile_time}, peak RSS {read_peak_rss_gb():.2f} GB')
    return timed


if __name__ == '__main__':
    main()

"""Whole-model inference latency, images/s and peak memory of an mmdet / mmseg config.

    python tools/analysis/benchmark.py CONFIG [CHECKPOINT] [--shape H W] [--batch-size N]
        [--repeats N] [--warmup N] [--device cpu|cuda] [--amp bf16|fp16] [--threads N]

Each timed pass is ``model.test_step`` on random images of size H x W (default: the
config's test size): preprocessing, forward and post-processing (NMS, mask pasting,
resizing). Reports the median after the warm-up passes; GPU work is synchronised.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # cvt_dense without install

from cvt_dense.analysis.benchmark import AMP_DTYPES, benchmark_model  # noqa: E402
from cvt_dense.analysis.builder import (add_model_args, build_model,  # noqa: E402
                                        config_test_shape, read_config, synthetic_batch)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='mmdet or mmseg config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (default: random init)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=10, help='timed passes')
    parser.add_argument('--warmup', type=int, default=2, help='untimed passes first')
    parser.add_argument('--device', default=None,
                        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--amp', choices=sorted(AMP_DTYPES),
                        help='autocast: the whole model on a GPU, the backbone on a CPU')
    parser.add_argument('--threads', type=int, help='torch CPU threads')
    add_model_args(parser, shape_help='image size (default: the config\'s test size)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = read_config(args.config, args.cfg_options)
    shape = tuple(args.shape) if args.shape else config_test_shape(cfg)[0]
    model = build_model(cfg, args.checkpoint, device=device)
    result = benchmark_model(model, synthetic_batch(cfg, shape, args.batch_size),
                             repeats=args.repeats, warmup=args.warmup, amp=args.amp)
    where = (torch.cuda.get_device_name(device) if device.startswith('cuda')
             else f'cpu, {torch.get_num_threads()} threads')
    print(f'{os.path.basename(args.config)}: {args.batch_size} x {shape[0]}x{shape[1]}, '
          f'{where}, {args.amp or "fp32"}, {args.repeats} passes after {args.warmup} warm-up')
    print(f'latency {result.latency_s * 1e3:.1f} ms (median; min {min(result.times_s) * 1e3:.1f}, '
          f'max {max(result.times_s) * 1e3:.1f}), {result.images_per_s:.2f} images/s, '
          f'peak memory {result.peak_memory_bytes / 2 ** 30:.2f} GiB ({result.memory_kind})')
    return result


if __name__ == '__main__':
    main()

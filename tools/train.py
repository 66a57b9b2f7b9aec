"""Train an mmdet or mmseg model (e.g. Mask R-CNN or UperNet with a CvT backbone).

    python tools/train.py configs/maskrcnn_cvt13_coco.py [--work-dir DIR] [--resume [CKPT]]
        [--amp] [--tensorboard] [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

A thin wrapper over mmengine's Runner: the config's ``default_scope`` (mmdet or mmseg)
selects the library. Runs on the GPU when there is one, else on the CPU. For several GPUs
or machines use tools/dist_train.sh (torchrun).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cvt_dense without install

from cvt_dense.cli import (add_common_args, apply_resume, build_runner,  # noqa: E402
                              end_distributed_process, enable_amp, enable_tensorboard,
                              load_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model from an mmdet/mmseg config')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume', nargs='?', const='auto', metavar='CHECKPOINT',
        help='resume training (iteration, optimizer, schedulers): from CHECKPOINT, or '
        'without a value from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 AMP on a GPU, bfloat16 autocast on a CPU')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also log scalars to TensorBoard event files (needs tensorboard)')
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args)
    if args.amp:
        enable_amp(cfg)
    if args.tensorboard:
        enable_tensorboard(cfg)
    apply_resume(cfg, args.resume)

    runner = build_runner(cfg)
    runner.train()
    end_distributed_process()


if __name__ == '__main__':
    main()

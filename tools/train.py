"""Train an mmdet or mmseg model (e.g. Mask R-CNN or UperNet with a CvT backbone).

    python tools/train.py configs/maskrcnn_cvt13_coco.py [--work-dir DIR] [--resume [CKPT]]
        [--amp] [--tensorboard] [--force] [--cfg-options KEY=VALUE ...]
        [--launcher none|pytorch|slurm]

A thin wrapper over mmengine's Runner: the config's ``default_scope`` (mmdet or mmseg)
selects the library. Runs on the GPU when there is one, else on the CPU. For several GPUs
or machines use tools/dist_train.sh (torchrun). One run per work dir (its train.lock names
the run); a checkpoint that cannot be written ends the run with status 1 and one line
saying why (docs/getting_started.md, "Long runs").
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cvt_dense without install

from cvt_dense.cli import (add_common_args, apply_resume, build_runner,  # noqa: E402
                           end_distributed_process, enable_amp, enable_tensorboard,
                           hold_work_dir, load_config, train_until_done)


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
    parser.add_argument('--force', action='store_true',
                        help="start even if the work dir's train.lock names another run "
                        'that cannot be checked (e.g. on another host)')
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args)
    if args.amp:
        enable_amp(cfg)
    if args.tensorboard:
        enable_tensorboard(cfg)
    with hold_work_dir(cfg, args.force):
        apply_resume(cfg, args.resume)
        runner = build_runner(cfg)
        status = train_until_done(runner)
    end_distributed_process(status)
    if status:
        sys.exit(status)


if __name__ == '__main__':
    main()

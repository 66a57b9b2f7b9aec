"""Evaluate a checkpoint: COCO bbox/segm mAP (mmdet configs) or mIoU (mmseg configs).

    python tools/test.py CONFIG CHECKPOINT [--out FILE.pkl|DIR] [--show-dir DIR] [--tta]
        [--work-dir DIR] [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

A thin wrapper over mmengine's Runner. The metrics are logged by the Runner and printed
at the end as one JSON line (``metrics: {...}``). ``--out`` saves the predictions,
``--show-dir`` writes pictures of them, ``--tta`` tests with the config's test-time
augmentation (``tta_pipeline`` and ``tta_model``, as mmdet's and mmseg's ``--tta``). For
several GPUs use tools/dist_test.sh.
"""
import argparse
import json
import numbers
import sys
from pathlib import Path

from mmengine.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cvt_dense without install

from cvt_dense.cli import (add_common_args, add_prediction_dump,  # noqa: E402
                              build_runner, check_prediction_out, end_distributed_process,
                              enable_show_dir, load_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a checkpoint')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='save predictions: a .pkl file (mmdet: masks as RLE); for mmseg also '
        'a folder, which receives one label PNG per image')
    parser.add_argument('--show-dir', help='write pictures of the predictions to this folder')
    parser.add_argument(
        '--tta', action='store_true',
        help="test-time augmentation: the config's tta_pipeline (e.g. multi-scale + flip for "
        'mmseg, flip for mmdet) and tta_model, which merges the views')
    add_common_args(parser)
    return parser.parse_args(argv)


def enable_tta(cfg: Config) -> None:
    """``--tta``: test through ``cfg.tta_model`` wrapping the model, on ``cfg.tta_pipeline``.

    The same edit as mmdet's and mmseg's ``tools/test.py --tta``; unlike mmdet's, a config
    without ``tta_model``/``tta_pipeline`` is refused rather than given silent defaults.
    """
    missing = [key for key in ('tta_model', 'tta_pipeline') if cfg.get(key) is None]
    if missing:
        raise ValueError(f'--tta needs {" and ".join(missing)} in the config (see '
                         f'configs/_base_/datasets/ and configs/_base_/default_runtime_*.py)')
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:  # wrappers such as ConcatDataset / RepeatDataset
        dataset = dataset.dataset
    dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def main(argv=None):
    args = parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args)
    cfg.load_from = args.checkpoint
    if args.tta:
        enable_tta(cfg)
    if args.out:
        check_prediction_out(cfg, args.out)
    show_dir = enable_show_dir(cfg, args.show_dir) if args.show_dir else None

    runner = build_runner(cfg)
    if args.out:
        add_prediction_dump(runner, cfg, args.out)
    metrics = runner.test()
    if runner.rank == 0:
        # mmseg reports numpy float32 values: make them plain floats for JSON.
        print('metrics: ' + json.dumps({k: float(v) for k, v in metrics.items()
                                        if isinstance(v, numbers.Real)}))
        if show_dir:
            print(f'pictures written to {show_dir}')
        if args.out:
            print(f'predictions written to {args.out}')
    end_distributed_process()


if __name__ == '__main__':
    main()

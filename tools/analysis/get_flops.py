"""Parameters and MACs of a whole model (backbone, neck, heads, total), attention included.

    python tools/analysis/get_flops.py CONFIG [--shape H W] [--cfg-options KEY=VALUE ...]

No dataset is read: one random image of size H x W (default: the config's test size, e.g.
800x1333 for COCO, 512x2048 for ADE20K) goes through the model's data preprocessor
(padding included) and its ``mode='tensor'`` forward pass. Fused attention kernels (CPU
and GPU) are counted, unlike mmdet's and mmseg's get_flops.py.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # cvt_dense without install

from cvt_dense.analysis.builder import (add_model_args, build_model,  # noqa: E402
                                        config_test_shape, read_config, synthetic_batch)
from cvt_dense.analysis.complexity import format_table, model_complexity  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='mmdet or mmseg config file')
    add_model_args(parser, shape_help='input image size (default: the config\'s test size)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = read_config(args.config, args.cfg_options)
    if args.shape:
        shape, source = tuple(args.shape), '--shape'
    else:
        shape, source = config_test_shape(cfg)
    model = build_model(cfg)
    rows, input_shape = model_complexity(model, synthetic_batch(cfg, shape))
    print(f'{os.path.basename(args.config)}: image {shape[0]}x{shape[1]} ({source}), '
          f'model input {input_shape[2]}x{input_shape[3]} after padding')
    print(format_table(rows))
    return rows


if __name__ == '__main__':
    main()

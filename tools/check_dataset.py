"""Scan the datasets of a config before a long run.

    python tools/check_dataset.py CONFIG [--cfg-options KEY=VALUE ...] [--show N]
        [--show-dir DIR] [--first N]

Checks the train, val and test datasets of an mmdet (COCO-format) or mmseg config:
unreadable, empty or truncated images, image sizes that differ from the annotations,
degenerate or out-of-image boxes, empty polygons, unknown category ids, duplicate ids,
label PNG values outside the classes (255, ignore, excepted). Prints a summary with the
first offenders of each kind and exits with status 1 when anything is wrong. ``--show N``
writes N pictures per dataset with their annotations drawn.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cvt_dense without install

from mmengine.config import Config, DictAction  # noqa: E402

from cvt_dense.datasets.checks import format_report  # noqa: E402
from cvt_dense.datasets.checks.scan import scan_config, show_samples  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Check the datasets of a config')
    parser.add_argument('config', help='config file (mmdet or mmseg)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries (as in tools/train.py)')
    parser.add_argument('--show', type=int, default=0, metavar='N',
                        help='write N pictures per dataset with the annotations drawn')
    parser.add_argument('--show-dir', default='work_dirs/check_dataset',
                        help='folder of the --show pictures')
    parser.add_argument('--first', type=int, default=5, metavar='N',
                        help='offenders listed per kind of problem')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    results = scan_config(cfg)
    for result in results:
        print(format_report(result.name, result.num_samples, result.problems, args.first))
    if args.show:
        pictures = show_samples(results, args.show, args.show_dir)
        print(f'{len(pictures)} pictures written to {args.show_dir}')
    total = sum(len(r.problems) for r in results)
    print(f'{total} problems' if total else 'all datasets passed')
    return 1 if total else 0


if __name__ == '__main__':
    sys.exit(main())

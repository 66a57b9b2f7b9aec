"""Plot training curves (losses, learning rate, metrics) of one or more runs into a PNG.

    python tools/analysis/plot_curves.py WORK_DIR [WORK_DIR ...] --keys loss coco/bbox_mAP
        [--x iter|epoch] [--out curves.png]

Reads mmengine's ``<timestamp>/vis_data/scalars.json`` in each work dir (a resumed run's
logs are joined); one panel per key, the runs overlaid.
"""
import argparse
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # cvt_dense without install

from cvt_dense.analysis.curves import X_AXES, load_scalars, plot_curves  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR',
                        help='work dirs (or scalars.json files) of the runs')
    parser.add_argument('--keys', nargs='+', default=['loss'],
                        help='logged scalars, e.g. loss lr coco/bbox_mAP mIoU')
    parser.add_argument('--x', choices=X_AXES, default='iter', help='x axis')
    parser.add_argument('--out', help='output PNG (default: curves.png in the first work dir)')
    return parser.parse_args(argv)


def run_labels(paths):
    """Short labels: the folder names, or the whole paths where names repeat."""
    names = [osp.basename(osp.normpath(p)) for p in paths]
    return names if len(set(names)) == len(names) else list(paths)


def main(argv=None):
    args = parse_args(argv)
    runs = {label: load_scalars(path)
            for label, path in zip(run_labels(args.work_dirs), args.work_dirs)}
    first = args.work_dirs[0]
    out = args.out or osp.join(first if osp.isdir(first) else osp.dirname(first),
                               'curves.png')
    plot_curves(runs, args.keys, out, x=args.x)
    print(f'curves of {", ".join(args.keys)} for {len(runs)} run(s) written to {out}')
    return out


if __name__ == '__main__':
    main()

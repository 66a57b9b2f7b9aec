"""Export a config's backbone to ONNX (dynamic batch, height, width); optionally verify it.

    python tools/deploy/export_onnx.py CONFIG [CHECKPOINT] --out FILE.onnx [--shape H W]
        [--verify] [--verify-shapes N H W [N H W ...]] [--cfg-options KEY=VALUE ...]

CHECKPOINT is an mmengine checkpoint of the whole model (its ``backbone.*`` weights are
used); without it the backbone is randomly initialised. ``--verify`` runs the graph in
onnxruntime at sizes other than the export size and prints the largest relative
difference from PyTorch; the tool fails above 1e-4. Needs ``pip install -e '.[onnx]'``.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # cvt_dense without install

from cvt_dense.analysis.builder import add_model_args, build_model, read_config  # noqa: E402
from cvt_dense.deploy import export_backbone_onnx, verify_onnx  # noqa: E402

TOLERANCE = 1e-4
# Other than the export size: a non-square one, an odd one, and a batch of two.
VERIFY_SHAPES = ((1, 256, 384), (1, 199, 263), (2, 320, 320))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='mmdet or mmseg config file')
    parser.add_argument('checkpoint', nargs='?', help='whole-model checkpoint (optional)')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument('--shape', type=int, nargs=2, default=(224, 224), metavar=('H', 'W'),
                        help='example input size for tracing (default 224 224)')
    parser.add_argument('--verify', action='store_true',
                        help='compare onnxruntime with PyTorch at other sizes')
    parser.add_argument('--verify-shapes', type=int, nargs='+', metavar='N H W',
                        help=f'inputs for --verify, as N H W triples (default {VERIFY_SHAPES})')
    add_model_args(parser)
    args = parser.parse_args(argv)
    if args.verify_shapes is not None and len(args.verify_shapes) % 3:
        parser.error(f'--verify-shapes takes N H W triples, got {args.verify_shapes}')
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = read_config(args.config, args.cfg_options)
    backbone = build_model(cfg, args.checkpoint).backbone
    in_channels = getattr(backbone, 'in_channels', 3)
    names = export_backbone_onnx(backbone, args.out, args.shape, in_channels)
    print(f'{type(backbone).__name__} exported to {args.out} (outputs {", ".join(names)}; '
          f'traced at {args.shape[0]}x{args.shape[1]}; dynamic batch, height and width; '
          f'standard ONNX ops only)')
    if not args.verify:
        return None
    flat = args.verify_shapes or [v for s in VERIFY_SHAPES for v in s]
    shapes = [tuple(flat[i:i + 3]) for i in range(0, len(flat), 3)]
    results = verify_onnx(backbone, args.out, shapes, in_channels)
    for r in results:
        outs = ', '.join('x'.join(map(str, s)) for s in r['output_shapes'])
        print(f'input {"x".join(map(str, r["shape"]))}: outputs {outs}; max relative '
              f'difference from PyTorch {r["rel_diff"]:.2e}')
    worst = max(r['rel_diff'] for r in results)
    verdict = 'OK' if worst <= TOLERANCE else 'FAILED'
    print(f'verify {verdict}: largest relative difference {worst:.2e} (tolerance {TOLERANCE:g})')
    if worst > TOLERANCE:
        sys.exit(1)
    return results


if __name__ == '__main__':
    main()

"""How local each attention head is, per checkpoint and across checkpoints (ConViT paper).

    python tools/analysis/locality.py CONFIG CKPT [CKPT ...] [--num-images 2]
        [--images IMAGE ...] [--unit px|cells] [--out-dir DIR] [--device cpu|cuda]
        [--cfg-options KEY=VALUE ...]

For each checkpoint, the nonlocality (mean attention distance, in input pixels or in
cells of each layer's query grid) of every attention layer and head, and the gates of
ConViT's GPSA layers, measured on the first ``--num-images`` validation images of the
config (the probe ``LocalityHook`` logs during training), or on ``--images`` at their own
size. Writes ``locality.csv`` (one row per checkpoint, layer and head),
``locality_<checkpoint>.png`` (layer x head heatmaps) and ``locality_evolution.png``.
"""
import argparse
import os
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # cvt_dense without install

from cvt_dense.analysis.builder import (add_model_args, build_model,  # noqa: E402
                                        dataset_batches, load_model_checkpoint, make_batch,
                                        read_config)
from cvt_dense.analysis.locality import measure_locality  # noqa: E402
from cvt_dense.analysis.locality_report import (UNITS, CheckpointLocality,  # noqa: E402
                                                draw_evolution, draw_heatmaps, write_csv)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='mmdet or mmseg config file')
    parser.add_argument('checkpoints', nargs='+', metavar='CKPT',
                        help='checkpoints of the config\'s model, in training order')
    parser.add_argument('--num-images', type=int, default=2,
                        help='validation images of the probe (default 2, as LocalityHook)')
    parser.add_argument('--images', nargs='+', metavar='IMAGE',
                        help='measure on these image files (at their own size) instead')
    parser.add_argument('--unit', choices=UNITS, default='px',
                        help='pictures in input pixels or in cells of the query grid '
                        '(ConViT: patches, the paper\'s unit); the CSV has both')
    parser.add_argument('--out-dir', help='output folder (default: locality/ next to the '
                        'first checkpoint)')
    parser.add_argument('--device', default='cpu', help='torch device (default cpu)')
    add_model_args(parser)
    return parser.parse_args(argv)


def probe_batches(cfg, args):
    if not args.images:
        return dataset_batches(cfg.val_dataloader, args.num_images)
    import mmcv
    import torch
    missing = [path for path in args.images if not osp.isfile(path)]
    if missing:
        raise FileNotFoundError(f'image files not found: {missing}')
    return [make_batch(cfg, [torch.from_numpy(mmcv.imread(path)).permute(2, 0, 1)
                             .contiguous()]) for path in args.images]


def unique_labels(paths):
    """Checkpoint file stems, numbered where two are the same."""
    stems = [Path(path).stem for path in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f'{i}_{stem}' for i, stem in enumerate(stems)]


def main(argv=None):
    args = parse_args(argv)
    import torch
    cfg = read_config(args.config, args.cfg_options)
    model = build_model(cfg, device=args.device)  # the default scope is set from here on
    batches = probe_batches(cfg, args)
    with torch.no_grad():
        images = [model.data_preprocessor(batch, False)['inputs'] for batch in batches]
    results = []
    for path, label in zip(args.checkpoints, unique_labels(args.checkpoints)):
        meta = load_model_checkpoint(model, path)
        model.to(args.device)
        layers = measure_locality(model.backbone, images)
        results.append(CheckpointLocality(label, meta.get('iter'), layers))
        print(f'{label} (iter {meta.get("iter", "?")}), {len(images)} images: ' + ', '.join(
            f'{layer.name} {layer.nonlocality.mean():.1f} px'
            + ('' if layer.gate is None else f' gate {layer.gate.mean():.2f}')
            for layer in layers))

    out_dir = args.out_dir or osp.join(osp.dirname(osp.abspath(args.checkpoints[0])),
                                       'locality')
    os.makedirs(out_dir, exist_ok=True)
    files = [write_csv(results, osp.join(out_dir, 'locality.csv'))]
    files += [draw_heatmaps(result, osp.join(out_dir, f'locality_{result.label}.png'),
                            args.unit) for result in results]
    files.append(draw_evolution(results, osp.join(out_dir, 'locality_evolution.png'),
                                args.unit))
    print('written: ' + ', '.join(files))
    return results, files


if __name__ == '__main__':
    main()

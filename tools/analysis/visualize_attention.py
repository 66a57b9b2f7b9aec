"""Draw where a query pixel attends in each stage of the backbone, over the image.

    python tools/analysis/visualize_attention.py IMAGE CONFIG [CHECKPOINT] --point X Y
        [--out-dir DIR] [--per-head] [--all-layers] [--cfg-options KEY=VALUE ...]

For CvT: the attention row of the query token at pixel (X, Y) in the last block of each
stage (``--all-layers``: every block), averaged over heads; ``--per-head`` adds one
picture per layer with each head. For ConViT: the positional attention of the query in
every GPSA layer with its gate sigmoid(g) (the paper's locality analysis). The image goes through the config's data preprocessor
(normalisation, padding) at its own size. Writes PNGs and prints their paths.
"""
import argparse
import os
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # cvt_dense without install

from cvt_dense.analysis.attention_maps import (check_point, draw_attention,  # noqa: E402
                                               last_layer_per_stage, query_attention)
from cvt_dense.analysis.builder import (add_model_args, build_model,  # noqa: E402
                                        make_batch, read_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image', help='input image')
    parser.add_argument('config', help='mmdet or mmseg config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (default: random init)')
    parser.add_argument('--point', type=float, nargs=2, required=True, metavar=('X', 'Y'),
                        help='query pixel: column X, row Y')
    parser.add_argument('--out-dir', default='attention', help='folder for the PNGs')
    parser.add_argument('--per-head', action='store_true',
                        help='also draw every head of each layer')
    parser.add_argument('--all-layers', action='store_true',
                        help='every attention layer, not only the last of each stage')
    add_model_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.image):
        raise FileNotFoundError(f'image file not found: {args.image}')
    import mmcv
    import torch
    image_bgr = mmcv.imread(args.image)  # what LoadImageFromFile gives the preprocessor
    check_point(args.point, image_bgr.shape[:2])
    cfg = read_config(args.config, args.cfg_options)
    model = build_model(cfg, args.checkpoint)
    batch = make_batch(cfg, [torch.from_numpy(image_bgr).permute(2, 0, 1).contiguous()])
    with torch.no_grad():
        inputs = model.data_preprocessor(batch, False)['inputs']
    layers = query_attention(model.backbone, inputs, args.point)
    if not args.all_layers:
        layers = last_layer_per_stage(layers)

    os.makedirs(args.out_dir, exist_ok=True)
    stem = f'{Path(args.image).stem}_x{args.point[0]:g}_y{args.point[1]:g}'
    image = mmcv.bgr2rgb(image_bgr)
    files = [draw_attention(image, layers, args.point, inputs.shape[-2:],
                            osp.join(args.out_dir, f'{stem}_attention.png'))]
    if args.per_head:
        files += [draw_attention(image, [layer], args.point, inputs.shape[-2:],
                                 osp.join(args.out_dir, f'{stem}_{layer.name}_heads.png'),
                                 per_head=True) for layer in layers]
    for layer in layers:
        kh, kw = layer.maps.shape[1:]
        cls = '' if layer.cls is None else f', to the cls token {layer.cls.mean():.3f}'
        gate = '' if layer.gate is None else (
            ', gates sigmoid(g) ' + ' '.join(f'{g:.2f}' for g in layer.gate.tolist()))
        print(f'{layer.name}: query cell {layer.query_cell} of {layer.query_grid[0]}x'
              f'{layer.query_grid[1]}, keys {kh}x{kw}{cls}{gate}; row sums '
              f'{layer.row_sums.min():.6f}..{layer.row_sums.max():.6f}')
    print('pictures written: ' + ', '.join(files))
    return files


if __name__ == '__main__':
    main()

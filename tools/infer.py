"""Run a trained model on one image and write a picture of the prediction.

    python tools/infer.py IMAGE CONFIG CHECKPOINT --out result.png [--device cpu]
        [--score-thr 0.3] [--opacity 0.5] [--cfg-options KEY=VALUE ...]

mmdet configs (``default_scope='mmdet'``) get boxes, labels and instance masks drawn;
mmseg configs (``default_scope='mmseg'``) get the colour-coded segmentation blended over
the image. Class names and colours come from the checkpoint's ``dataset_meta``. Grayscale,
palette, RGBA, 16-bit and EXIF-rotated images are read as upright 8-bit RGB; a missing,
empty or corrupt image ends the tool with one line naming it (exit status 1).
"""
import argparse
import os.path as osp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cvt_dense without install

from mmengine.config import Config, DictAction  # noqa: E402

from cvt_dense.config_files import task_of  # noqa: E402
from cvt_dense.datasets import ImageReadError, read_image_rgb  # noqa: E402
from cvt_dense.weights import allow_mmengine_checkpoints  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw the prediction of a model on an image')
    parser.add_argument('image', help='input image file')
    parser.add_argument('config', help='config file (mmdet or mmseg)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output picture (e.g. result.png)')
    parser.add_argument('--device', default=None,
                        help='torch device (default: cuda:0 if available, else cpu)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw instances scoring at least this')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='segmentation: opacity of the colour-coded map, in (0, 1]')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries (as in tools/train.py)')
    return parser.parse_args(argv)


def infer_detection(cfg, args, image_bgr, image_rgb):
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS
    model = init_detector(cfg, args.checkpoint, device=args.device)
    result = inference_detector(model, image_bgr)
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, vis_backends=None))  # out_file only
    visualizer.dataset_meta = model.dataset_meta
    visualizer.add_datasample(osp.basename(args.image), image_rgb, data_sample=result,
                              draw_gt=False, show=False, pred_score_thr=args.score_thr,
                              out_file=args.out)
    kept = int((result.pred_instances.scores >= args.score_thr).sum())
    return f'{kept} instances with score >= {args.score_thr}'


def infer_segmentation(cfg, args, image_bgr, image_rgb):
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import VISUALIZERS
    model = init_model(cfg, args.checkpoint, device=args.device)
    result = inference_model(model, image_bgr)
    visualizer = VISUALIZERS.build(dict(cfg.visualizer, vis_backends=None))  # out_file only
    visualizer.dataset_meta = model.dataset_meta
    visualizer.alpha = args.opacity
    visualizer.add_datasample(osp.basename(args.image), image_rgb, data_sample=result,
                              draw_gt=False, show=False, with_labels=False,
                              out_file=args.out)
    classes = model.dataset_meta['classes']
    present = [classes[i] for i in result.pred_sem_seg.data.unique().tolist()
               if i < len(classes)]
    return f'classes present: {", ".join(present)}'


def main(argv=None):
    args = parse_args(argv)
    try:
        image_rgb = read_image_rgb(args.image)
    except ImageReadError as err:
        raise SystemExit(f'infer.py: {err}') from None
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} file not found: {path}')
    if not 0 < args.opacity <= 1:
        raise ValueError(f'--opacity must be in (0, 1], got {args.opacity}')
    allow_mmengine_checkpoints()  # the checkpoint is an mmengine training checkpoint
    import torch
    args.device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    task = task_of(cfg)
    # The inference APIs take the BGR array mmcv reads (as from a file); the visualizers
    # draw on RGB.
    image_bgr = image_rgb[..., ::-1].copy()
    infer = infer_detection if task == 'det' else infer_segmentation
    summary = infer(cfg, args, image_bgr, image_rgb)
    print(f'{summary}; picture written to {args.out}')


if __name__ == '__main__':
    main()

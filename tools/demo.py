"""The built-in demo: generate the shapes data if needed, train, evaluate, draw predictions.

    python tools/demo.py --task det   # Mask R-CNN + CvT-13: COCO bbox / mask mAP
    python tools/demo.py --task seg   # UperNet + CvT-13: mIoU
    python tools/demo.py --task det --backbone convit   # the same with ConViT-Tiny

Run from the repository root (the configs read ``data/shapes``). It uses mmengine's Runner
on whatever device there is (a CPU is enough: a few minutes on 2 cores).
"""
import argparse
import os
import os.path as osp
import sys
import time
from pathlib import Path

# Spin only briefly in OpenMP barriers (set before torch loads libgomp): with the default
# spinning, 2 threads on 2 cores that other processes also use ran 2-10x slower here; on
# idle cores this short spin is as fast as the default.
os.environ.setdefault('GOMP_SPINCOUNT', '1000')

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # cvt_dense importable without installation
from cvt_dense.analysis.curves import available_keys, load_scalars, plot_curves  # noqa: E402
from cvt_dense.datasets import generate_shapes  # noqa: E402

TASKS = {
    'det': dict(configs=dict(cvt='configs/demo/maskrcnn_cvt13_shapes.py',
                             convit='configs/demo/maskrcnn_convit_shapes.py'),
                curves=('loss', 'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask', 'lr'),
                metrics=(('bbox mAP', 'coco/bbox_mAP'), ('bbox mAP@50', 'coco/bbox_mAP_50'),
                         ('mask mAP', 'coco/segm_mAP'), ('mask mAP@50', 'coco/segm_mAP_50'))),
    'seg': dict(configs=dict(cvt='configs/demo/upernet_cvt13_shapes.py',
                             convit='configs/demo/upernet_convit_shapes.py'),
                curves=('loss', 'decode.loss_ce', 'aux.loss_ce', 'decode.acc_seg', 'lr'),
                metrics=(('mIoU (%)', 'mIoU'), ('mAcc (%)', 'mAcc'), ('aAcc (%)', 'aAcc'))),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--task', choices=sorted(TASKS), default='det')
    p.add_argument('--backbone', choices=('cvt', 'convit'), default='cvt',
                   help='CvT-13 or ConViT-Tiny (default: cvt)')
    p.add_argument('--config', help='config to run instead of the task\'s demo config')
    p.add_argument('--work-dir', help='default: work_dirs/demo_<task>[_convit]')
    p.add_argument('--num-pictures', type=int, default=6,
                   help='validation images to draw with their predictions')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                   help='config overrides, e.g. train_cfg.max_epochs=1')
    return p.parse_args(argv)


def enlarged(image, sample, min_side: int = 384):
    """The image and its data sample scaled by a whole factor so drawings stay legible."""
    import mmcv
    import torch.nn.functional as F
    from mmengine.structures import PixelData
    scale = max(1, round(min_side / min(image.shape[:2])))
    if scale == 1:
        return image, sample

    def grow(x):  # (N, H, W) masks or label maps, nearest neighbour
        return F.interpolate(x[None].float(), scale_factor=scale)[0].to(x.dtype)

    sample = sample.clone()
    for key in ('gt_instances', 'pred_instances'):  # detection
        if key in sample:
            inst = sample.get(key)
            if hasattr(inst.bboxes, 'rescale_'):  # mmdet box structure (ground truth)
                inst.bboxes.rescale_((scale, scale))
            else:
                inst.bboxes = inst.bboxes * scale
            if 'masks' in inst:
                masks = inst.masks
                inst.masks = masks.rescale(scale) if hasattr(masks, 'rescale') else grow(masks)
    for key in ('gt_sem_seg', 'pred_sem_seg'):  # segmentation
        if key in sample:
            sample.set_field(PixelData(data=grow(sample.get(key).data)), key)
    return mmcv.imrescale(image, scale), sample


def draw_predictions(runner, out_dir: str, num: int) -> list:
    """Draw ground truth | prediction for the first ``num`` test images; returns the files."""
    import mmcv
    import torch
    loader = runner.test_dataloader
    runner.model.eval()
    files = []
    for i in range(min(num, len(loader.dataset))):
        with torch.no_grad():
            sample = runner.model.test_step(loader.collate_fn([loader.dataset[i]]))[0]
        name = osp.basename(sample.img_path)
        files.append(osp.join(out_dir, name))
        image, sample = enlarged(mmcv.imread(sample.img_path, channel_order='rgb'), sample)
        runner.visualizer.add_datasample(name, image, data_sample=sample, draw_gt=True,
                                         draw_pred=True, out_file=files[-1])
    return files


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    task = TASKS[args.task]
    cfg = Config.fromfile(args.config or str(REPO_ROOT / task['configs'][args.backbone]))
    suffix = '' if args.backbone == 'cvt' else f'_{args.backbone}'
    cfg.work_dir = args.work_dir or osp.join('work_dirs', f'demo_{args.task}{suffix}')
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    generate_shapes(cfg.data_root)  # the defaults are the data the demo configs expect
    # Evaluate once, after training, on the test split (= the validation images).
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None

    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    out_dir = osp.join(cfg.work_dir, 'predictions')
    pictures = draw_predictions(runner, out_dir, args.num_pictures)
    os.makedirs(out_dir, exist_ok=True)
    records = load_scalars(runner.log_dir)
    logged = available_keys(records)  # a --config of another model logs other losses
    curves = plot_curves({osp.basename(cfg.work_dir): records},
                         [k for k in task['curves'] if k in logged],
                         osp.join(out_dir, 'curves.png'))

    print(f'\n=== cvt_dense demo ({args.task}): {osp.basename(cfg.filename)} ===')
    for label, key in task['metrics']:
        if key in metrics:
            print(f'{label:>12}: {metrics[key]:.3f}')
    print(f'{"total time":>12}: {time.time() - start:.0f} s')
    last = osp.join(cfg.work_dir, 'last_checkpoint')
    if osp.isfile(last):
        print(f'{"checkpoint":>12}: {open(last).read().strip()}')
    if pictures:
        print(f'{"pictures":>12}: {len(pictures)} images (ground truth | prediction) in '
              f'{osp.dirname(pictures[0])}')
    print(f'{"curves":>12}: {curves}')
    return metrics


if __name__ == '__main__':
    main()

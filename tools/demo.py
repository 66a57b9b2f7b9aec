"""The built-in demo: generate the shapes data if needed, train, evaluate, draw predictions.

    python tools/demo.py --task det   # Mask R-CNN + CvT-13: COCO bbox / mask mAP
    python tools/demo.py --task seg   # UperNet + CvT-13: mIoU
    python tools/demo.py --task det --backbone convit   # the same with ConViT-Tiny

The demo configs are the files of ``configs/demo/``: each registered backbone that has one
for the task can be chosen (the first registered is the default). Run from the repository
root (the configs read ``data/shapes``). It uses mmengine's Runner on whatever device there
is (a CPU is enough: a few minutes on 2 cores).
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
from cvt_dense.config_files import task_of  # noqa: E402
from cvt_dense.datasets import generate_shapes  # noqa: E402
from cvt_dense.models import get_backbone, registered_backbones  # noqa: E402

DEMO_CONFIG_DIR = REPO_ROOT / 'configs' / 'demo'
TASKS = {
    'det': dict(curves=('loss', 'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask', 'lr'),
                metrics=(('bbox mAP', 'coco/bbox_mAP'), ('bbox mAP@50', 'coco/bbox_mAP_50'),
                         ('mask mAP', 'coco/segm_mAP'), ('mask mAP@50', 'coco/segm_mAP_50'))),
    'seg': dict(curves=('loss', 'decode.loss_ce', 'aux.loss_ce', 'decode.acc_seg', 'lr'),
                metrics=(('mIoU (%)', 'mIoU'), ('mAcc (%)', 'mAcc'), ('aAcc (%)', 'aAcc'))),
}


def demo_configs() -> dict:
    """(task, backbone short name) -> demo config path, read from the configs themselves
    (``default_scope`` and ``model.backbone.type``), in registration order."""
    found = {}
    for path in sorted(DEMO_CONFIG_DIR.glob('*.py')):
        cfg = Config.fromfile(str(path))
        found[(task_of(cfg), get_backbone(cfg.model.backbone.type).name)] = str(path)
    order = [info.name for info in registered_backbones()]
    return dict(sorted(found.items(), key=lambda item: order.index(item[0][1])))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--task', choices=sorted(TASKS), default='det')
    p.add_argument('--backbone', help='a registered backbone with a demo config for the task '
                   '(default: the first registered, CvT-13)')
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
    configs = {backbone: path for (kind, backbone), path in demo_configs().items()
               if kind == args.task}
    default = next(iter(configs))
    backbone = (args.backbone or default).lower()
    if backbone not in configs and not args.config:
        raise SystemExit(f'--backbone {args.backbone!r}: no demo config for the {args.task} '
                         f'task; choose one of {sorted(configs)}')
    cfg = Config.fromfile(args.config or configs[backbone])
    suffix = '' if backbone == default else f'_{backbone}'
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

"""tools/train.py, test.py and infer.py on the Mask R-CNN demo config (tiny CvT, CPU)."""
import pickle
import subprocess

import numpy as np
import pytest
import torch
from tools_e2e import (DET_CONFIG, DET_TINY, NUM_VAL, TRAIN_ONLY, printed_metrics, python_tool,
                       run_log, run_tool, tool_env)
from PIL import Image

# 4 training images, 2 per batch: 2 iterations per epoch.
ITERS_PER_EPOCH = 2


@pytest.fixture(scope='module')
def trained(workspace):
    work_dir = workspace / 'det'
    run_tool(python_tool('train.py', DET_CONFIG, '--work-dir', work_dir, '--cfg-options',
                         *DET_TINY, *TRAIN_ONLY, 'train_cfg.max_epochs=1'), cwd=workspace)
    return work_dir


@pytest.fixture(scope='module')
def resumed(trained, workspace):
    run_tool(python_tool('train.py', DET_CONFIG, '--work-dir', trained, '--resume',
                         '--cfg-options', *DET_TINY, *TRAIN_ONLY, 'train_cfg.max_epochs=2'),
             cwd=workspace)
    return trained


def test_train_writes_checkpoint(trained):
    ckpt = torch.load(trained / 'epoch_1.pth')  # default weights_only=True
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == ITERS_PER_EPOCH
    assert ckpt['meta']['dataset_meta']['classes'] == ('circle', 'square', 'triangle', 'star')
    assert any(k.startswith('backbone.stage2.') for k in ckpt['state_dict'])


def test_resume_continues_counters_and_optimizer(resumed):
    first = torch.load(resumed / 'epoch_1.pth')
    second = torch.load(resumed / 'epoch_2.pth')
    assert (second['meta']['epoch'], second['meta']['iter']) == (2, 2 * ITERS_PER_EPOCH)
    # AdamW's step counts continue from the checkpoint (a fresh optimizer would be at 2).
    steps = {float(s['step']) for s in second['optimizer']['state'].values()}
    assert steps == {2. * ITERS_PER_EPOCH}
    assert {float(s['step']) for s in first['optimizer']['state'].values()} == {2.}
    # The warm-up scheduler continues too.
    assert second['param_schedulers'][0]['last_step'] == 2 * ITERS_PER_EPOCH
    log = run_log(resumed)
    assert 'Auto resumed from the latest checkpoint' in log
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'Epoch(train) [2][2/2]' in log and 'Epoch(train) [1]' not in log


def test_test_tool_metrics_predictions_and_pictures(resumed, workspace):
    out = run_tool(python_tool('test.py', DET_CONFIG, resumed / 'epoch_2.pth', '--work-dir',
                               workspace / 'det_test', '--out', 'det_preds.pkl',
                               '--show-dir', 'det_pictures', '--cfg-options', *DET_TINY),
                   cwd=workspace)
    metrics = printed_metrics(out)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert isinstance(metrics[key], float) and 0. <= metrics[key] <= 1., key
    with open(workspace / 'det_preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == NUM_VAL
    boxes = preds[0]['pred_instances']['bboxes']
    assert boxes.ndim == 2 and boxes.shape[1] == 4
    assert 'gt_instances' not in preds[0]
    pictures = sorted(p.name for p in (workspace / 'det_pictures').glob('*.png'))
    assert pictures == sorted(p.name for p in (workspace / 'data/shapes/val').glob('*.png'))


def test_test_tool_flip_tta_keeps_masks(resumed, workspace):
    """--tta: the config's flip views through InstanceSegTTAModel (mmdet's DetTTAModel
    refuses masks), so the segm metric and the masks are there."""
    out = run_tool(python_tool('test.py', DET_CONFIG, resumed / 'epoch_2.pth', '--tta',
                               '--work-dir', workspace / 'det_tta', '--out', 'det_tta.pkl',
                               '--cfg-options', *DET_TINY), cwd=workspace)
    metrics = printed_metrics(out)
    assert 0. <= metrics['coco/segm_mAP'] <= 1. and 0. <= metrics['coco/bbox_mAP'] <= 1.
    assert "type='InstanceSegTTAModel'" in run_log(workspace / 'det_tta')
    with open(workspace / 'det_tta.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == NUM_VAL
    assert len(preds[0]['pred_instances']['masks']) == len(preds[0]['pred_instances']['bboxes'])


def test_test_tool_tta_needs_the_configs_tta_settings(resumed, workspace):
    config = workspace / 'no_tta.py'
    config.write_text(f'_base_ = [{DET_CONFIG!r}]\ntta_model = None\n')
    proc = subprocess.run([str(c) for c in python_tool(
        'test.py', config, resumed / 'epoch_2.pth', '--tta', '--cfg-options', *DET_TINY)],
        cwd=workspace, env=tool_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    assert '--tta needs tta_model in the config' in proc.stderr


def test_infer_draws_detections(resumed, workspace):
    image = workspace / 'data/shapes/val/000001.png'
    out_file = workspace / 'infer_det.png'
    out = run_tool(python_tool('infer.py', image, DET_CONFIG, resumed / 'epoch_2.pth',
                               '--out', out_file, '--score-thr', '0', '--cfg-options',
                               *DET_TINY), cwd=workspace)
    assert 'picture written to' in out
    drawn, original = np.asarray(Image.open(out_file)), np.asarray(Image.open(image))
    assert drawn.shape == original.shape
    assert (drawn != original).any()


def test_amp_on_cpu_trains_mask_rcnn(workspace):
    work_dir = workspace / 'det_amp'
    out = run_tool(python_tool('train.py', DET_CONFIG, '--amp', '--work-dir', work_dir,
                               '--cfg-options', *DET_TINY, *TRAIN_ONLY,
                               'train_cfg.max_epochs=1'), cwd=workspace)
    assert 'bfloat16' in out
    assert "type='CPUBF16OptimWrapper'" in run_log(work_dir)
    ckpt = torch.load(work_dir / 'epoch_1.pth')
    assert ckpt['meta']['iter'] == ITERS_PER_EPOCH
    assert all(t.dtype != torch.bfloat16 for t in ckpt['state_dict'].values())
    assert all(torch.isfinite(t).all() for t in ckpt['state_dict'].values()
               if t.is_floating_point())

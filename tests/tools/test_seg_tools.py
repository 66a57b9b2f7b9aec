"""tools/train.py, test.py and infer.py on the UperNet demo config (tiny CvT, CPU)."""
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tools_e2e import (NUM_VAL, SEG_CONFIG, SEG_TINY, TOOLS, TRAIN_ONLY, free_port,
                       printed_metrics, python_tool, run_log, run_tool)

NUM_CLASSES = 5  # background + 4 shapes


@pytest.fixture(scope='module')
def trained(workspace):
    work_dir = workspace / 'seg'
    run_tool(python_tool('train.py', SEG_CONFIG, '--work-dir', work_dir, '--cfg-options',
                         *SEG_TINY, *TRAIN_ONLY, 'train_cfg.max_iters=2',
                         'default_hooks.checkpoint.interval=2'), cwd=workspace)
    return work_dir


@pytest.fixture(scope='module')
def resumed(trained, workspace):
    # Resume from an explicit path (the detection test resumes from the latest).
    run_tool(python_tool('train.py', SEG_CONFIG, '--work-dir', trained,
                         '--resume', trained / 'iter_2.pth', '--cfg-options', *SEG_TINY,
                         *TRAIN_ONLY, 'train_cfg.max_iters=4',
                         'default_hooks.checkpoint.interval=2'), cwd=workspace)
    return trained


def test_resume_from_path_continues_counters_and_optimizer(resumed):
    first = torch.load(resumed / 'iter_2.pth')  # default weights_only=True
    second = torch.load(resumed / 'iter_4.pth')
    assert first['meta']['iter'] == 2 and second['meta']['iter'] == 4
    assert {float(s['step']) for s in second['optimizer']['state'].values()} == {4.}
    assert second['param_schedulers'][0]['last_step'] == 4
    # The logged history continues: 2 iterations before the resume, 2 after.
    assert len(second['message_hub']['log_scalars']['train/loss'].data[0]) == 4
    log = run_log(resumed)
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [1/4]' not in log


@pytest.fixture(scope='module')
def tested(resumed, workspace):
    """Metrics printed by one single-process run of tools/test.py."""
    out = run_tool(python_tool('test.py', SEG_CONFIG, resumed / 'iter_4.pth', '--work-dir',
                               workspace / 'seg_test', '--out', 'seg_labels',
                               '--show-dir', 'seg_pictures', '--cfg-options', *SEG_TINY),
                   cwd=workspace)
    return printed_metrics(out)


def test_test_tool_miou_label_maps_and_pictures(tested, workspace):
    metrics = tested
    for key in ('mIoU', 'mAcc', 'aAcc'):
        assert isinstance(metrics[key], float) and 0. <= metrics[key] <= 100., key
    val_images = sorted(p.name for p in (workspace / 'data/shapes/val').glob('*.png'))
    labels = sorted((workspace / 'seg_labels').glob('*.png'))
    assert [p.name for p in labels] == val_images
    for path in labels:
        label = np.asarray(Image.open(path))
        image = Image.open(workspace / 'data/shapes/val' / path.name)
        assert label.shape == (image.height, image.width)
        assert label.max() < NUM_CLASSES
    pictures = list((workspace / 'seg_pictures/vis_data/vis_image').glob('*.png'))
    assert len(pictures) == NUM_VAL


def test_test_tool_pickle_output(resumed, workspace):
    import pickle
    run_tool(python_tool('test.py', SEG_CONFIG, resumed / 'iter_4.pth', '--work-dir',
                         workspace / 'seg_test_pkl', '--out', 'seg_preds.pkl',
                         '--cfg-options', *SEG_TINY), cwd=workspace)
    with open(workspace / 'seg_preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == NUM_VAL
    seg = preds[0]['pred_sem_seg']['data']
    assert seg.ndim == 3 and seg.shape[0] == 1 and int(seg.max()) < NUM_CLASSES


def test_test_tool_multiscale_flip_tta(resumed, workspace):
    """--tta: mmseg's SegTTAModel over 6 scales x 2 flips of each image."""
    out = run_tool(python_tool('test.py', SEG_CONFIG, resumed / 'iter_4.pth', '--tta',
                               '--work-dir', workspace / 'seg_tta', '--cfg-options', *SEG_TINY),
                   cwd=workspace)
    metrics = printed_metrics(out)
    assert 0. <= metrics['mIoU'] <= 100.
    assert "type='SegTTAModel'" in run_log(workspace / 'seg_tta')


def test_infer_draws_segmentation(resumed, workspace):
    image = workspace / 'data/shapes/val/000002.png'
    out_file = workspace / 'infer_seg.png'
    out = run_tool(python_tool('infer.py', image, SEG_CONFIG, resumed / 'iter_4.pth', '--out',
                               out_file, '--cfg-options', *SEG_TINY), cwd=workspace)
    assert 'classes present' in out
    drawn, original = np.asarray(Image.open(out_file)), np.asarray(Image.open(image))
    assert drawn.shape == original.shape
    assert (drawn != original).any()


def test_dist_test_matches_single_process(tested, resumed, workspace, monkeypatch):
    monkeypatch.setenv('PYTHON', sys.executable)
    monkeypatch.setenv('PORT', str(free_port()))
    out = run_tool(['bash', TOOLS / 'dist_test.sh', SEG_CONFIG, resumed / 'iter_4.pth', '2',
                    '--work-dir', workspace / 'seg_dist_test', '--cfg-options', *SEG_TINY],
                   cwd=workspace, timeout=300)
    # Each process evaluates one image; rank 0 gathers both and prints the same metrics.
    assert printed_metrics(out) == pytest.approx(tested)
    assert out.count('metrics: ') == 1

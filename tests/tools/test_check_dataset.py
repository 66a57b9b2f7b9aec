"""tools/check_dataset.py: the demo data passes; every planted problem is listed."""
import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from tools_e2e import DET_CONFIG, SEG_CONFIG, python_tool, run_tool, tool_env

ROOT = 'data/check_shapes/'


def check(config, workspace, *args):
    proc = subprocess.run([str(c) for c in python_tool('check_dataset.py', config, *args)],
                          cwd=workspace, env=tool_env(), text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=120)
    return proc.returncode, proc.stdout


@pytest.mark.parametrize('config', [DET_CONFIG, SEG_CONFIG], ids=['det', 'seg'])
def test_demo_data_passes_and_pictures_are_written(workspace, config):
    out = run_tool(python_tool('check_dataset.py', config, '--show', '1', '--show-dir',
                               'check_pictures'), cwd=workspace)
    assert 'train' in out and 'val' in out and 'no problems' in out
    assert 'all datasets passed' in out and '2 pictures written' in out
    assert len(list((workspace / 'check_pictures').glob('*.png'))) == 2


@pytest.fixture(scope='module')
def planted(workspace):
    """A copy of the demo data with one of each problem planted."""
    root = workspace / ROOT
    shutil.copytree(workspace / 'data/shapes', root)
    ann_file = root / 'annotations/instances_train.json'
    coco = json.loads(ann_file.read_text())
    images, anns = coco['images'], coco['annotations']
    image_path = root / 'train' / images[0]['file_name']
    image_path.write_bytes(image_path.read_bytes()[:100])  # truncated
    (root / 'train' / images[1]['file_name']).unlink()  # missing
    images[2]['width'] += 7  # size mismatch
    images[3]['id'] = images[2]['id']  # duplicate image id
    anns[0]['bbox'][2] = 0  # degenerate box
    anns[1]['bbox'][0] = 10_000  # out of the image
    anns[2]['segmentation'] = [[]]  # empty polygon
    anns[3]['category_id'] = 99  # unknown category
    anns[4]['id'] = anns[5]['id']  # duplicate annotation id
    ann_file.write_text(json.dumps(coco))
    label_path = sorted((root / 'semantic/train').glob('*.png'))[0]
    label = np.asarray(Image.open(label_path)).copy()
    label[0, 0] = 7  # 5 classes: 0..4
    Image.fromarray(label).save(label_path)
    return root


def test_planted_coco_problems_are_listed(planted, workspace):
    status, out = check(DET_CONFIG, workspace, '--cfg-options',
                        f'train_dataloader.dataset.data_root={ROOT}')
    assert status == 1, out
    for kind in ('unreadable image: 2', 'size mismatch: 1', 'duplicate image id: 1',
                 'degenerate box: 1', 'out-of-image box: 1', 'empty polygon: 1',
                 'unknown category id: 1', 'duplicate annotation id: 1'):
        assert f'  {kind}\n' in out, (kind, out)
    assert 'image file not found' in out and 'not a readable image' in out
    assert 'category_id 99' in out and 'val CocoDataset: 2 samples, no problems' in out


def test_planted_label_value_is_listed(planted, workspace):
    status, out = check(SEG_CONFIG, workspace, '--cfg-options',
                        f'train_dataloader.dataset.data_root={ROOT}')
    assert status == 1, out
    assert '  label outside the classes: 1\n' in out and 'has values [7]' in out
    # The truncated and the missing image (the missing one is not listed by mmseg).
    assert '  unreadable image: 1\n' in out


def test_missing_annotation_file_is_reported(workspace):
    status, out = check(DET_CONFIG, workspace, '--cfg-options',
                        'train_dataloader.dataset.ann_file=annotations/missing.json')
    assert status == 1
    assert '  unreadable annotation file: 1\n' in out and 'missing.json' in out

"""Unreadable training samples: named in the error, or skipped and counted (tiny Mask
R-CNN, CPU); tools/check_dataset.py on planted problems."""
import json
import re
import shutil
import subprocess

import pytest
from tools_e2e import DET_CONFIG, DET_TINY, TRAIN_ONLY, python_tool, run_tool, tool_env

BAD_ROOT = 'data/bad_shapes/'


@pytest.fixture(scope='module')
def bad_data(workspace):
    """A copy of the demo data whose train image 0 is corrupt and image 1 is missing;
    returns {dataset index: file}."""
    root = workspace / BAD_ROOT
    shutil.copytree(workspace / 'data/shapes', root)
    images = json.loads((root / 'annotations/instances_train.json').read_text())['images']
    corrupt, missing = (root / 'train' / images[i]['file_name'] for i in (0, 1))
    corrupt.write_bytes(corrupt.read_bytes()[:40])  # a PNG cut after its header
    missing.unlink()
    return {0: corrupt, 1: missing}


def train_args(*extra):
    return ['--cfg-options', *DET_TINY, *TRAIN_ONLY, 'train_cfg.max_epochs=1',
            f'train_dataloader.dataset.data_root={BAD_ROOT}', *extra]


def test_unreadable_sample_error_names_file_and_index(bad_data, workspace):
    cmd = python_tool('train.py', DET_CONFIG, '--work-dir', workspace / 'bad_noskip',
                      *train_args())
    proc = subprocess.run([str(c) for c in cmd], cwd=workspace, env=tool_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode != 0
    found = re.search(r'BadSampleError: cannot load CocoDataset\[(\d+)\] \(([^)]*)\)',
                      proc.stdout)
    assert found, proc.stdout[-3000:]
    index, path = int(found[1]), found[2]
    assert index in bad_data and path.endswith(str(bad_data[index].relative_to(workspace)))


def test_skip_mode_finishes_and_reports_skipped_samples(bad_data, workspace):
    out = run_tool(python_tool('train.py', DET_CONFIG, '--work-dir', workspace / 'bad_skip',
                               *train_args('default_hooks.bad_samples.skip=True',
                                           'default_hooks.bad_samples.max_skip_fraction=0.9',
                                           'default_hooks.bad_samples.min_samples=1')),
                   cwd=workspace)
    for index, path in bad_data.items():
        assert re.search(rf'skipped sample: cannot load CocoDataset\[{index}\] \([^)]*'
                         rf'{re.escape(path.name)}\)', out)
    assert re.search(r'skipped 2 unreadable training samples \(\d+ failed reads', out)
    assert 'Epoch(train) [1][2/2]' in out


def test_skip_mode_stops_past_the_fraction_bound(bad_data, workspace):
    cmd = python_tool('train.py', DET_CONFIG, '--work-dir', workspace / 'bad_bound',
                      *train_args('default_hooks.bad_samples.skip=True',
                                  'default_hooks.bad_samples.max_skip_fraction=0.1',
                                  'default_hooks.bad_samples.min_samples=4'))
    proc = subprocess.run([str(c) for c in cmd], cwd=workspace, env=tool_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode != 0
    assert re.search(r'BadSampleError: \d+ of \d+ training samples read could not be loaded '
                     r'\(more than max_skip_fraction=0.1\)', proc.stdout), proc.stdout[-3000:]

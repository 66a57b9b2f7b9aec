"""mmdet's and mmseg's own tools/train.py and tools/test.py (shipped in their packages,
``<package>/.mim/tools/``) with our demo configs: what a user of those libraries runs."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch
from tools_e2e import (DET_CONFIG, DET_TINY, SEG_CONFIG, SEG_TINY, TRAIN_ONLY, run_log,
                       run_tool)

TASKS = {
    'mmdet': dict(config=DET_CONFIG, tiny=DET_TINY, schedule=['train_cfg.max_epochs=1'],
                  checkpoint='epoch_1.pth', metric=r'coco/segm_mAP: (\d\.\d+)'),
    'mmseg': dict(config=SEG_CONFIG, tiny=SEG_TINY,
                  schedule=['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2'],
                  checkpoint='iter_2.pth', metric=r'mIoU: (\d+\.\d+)'),
}


def library_tool(library: str, name: str) -> Path:
    package = Path(importlib.util.find_spec(library).submodule_search_locations[0])
    return package / '.mim' / 'tools' / name


@pytest.mark.parametrize('library', sorted(TASKS))
def test_library_tools_train_and_test_our_config(library, workspace):
    spec = TASKS[library]
    work_dir = workspace / f'{library}_own_tools'
    run_tool([sys.executable, library_tool(library, 'train.py'), spec['config'], '--work-dir',
              work_dir, '--cfg-options', *spec['tiny'], *TRAIN_ONLY, *spec['schedule']],
             cwd=workspace)
    checkpoint = work_dir / spec['checkpoint']
    assert torch.load(checkpoint)['meta']['iter'] == 2
    # Our runtime's hooks ran under their tool (custom_imports registers them).
    assert 'ResumableCheckpointHook' in run_log(work_dir)
    test_dir = workspace / f'{library}_own_tools_test'
    run_tool([sys.executable, library_tool(library, 'test.py'), spec['config'], checkpoint,
              '--work-dir', test_dir, '--cfg-options', *spec['tiny']], cwd=workspace)
    assert re.search(spec['metric'], run_log(test_dir))

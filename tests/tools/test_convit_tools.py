"""tools/train.py (with resume) and test.py on the ConViT demo configs (tiny ConViT, CPU)."""
import pytest
import torch
from tools_e2e import (CONVIT_DET_CONFIG, CONVIT_DET_TINY, CONVIT_SEG_CONFIG, CONVIT_SEG_TINY,
                       TRAIN_ONLY, printed_metrics, python_tool, run_log, run_tool)

TASKS = {
    'det': dict(config=CONVIT_DET_CONFIG, tiny=CONVIT_DET_TINY,
                first=['train_cfg.max_epochs=1'], second=['train_cfg.max_epochs=2'],
                checkpoints=('epoch_1.pth', 'epoch_2.pth'), metric='coco/bbox_mAP'),
    'seg': dict(config=CONVIT_SEG_CONFIG, tiny=CONVIT_SEG_TINY,
                first=['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2'],
                second=['train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=2'],
                checkpoints=('iter_2.pth', 'iter_4.pth'), metric='mIoU'),
}


@pytest.mark.parametrize('task', sorted(TASKS))
def test_convit_trains_resumes_and_tests(task, workspace):
    spec = TASKS[task]
    work_dir = workspace / f'convit_{task}'
    for schedule, extra in ((spec['first'], []), (spec['second'], ['--resume'])):
        run_tool(python_tool('train.py', spec['config'], '--work-dir', work_dir, *extra,
                             '--cfg-options', *spec['tiny'], *TRAIN_ONLY, *schedule),
                 cwd=workspace)
    first, second = (torch.load(work_dir / name) for name in spec['checkpoints'])
    assert second['meta']['iter'] == 2 * first['meta']['iter'] > 0
    assert {float(s['step']) for s in second['optimizer']['state'].values()} == \
        {float(second['meta']['iter'])}
    assert any(k.startswith('backbone.blocks.3.attn.qkv') for k in second['state_dict'])
    assert 'resumed epoch' in run_log(work_dir)
    out = run_tool(python_tool('test.py', spec['config'], work_dir / spec['checkpoints'][1],
                               '--work-dir', workspace / f'convit_{task}_test', '--cfg-options',
                               *spec['tiny']), cwd=workspace)
    assert isinstance(printed_metrics(out)[spec['metric']], float)

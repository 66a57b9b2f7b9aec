"""mmengine's ``compile`` option on the demo configs (tiny CvT, CPU): ``tools/train.py
--cfg-options compile...`` trains a few iterations with ``model.train_step`` compiled, the
checkpoint is an ordinary one, and ``tools/test.py`` evaluates it.

CI compiles without generating kernels, which takes minutes on a 2-core CPU: the
segmentation run with ``aot_eager`` (dynamo and AOTAutograd trace what inductor would get:
the backbone as one graph, forward and backward, the heads in pieces, the optimizer update
eager through ``CompiledTrainStepHook``), the detection run with dynamo alone (``eager``),
its RoI heads breaking the graph in many places. ``compile=True`` (inductor) was run by
hand with the same overrides (docs/getting_started.md).
"""
import pytest
import torch
from tools_e2e import (DET_CONFIG, DET_TINY, SEG_CONFIG, SEG_TINY, TRAIN_ONLY, printed_metrics,
                       python_tool, run_log, run_tool)

# Two iterations each: the demo detection set has 4 images, 2 per batch.
RUNS = {'det': (DET_CONFIG, DET_TINY, ['train_cfg.max_epochs=1', 'compile.backend=eager'],
                'epoch_1.pth', 'coco/bbox_mAP'),
        'seg': (SEG_CONFIG, SEG_TINY, ['train_cfg.max_iters=2', 'compile.backend=aot_eager'],
                'iter_2.pth', 'mIoU')}


@pytest.mark.parametrize('task', sorted(RUNS))
def test_compiled_training_then_test(task, workspace):
    config, tiny, run, checkpoint, metric = RUNS[task]
    work_dir = workspace / f'compiled_{task}'
    run_tool(python_tool('train.py', config, '--work-dir', work_dir, '--cfg-options', *tiny,
                         *TRAIN_ONLY, *run),
             cwd=workspace, timeout=900)
    log = run_log(work_dir)
    assert 'Model has been "compiled"' in log  # mmengine's own message
    assert 'the optimizer update runs eagerly' in log
    state = torch.load(work_dir / checkpoint)['state_dict']
    assert any(key.startswith('backbone.stage2.') for key in state)
    assert not any('_orig_mod' in key for key in state)  # no torch.compile wrapper names
    out = run_tool(python_tool('test.py', config, work_dir / checkpoint, '--work-dir',
                               workspace / f'compiled_{task}_test', '--cfg-options', *tiny),
                   cwd=workspace)
    assert metric in printed_metrics(out)

"""Fixtures of the end-to-end tool tests, made once per session: a tiny shapes dataset and
the uninterrupted reference runs of the long-run tests."""
import pytest
from long_runs import DET_ARGS, DET_EPOCHS, SEG_ARGS, SEG_ITERS, final_weights, train
from tools_e2e import DET_CONFIG, NUM_TRAIN, NUM_VAL, SEG_CONFIG


@pytest.fixture(scope='session')
def workspace(tmp_path_factory):
    """A folder with ``data/shapes`` (4 train, 2 val images): the demo configs' data_root
    is relative, so the tools run with this folder as their working directory."""
    from cvt_dense.datasets import generate_shapes
    root = tmp_path_factory.mktemp('tools_e2e')
    generate_shapes(root / 'data' / 'shapes', num_train=NUM_TRAIN, num_val=NUM_VAL, seed=0,
                    verbose=False)
    return root


@pytest.fixture(scope='session')
def seg_reference(workspace):
    work_dir = workspace / 'long_seg_ref'
    train(SEG_CONFIG, work_dir, SEG_ARGS, workspace)
    return final_weights(work_dir, f'iter_{SEG_ITERS}.pth')


@pytest.fixture(scope='session')
def det_reference(workspace):
    work_dir = workspace / 'long_det_ref'
    train(DET_CONFIG, work_dir, DET_ARGS, workspace)
    return final_weights(work_dir, f'epoch_{DET_EPOCHS}.pth')

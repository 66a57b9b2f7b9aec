"""Fixtures of the end-to-end tool tests: a tiny shapes dataset, made once per session."""
import pytest
from tools_e2e import NUM_TRAIN, NUM_VAL


@pytest.fixture(scope='session')
def workspace(tmp_path_factory):
    """A folder with ``data/shapes`` (4 train, 2 val images): the demo configs' data_root
    is relative, so the tools run with this folder as their working directory."""
    from cvt_dense.datasets import generate_shapes
    root = tmp_path_factory.mktemp('tools_e2e')
    generate_shapes(root / 'data' / 'shapes', num_train=NUM_TRAIN, num_val=NUM_VAL, seed=0,
                    verbose=False)
    return root


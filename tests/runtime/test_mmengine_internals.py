"""mmengine's private API, used from one module, exists as it was checked."""
import warnings

import mmengine
import pytest

from cvt_dense.runtime import mmengine_internals


def test_runs_on_a_checked_mmengine_release():
    """Fails on any mmengine release not in CHECKED_MMENGINE_VERSIONS: run the suite there,
    then add it."""
    assert mmengine.__version__ in mmengine_internals.CHECKED_MMENGINE_VERSIONS


def test_another_release_is_warned_about():
    with pytest.warns(UserWarning, match='not 0.11.0'):
        assert not mmengine_internals.warn_if_unchecked('0.11.0')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert mmengine_internals.warn_if_unchecked(mmengine.__version__)


def test_the_private_names_it_relies_on_exist():
    from mmengine.dataset import InfiniteSampler
    from mmengine.hooks import CheckpointHook
    from mmengine.optim import OptimWrapper
    from mmengine.runner import IterBasedTrainLoop, Runner
    assert callable(InfiniteSampler._indices_of_rank)
    assert callable(CheckpointHook._save_checkpoint_with_step)
    assert callable(CheckpointHook._save_best_checkpoint)
    assert callable(IterBasedTrainLoop.run_iter)
    for name in ('_train_loop', '_val_loop', '_test_loop'):
        assert name in Runner.__init__.__code__.co_names
    assert '_inner_count' in OptimWrapper.__init__.__code__.co_names
    assert 'dataloader_iterator' in IterBasedTrainLoop.__init__.__code__.co_names


def test_nothing_else_uses_them():
    """The private names appear in no other module of the toolkit."""
    from pathlib import Path
    package = Path(mmengine_internals.__file__).resolve().parents[1]
    private = ('_indices_of_rank', '_save_checkpoint_with_step', '_save_best_checkpoint',
               '_InfiniteDataloaderIterator', '_train_loop', '_val_loop', '_test_loop',
               '_inner_count', 'dataloader_iterator', '.run_iter')
    offenders = [f'{path.relative_to(package)}: {name}'
                 for path in package.rglob('*.py') if path.name != 'mmengine_internals.py'
                 for name in private if name in path.read_text()]
    assert not offenders

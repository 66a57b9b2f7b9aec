"""Every use of mmengine's private API by the toolkit, in one place.

Exact resume, crash-safe checkpoints and bad-sample handling need a few things mmengine
does not expose: its infinite dataloader iterator, the infinite sampler's index generator,
the loops held by a runner before they are built, the checkpoint hook's per-step save, the
optimizer wrapper's accumulation counter and the log buffer's statistics. Each is wrapped
here in one small function or class, and nothing else in the toolkit touches them.

They were read and tested against the mmengine releases in
:data:`CHECKED_MMENGINE_VERSIONS`; ``tests/runtime/test_mmengine_internals.py`` fails on
any other release (update the tuple once the suite passes there), and importing the runtime
with another release warns.
"""
import warnings
from typing import Callable, Optional

import mmengine
from mmengine.hooks import CheckpointHook
from mmengine.runner import BaseLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator

CHECKED_MMENGINE_VERSIONS = ('0.10.6', '0.10.7')


def warn_if_unchecked(version: str = mmengine.__version__) -> bool:
    """Warn when ``version`` is not one of :data:`CHECKED_MMENGINE_VERSIONS`; returns
    whether it is."""
    if version in CHECKED_MMENGINE_VERSIONS:
        return True
    warnings.warn(f'cvt_dense.runtime was checked against mmengine '
                  f'{", ".join(CHECKED_MMENGINE_VERSIONS)}, not {version}: exact resume and '
                  f'crash-safe checkpoints rely on its internals '
                  f'(cvt_dense/runtime/mmengine_internals.py)', stacklevel=2)
    return False


# -- the runner and its loops ------------------------------------------------------------

def built_loop(runner, kind: str) -> Optional[BaseLoop]:
    """The runner's ``'train'``, ``'val'`` or ``'test'`` loop if it is built, else None.

    ``runner.train_loop`` would build it from its config (and fail without a dataloader);
    hooks that run before training need to know whether it exists.
    """
    loop = getattr(runner, f'_{kind}_loop', None)
    return loop if isinstance(loop, BaseLoop) else None


def replace_train_iterator(loop, iterator) -> None:
    """Make the iteration-based ``loop`` read its batches from ``iterator``."""
    loop.dataloader_iterator = iterator


def offset_batch_indices(loop, batches: int) -> None:
    """Number the batches of ``loop``'s current epoch from ``batches`` on (a resumed epoch
    keeps its batch numbers: the log's ``[i/len]`` and the hooks' end-of-epoch checks)."""
    epoch, run_iter = loop.epoch, loop.run_iter

    def run_iter_continued(idx, data_batch):
        return run_iter(idx + batches if loop.epoch == epoch else idx, data_batch)

    loop.run_iter = run_iter_continued


class FastForwardedIterator(_InfiniteDataloaderIterator):
    """mmengine's infinite dataloader iterator whose first ``skipped`` ``next`` calls
    return None without reading data (the batches its iteration-based loop discards when
    resuming).

    Args:
        dataloader (DataLoader): The training dataloader.
        skipped (int): ``next`` calls answered without reading data.
        passes (int): Passes over a finite sampler already done.
        on_resume (callable, optional): Called once, before the first batch is returned.
    """

    def __init__(self, dataloader, skipped: int, passes: int = 0,
                 on_resume: Optional[Callable] = None):
        super().__init__(dataloader)
        self._skipped = skipped
        self._epoch = passes  # the parent's count of passes, used for set_epoch
        self._on_resume = on_resume

    def __next__(self):
        if self._skipped > 0:
            self._skipped -= 1
            return None
        if self._on_resume is not None:
            on_resume, self._on_resume = self._on_resume, None
            on_resume()
        return super().__next__()


def restart_infinite_sampler(sampler) -> None:
    """Give an ``InfiniteSampler`` a fresh generator of indices (the same order from the
    start). Its one generator is shared by all its iterators: an old iterator has advanced
    it (workers prefetch) and closes it when dropped."""
    sampler.indices = sampler._indices_of_rank()


# -- checkpoints and optimisation --------------------------------------------------------

def wrap_save_checkpoint(runner, wrap: Callable[[Callable], Callable]) -> Callable:
    """Replace ``runner.save_checkpoint`` by ``wrap(runner.save_checkpoint)``, once per
    runner (the checkpoint hook calls it with ``(out_dir, filename, ...)``); return the
    wrapped ``save_checkpoint``."""
    if not getattr(runner, '_cvt_dense_save_wrapped', False):
        runner.save_checkpoint = wrap(runner.save_checkpoint)
        runner._cvt_dense_save_wrapped = True
    return runner.save_checkpoint


class StepCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with its two private saving methods exposed for
    subclasses: the per-interval save as :meth:`save_step_checkpoint`, the best-metric
    save as :meth:`save_best_checkpoint`."""

    def _save_checkpoint_with_step(self, runner, step, meta):
        self.save_step_checkpoint(runner, step, meta)

    def save_step_checkpoint(self, runner, step: int, meta: dict) -> None:
        """Write the checkpoint of ``step`` (an epoch or iteration count) with ``meta``,
        remove the oldest beyond ``max_keep_ckpts``, update ``self.last_ckpt``."""
        super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics):
        self.save_best_checkpoint(runner, metrics)

    def save_best_checkpoint(self, runner, metrics: dict) -> None:
        """For each ``save_best`` metric that improved in ``metrics``: remove the previous
        best checkpoint (with ``self.file_backend``), write the new one, then write the
        last interval checkpoint again with the new best scores (mmengine's order)."""
        super()._save_best_checkpoint(runner, metrics)


def count_skipped_backward(wrapper) -> None:
    """Count an optimizer step that skipped its backward pass as gradient accumulation
    does (the wrapper then steps on the same iterations as without the skip)."""
    wrapper._inner_count += 1


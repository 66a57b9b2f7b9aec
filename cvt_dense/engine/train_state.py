"""What a mid-epoch resume needs beyond mmengine's checkpoint: RNG states and the position
in the training data.

mmengine restores the epoch and iteration counters only. Resumed mid-epoch, its
``EpochBasedTrainLoop`` replays the whole epoch (samples seen twice, the epoch longer), and
its ``IterBasedTrainLoop`` loads and discards every batch already trained on (hours for a
160k-iteration run). Here the batch sampler is replayed instead (indices only, no data is
read) and skips the batches already used, and the random number generators (python, numpy,
torch, CUDA; of every rank) are put back as they were when the checkpoint was written, just
before the first batch after the resume is read, so the resumed run draws the same
augmentations, RoI samples and drop-path masks as a run that never stopped.

With ``num_workers > 0`` the sample order is exact, but augmentations drawn in worker
processes are not: each worker is re-seeded by mmengine's ``worker_init_fn`` when it
starts, as at the start of every epoch.
"""
import random
from typing import Callable, Optional

import numpy as np
import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator


def rng_state() -> dict:
    """This process's RNG states, in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = dict(python=random.getstate(), torch=torch.get_rng_state(),
                 numpy=(kind, keys.tolist(), pos, has_gauss, cached_gaussian))
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore states returned by :func:`rng_state`."""
    random.setstate(_as_tuples(state['python']))
    kind, keys, pos, has_gauss, cached_gaussian = state['numpy']
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss,
                         cached_gaussian))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def all_rng_states() -> list:
    """The RNG states of every rank (a collective call in distributed runs)."""
    state = rng_state()
    return all_gather_object(state) if get_world_size() > 1 else [state]


def own_rng_state(states: list) -> dict:
    """This rank's entry of :func:`all_rng_states`' list (rank 0's if the world shrank)."""
    rank = get_rank()
    return states[rank] if rank < len(states) else states[0]


def _skipping_class(cls: type) -> type:
    """A subclass of the batch-sampler class ``cls`` whose next pass drops its first
    ``_skip_batches`` batches (indices only, nothing is loaded), then calls
    ``_on_resume`` once."""

    def __iter__(self):
        skip, self._skip_batches = self._skip_batches, 0
        on_resume, self._on_resume = self._on_resume, None
        batches = super(resuming, self).__iter__()
        for _ in range(skip):
            if next(batches, None) is None:
                break
        if on_resume is not None:
            on_resume()
        yield from batches

    # A direct subclass keeps the instance layout, so that __class__ can be reassigned.
    resuming = type(f'Resuming{cls.__name__}', (cls,), {'__iter__': __iter__})
    return resuming


_SKIPPING_CLASSES = {}


def skip_batches(dataloader, count: int, on_resume: Optional[Callable] = None) -> None:
    """Make the next pass over ``dataloader`` start after ``count`` batches.

    Args:
        dataloader (torch.utils.data.DataLoader): The training dataloader.
        count (int): Batches to skip.
        on_resume (callable, optional): Called once, after the skipped batches and before
            the first batch is read (where the RNG states are restored).
    """
    batch_sampler = dataloader.batch_sampler
    cls = type(batch_sampler)
    if cls not in _SKIPPING_CLASSES.values():
        if cls not in _SKIPPING_CLASSES:
            _SKIPPING_CLASSES[cls] = _skipping_class(cls)
        batch_sampler.__class__ = _SKIPPING_CLASSES[cls]
    batch_sampler._skip_batches = count
    batch_sampler._on_resume = on_resume


def data_position(runner, meta: dict, epoch_start_iter: int) -> int:
    """Batches of the current pass over the data that a checkpoint with ``meta`` has used.

    Args:
        runner (mmengine.runner.Runner): The runner.
        meta (dict): The checkpoint's ``meta`` (``epoch``, ``iter`` it resumes at).
        epoch_start_iter (int): Iteration at which the current epoch started.
    """
    if isinstance(runner.train_loop, IterBasedTrainLoop):
        return meta['iter']  # one pass: the infinite sampler
    if meta['epoch'] > runner.epoch:
        return 0  # written at the end of an epoch: the next one starts afresh
    return meta['iter'] - epoch_start_iter


def resume_data_position(runner, batches: int, on_resume: Callable) -> None:
    """Continue the training data after ``batches`` batches (see :func:`data_position`).

    For the iteration-based loop, also stops mmengine from loading the ``iter`` batches it
    would otherwise read and throw away.
    """
    loop = runner.train_loop
    if not isinstance(loop, IterBasedTrainLoop):
        skip_batches(loop.dataloader, batches, on_resume)
        return
    passes = 0
    if not isinstance(_sampler_of(loop.dataloader), InfiniteSampler):
        # A finite sampler under the iteration-based loop: mmengine restarts it every
        # len(dataloader) batches with the next epoch's order.
        passes, batches = divmod(batches, len(loop.dataloader))
        _set_sampler_epoch(loop.dataloader, passes)
    skip_batches(loop.dataloader, batches, on_resume)
    # A fresh iterator (the one built with the loop started before the resume), whose first
    # `iter` batches, which mmengine's fast-forward requests, are not loaded.
    loop.dataloader_iterator = _FastForwardedIterator(loop.dataloader, loop.iter, passes)


def _sampler_of(dataloader):
    sampler = dataloader.sampler
    return getattr(dataloader.batch_sampler, 'sampler', sampler)


def _set_sampler_epoch(dataloader, epoch: int) -> None:
    for sampler in (dataloader.sampler, getattr(dataloader.batch_sampler, 'sampler', None)):
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch)


class _FastForwardedIterator(_InfiniteDataloaderIterator):
    """``_InfiniteDataloaderIterator`` whose first ``skipped`` ``next`` calls return None.

    Args:
        dataloader (DataLoader): The training dataloader.
        skipped (int): ``next`` calls answered without reading data.
        passes (int): Passes over a finite sampler already done.
    """

    def __init__(self, dataloader, skipped: int, passes: int = 0):
        super().__init__(dataloader)
        self._skipped = skipped
        self._epoch = passes

    def __next__(self):
        if self._skipped > 0:
            self._skipped -= 1
            return None
        return super().__next__()

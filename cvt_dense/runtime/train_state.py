"""What a mid-epoch resume needs beyond mmengine's checkpoint: RNG states, the position in
the training data, and sample randomness that does not depend on the loading process.

mmengine restores the epoch and iteration counters only. Resumed mid-epoch, its
``EpochBasedTrainLoop`` replays the whole epoch (samples seen twice, the epoch longer), and
its ``IterBasedTrainLoop`` loads and discards every batch already trained on (hours for a
160k-iteration run). Here the batch sampler is replayed instead (indices only, no data is
read) and skips the batches already used, and the random number generators (python, numpy,
torch, CUDA; of every rank) are put back as they were when the checkpoint was written, just
before the first batch after the resume is read, so the resumed run draws the same
augmentations, RoI samples and drop-path masks as a run that never stopped.

Augmentations are drawn while a sample is loaded, in the main process or in a dataloader
worker that mmengine seeds when it starts; which worker loads which batch depends on
``num_workers`` and on where the pass started. So each sample is loaded under seeds of its
own, derived from the run's seed, the pass and its global position in the pass
(:func:`seed_sample_randomness`): its augmentations are the same with any ``num_workers``,
after a resume, and on whichever rank loads it.

Another number of processes: mmengine's ``InfiniteSampler`` and ``DefaultSampler`` give
rank ``r`` of ``W`` the positions ``r, r + W, r + 2W, ...`` of one global order, so at the
same global batch size (``W`` x per-process batch) every global step reads the same
positions, whatever ``W``. The data position is stored in samples (global step x global
batch) and the seed key uses the global position ``r + W * i`` of a rank's ``i``-th
sample: a run resumed with another ``W`` at the same global batch size reads and augments
the samples of each step as the uninterrupted run does. What still differs: the process
RNG streams (drop path, RoI sampling; the resumed ranks start from rank 0's states when
the world shrank), which rank computes which sample (per-device BatchNorm statistics, the
order of the gradient reduction), and ``DefaultSampler``'s padding of an epoch to a
multiple of ``W`` (equal when the dataset size is a multiple of both world sizes).
"""
import random
from typing import Callable, Optional

import numpy as np
import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.runner import IterBasedTrainLoop

from .sample_seeds import SeededIndex, seed_samples
from .subclass_in_place import subclass_in_place
from .mmengine_internals import (FastForwardedIterator, offset_batch_indices,
                                 replace_train_iterator, restart_infinite_sampler)


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


def _resumable_class(cls: type) -> type:
    """A subclass of the batch-sampler class ``cls`` whose passes

    - drop the first ``_skip_batches`` batches of the next pass (indices only, nothing is
      loaded), then call ``_on_resume`` once;
    - with ``_sample_seed`` set, yield :class:`SeededIndex` indices whose seed key is
      ``(*_sample_seed, pass, rank + world_size * position)`` (``_ranks`` holds rank and
      world size): the pass is the sampler's ``epoch`` (0 for samplers without one, e.g.
      ``InfiniteSampler``: one endless pass) and the position counts this rank's samples
      of the pass, skipped ones included (the global position for samplers that give
      each rank every ``world_size``-th sample).
    """

    def __iter__(self):
        skip, self._skip_batches = self._skip_batches, 0
        on_resume, self._on_resume = self._on_resume, None
        if self._sample_seed is not None:
            pass_number = getattr(getattr(self, 'sampler', None), 'epoch', 0)
            seed_key = (*self._sample_seed, pass_number)
            rank, world_size = self._ranks
        batches = super(resumable, self).__iter__()
        position = 0
        for _ in range(skip):
            batch = next(batches, None)
            if batch is None:
                break
            position += len(batch)
        if on_resume is not None:
            on_resume()
        for batch in batches:
            if self._sample_seed is not None:
                batch = [SeededIndex(index, (*seed_key,
                                             rank + world_size * (position + offset)))
                         for offset, index in enumerate(batch)]
            position += len(batch)
            yield batch

    resumable = type(f'Resumable{cls.__name__}', (cls,),
                     dict(__iter__=__iter__, _skip_batches=0, _on_resume=None,
                          _sample_seed=None, _ranks=(0, 1)))
    return resumable


def skip_batches(dataloader, count: int, on_resume: Optional[Callable] = None) -> None:
    """Make the next pass over ``dataloader`` start after ``count`` batches.

    Args:
        dataloader (torch.utils.data.DataLoader): The training dataloader.
        count (int): Batches to skip.
        on_resume (callable, optional): Called once, after the skipped batches and before
            the first batch is read (where the RNG states are restored).
    """
    batch_sampler = subclass_in_place(dataloader.batch_sampler, _resumable_class)
    batch_sampler._skip_batches = count
    batch_sampler._on_resume = on_resume


def seed_sample_randomness(dataloader, seed: int) -> None:
    """Load every sample of ``dataloader`` under its own seeds, derived from ``seed``, the
    pass and the sample's global position in the pass (see
    :mod:`cvt_dense.runtime.sample_seeds`): its augmentations are then the same whichever
    process loads it, with any ``num_workers``, after a resume, and with another number
    of ranks at the same global batch size."""
    seed_samples(dataloader.dataset)
    batch_sampler = subclass_in_place(dataloader.batch_sampler, _resumable_class)
    # The 0 stands where the rank was: single-process runs draw the streams they drew
    # before the key became world-size independent (the documented demo results).
    batch_sampler._sample_seed = (seed, 0)
    batch_sampler._ranks = (get_rank(), get_world_size())
    # Each iterator draws its workers' base seed (now without effect on the samples):
    # from a generator of its own, not from the training's (persistent workers draw once,
    # others once per pass).
    dataloader.generator = torch.Generator().manual_seed(seed)


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


def global_batch_size(dataloader) -> Optional[int]:
    """Samples of one training step over all ranks; None for a batch sampler without a
    ``batch_size``."""
    batch_size = dataloader.batch_size or getattr(dataloader.batch_sampler, 'batch_size', None)
    return get_world_size() * batch_size if batch_size else None


def data_state(runner, meta: dict, epoch_start_iter: int) -> dict:
    """The data position a checkpoint stores: ``data_batches`` per rank (see
    :func:`data_position`), ``data_samples`` over all ranks (None when the batch size is
    unknown), and the ``world_size`` and ``global_batch`` they were counted with."""
    batches = data_position(runner, meta, epoch_start_iter)
    global_batch = global_batch_size(runner.train_loop.dataloader)
    return dict(data_batches=batches,
                data_samples=batches * global_batch if global_batch else None,
                world_size=get_world_size(), global_batch=global_batch)


def resumed_batches(state: dict, dataloader, logger) -> int:
    """Batches per rank to skip for the data position ``state`` (:func:`data_state`) with
    this run's world size and batch size; says so when they changed."""
    global_batch = global_batch_size(dataloader)
    if state.get('data_samples') is None or not global_batch:
        return state['data_batches']  # also checkpoints from before samples were counted
    batches, rest = divmod(state['data_samples'], global_batch)
    world_size = get_world_size()
    if global_batch != state['global_batch']:
        again = f'; {rest} of them are read again (less than a step)' if rest else ''
        logger.warning(
            f'Resumed with {global_batch} samples per step instead of '
            f'{state["global_batch"]}: the data continues after the '
            f'{state["data_samples"]} samples already used{again}, but the schedules '
            f'count steps, not samples')
    elif world_size != state['world_size']:
        logger.info(
            f'Resumed with {world_size} processes instead of {state["world_size"]} at the '
            f'same global batch size ({global_batch} samples per step): each step reads '
            f'the samples of the uninterrupted run')
    return batches


def resume_data_position(runner, batches: int, on_resume: Callable) -> None:
    """Continue the training data after ``batches`` batches (see :func:`data_position`).

    For the iteration-based loop, also stops mmengine from loading the ``iter`` batches it
    would otherwise read and throw away. For the epoch-based loop, the batches of the
    resumed epoch keep their numbers (the log's ``[i/len]``, hooks' end-of-epoch checks).
    """
    loop = runner.train_loop
    if not isinstance(loop, IterBasedTrainLoop):
        skip_batches(loop.dataloader, batches, on_resume)
        offset_batch_indices(loop, batches)
        return
    passes = 0
    if not isinstance(_sampler_of(loop.dataloader), InfiniteSampler):
        # A finite sampler under the iteration-based loop: mmengine restarts it every
        # len(dataloader) batches with the next epoch's order.
        passes, batches = divmod(batches, len(loop.dataloader))
        _set_sampler_epoch(loop.dataloader, passes)
    skip_batches(loop.dataloader, batches)
    # The first `iter` batches, which mmengine's fast-forward requests, are not loaded.
    restart_train_iterator(loop, loop.iter, passes, on_resume)


def restart_train_iterator(loop, skipped: int = 0, passes: int = 0,
                           on_resume: Optional[Callable] = None) -> None:
    """Give the iteration-based ``loop`` a fresh data iterator (e.g. after the dataloader's
    dataset or ``worker_init_fn`` changed: mmengine makes the iterator when it builds the
    loop, and starts its workers then).

    Args:
        loop (IterBasedTrainLoop): The loop.
        skipped (int): ``next`` calls the new iterator answers with None, without reading
            data. Defaults to 0.
        passes (int): Passes over a finite sampler already done. Defaults to 0.
        on_resume (callable, optional): Called once, before the first batch is read
            (workers read ahead: not when the batch sampler reaches it).
    """
    sampler = _sampler_of(loop.dataloader)
    if isinstance(sampler, InfiniteSampler):
        restart_infinite_sampler(sampler)
    # A new iterator draws its workers' base seed from torch's generator: keep the
    # training's random stream as it was (the same with and without workers).
    torch_state = torch.get_rng_state()
    replace_train_iterator(loop, FastForwardedIterator(loop.dataloader, skipped, passes,
                                                       on_resume))
    torch.set_rng_state(torch_state)


def _sampler_of(dataloader):
    sampler = dataloader.sampler
    return getattr(dataloader.batch_sampler, 'sampler', sampler)


def _set_sampler_epoch(dataloader, epoch: int) -> None:
    for sampler in (dataloader.sampler, getattr(dataloader.batch_sampler, 'sampler', None)):
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(epoch)


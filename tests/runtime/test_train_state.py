"""RNG states survive torch.load(weights_only=True); batch samplers resume mid-pass; seeded
samples do not depend on the process that loads them, nor on the number of ranks at the
same global batch size."""
import itertools
import random

import mmengine.dataset.sampler as sampler_module
import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, InfiniteSampler
from runtime.checkpoint_fakes import RecordingLogger
from torch.utils.data import BatchSampler, DataLoader

from cvt_dense.runtime import train_state
from cvt_dense.runtime.train_state import (resumed_batches, rng_state, seed_sample_randomness,
                                          set_rng_state, skip_batches)
from cvt_dense.weights import allow_mmengine_checkpoints


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    allow_mmengine_checkpoints()  # numpy's state is stored as lists: nothing more needed
    torch.save(dict(rng=rng_state()), tmp_path / 'state.pth')
    expected = draws()
    draws()
    set_rng_state(torch.load(tmp_path / 'state.pth')['rng'])  # weights_only=True
    assert draws() == expected


def test_skip_batches_resumes_the_pass_once_and_calls_back():
    data = list(range(10))
    sampler = DefaultSampler(data, shuffle=True, seed=3)
    loader = DataLoader(data, batch_sampler=BatchSampler(sampler, 2, False),
                        collate_fn=list)
    full = [batch for batch in loader]
    calls = []
    skip_batches(loader, 3, on_resume=lambda: calls.append(len(calls)))
    assert [batch for batch in loader] == full[3:]
    assert calls == [0]
    assert [batch for batch in loader] == full  # the next pass is whole again
    assert isinstance(loader.batch_sampler, BatchSampler)


class AugmentedData(torch.utils.data.Dataset):
    """Each sample: its index and a draw of each generator, as an augmentation would."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        return (int(index), *draws())


def passes_of(num_workers, seeded, skip=0, epoch=0):
    """Samples of one pass over a shuffled loader of AugmentedData after ``skip`` batches."""
    torch.manual_seed(0)  # the same worker seeds for every loader
    data = AugmentedData()
    sampler = DefaultSampler(data, shuffle=True, seed=3)
    sampler.set_epoch(epoch)
    loader = DataLoader(data, batch_sampler=BatchSampler(sampler, 2, False),
                        num_workers=num_workers, collate_fn=list)
    if seeded:
        seed_sample_randomness(loader, seed=7)
    skip_batches(loader, skip)
    return [sample for batch in loader for sample in batch]


def test_seeded_samples_are_the_same_in_any_worker_and_after_a_skip():
    full = passes_of(num_workers=0, seeded=True)
    assert passes_of(num_workers=2, seeded=True) == full
    assert passes_of(num_workers=2, seeded=True, skip=3) == full[6:]
    next_epoch = passes_of(num_workers=2, seeded=True, epoch=1)
    assert {s[0] for s in next_epoch} == {s[0] for s in full}
    assert not {s[1:] for s in next_epoch} & {s[1:] for s in full}  # fresh draws

    # Without seeds, workers draw from their own streams: the same skip changes them.
    unseeded = passes_of(num_workers=2, seeded=False)
    resumed = passes_of(num_workers=2, seeded=False, skip=3)
    assert [s[0] for s in resumed] == [s[0] for s in unseeded[6:]]
    assert resumed != unseeded[6:]


def global_steps(monkeypatch, sampler_class, world_size, batch_size, steps, skip=0):
    """The seeded samples of each global step of a run on ``world_size`` ranks with
    ``batch_size`` per rank (every rank simulated here, one after the other), resumed after
    ``skip`` steps; each step's samples sorted."""
    per_rank = []
    for rank in range(world_size):
        monkeypatch.setattr(sampler_module, 'get_dist_info', lambda: (rank, world_size))
        monkeypatch.setattr(train_state, 'get_rank', lambda: rank)
        monkeypatch.setattr(train_state, 'get_world_size', lambda: world_size)
        data = AugmentedData()
        sampler = sampler_class(data, shuffle=True, seed=3)
        loader = DataLoader(data, batch_sampler=BatchSampler(sampler, batch_size, False),
                            collate_fn=list)
        seed_sample_randomness(loader, seed=7)
        skip_batches(loader, skip)
        per_rank.append(list(itertools.islice(loader, steps)))
    return [sorted(sample for batches in step for sample in batches)
            for step in zip(*per_rank)]


@pytest.mark.parametrize('sampler_class', [InfiniteSampler, DefaultSampler])
def test_another_world_size_at_the_same_global_batch_reads_the_same_steps(monkeypatch,
                                                                          sampler_class):
    two_ranks = global_steps(monkeypatch, sampler_class, world_size=2, batch_size=2, steps=3)
    assert len({tuple(s[0] for s in step) for step in two_ranks}) == 3  # steps differ
    assert global_steps(monkeypatch, sampler_class, 1, 4, steps=3) == two_ranks
    assert global_steps(monkeypatch, sampler_class, 4, 1, steps=3) == two_ranks
    assert global_steps(monkeypatch, sampler_class, 1, 4, steps=2, skip=1) == two_ranks[1:]


def test_the_data_position_is_converted_to_the_new_batch(monkeypatch):
    logger = RecordingLogger()
    monkeypatch.setattr(train_state, 'get_world_size', lambda: 1)
    saved = dict(data_batches=3, data_samples=12, world_size=2, global_batch=4)
    loader_of = lambda batch_size: DataLoader(list(range(24)), batch_size=batch_size)  # noqa
    assert resumed_batches(saved, loader_of(4), logger) == 3
    assert logger.messages['info'] == [
        'Resumed with 1 processes instead of 2 at the same global batch size (4 samples per '
        'step): each step reads the samples of the uninterrupted run']
    assert resumed_batches(saved, loader_of(8), logger) == 1
    assert logger.messages['warning'][-1].startswith(
        'Resumed with 8 samples per step instead of 4: the data continues after the 12 '
        'samples already used; 4 of them are read again')
    assert resumed_batches(dict(data_batches=5, world_size=2), loader_of(8), logger) == 5

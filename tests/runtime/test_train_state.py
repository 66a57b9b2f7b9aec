"""RNG states survive torch.load(weights_only=True); batch samplers resume mid-pass; seeded
samples do not depend on the process that loads them."""
import random

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from torch.utils.data import BatchSampler, DataLoader

from cvt_dense.weights import allow_mmengine_checkpoints
from cvt_dense.runtime.train_state import (rng_state, seed_sample_randomness, set_rng_state,
                                          skip_batches)


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

"""RNG states survive torch.load(weights_only=True); batch samplers resume mid-pass."""
import random

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from torch.utils.data import BatchSampler, DataLoader

from cvt_dense.engine import allow_mmengine_checkpoints
from cvt_dense.engine.train_state import rng_state, set_rng_state, skip_batches


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

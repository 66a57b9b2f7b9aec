"""Sample randomness that depends on the sample's place in training, not on the process
that loads it.

A training sample's augmentations are drawn from python's ``random``, numpy's and torch's
global generators in whichever process reads it: the main process, or a dataloader worker
whose generators mmengine seeds when the worker starts. Which worker reads which batch
changes with ``num_workers`` and when a run is resumed mid-epoch, so the augmentations of
a resumed run would differ from those of a run that never stopped.

Here the sampler side hands the dataset a :class:`SeededIndex`: the sample index with a
seed key (e.g. run seed, pass, global position in the pass). A dataset prepared by
:func:`seed_samples` loads such a sample with the three generators seeded from the key and
puts the generators back afterwards, so the sample is the same whichever process loads it
and the loading process's own random streams are left as they were.
"""
import random
from contextlib import contextmanager
from typing import Sequence

import numpy as np
import torch

from .subclass_in_place import subclass_in_place


class SeededIndex(int):
    """A dataset index that carries the seed key of the sample's randomness.

    Args:
        index (int): The sample index.
        seed_key (Sequence[int]): Non-negative integers the sample's seeds derive from.
    """

    def __new__(cls, index: int, seed_key: Sequence[int]):
        seeded = super().__new__(cls, index)
        seeded.seed_key = tuple(seed_key)
        return seeded

    def __getnewargs__(self):  # pickled to dataloader workers
        return int(self), self.seed_key

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, seed_key={self.seed_key})'


@contextmanager
def sample_randomness(seed_key: Sequence[int]):
    """Seed python's, numpy's and torch's (CPU) global generators from ``seed_key`` for the
    duration of the block, then restore their states."""
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    python_seed, numpy_seed, torch_seed = np.random.SeedSequence(seed_key).generate_state(3)
    random.seed(int(python_seed))
    np.random.seed(numpy_seed)
    torch.default_generator.manual_seed(int(torch_seed))  # not torch.manual_seed: no CUDA
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


def _seeded_class(cls: type) -> type:
    """A subclass of the dataset class ``cls`` that loads a :class:`SeededIndex` under
    :func:`sample_randomness` (the index it passes on is a plain int)."""

    def __getitem__(self, index):
        seed_key = getattr(index, 'seed_key', None)
        if seed_key is None:
            return cls.__getitem__(self, index)
        with sample_randomness(seed_key):
            return cls.__getitem__(self, int(index))

    def __reduce_ex__(self, protocol):
        # Made at run time, this class cannot be pickled by name (workers started by
        # spawn): the instance is pickled as ``cls`` and prepared again when loaded.
        state = self.__getstate__() if hasattr(self, '__getstate__') else self.__dict__
        return _load_seeded, (cls, state)

    # Same name: messages name the dataset class as before.
    return type(cls.__name__, (cls,), dict(__getitem__=__getitem__,
                                           __reduce_ex__=__reduce_ex__,
                                           __module__=cls.__module__))


def seed_samples(dataset):
    """Make ``dataset`` load :class:`SeededIndex` samples under their own seeds (in place;
    once); return it. Other indices load as before."""
    return subclass_in_place(dataset, _seeded_class)


def _load_seeded(cls: type, state):
    dataset = cls.__new__(cls)
    if hasattr(dataset, '__setstate__'):
        dataset.__setstate__(state)
    elif state:
        dataset.__dict__.update(state)
    return seed_samples(dataset)

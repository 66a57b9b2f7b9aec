"""A sample loaded with a SeededIndex draws the same augmentations in any process, and the
loading process's own random streams are left as they were."""
import pickle
import random

import numpy as np
import torch
from mmengine.dataset import BaseDataset

from cvt_dense.runtime.sample_seeds import SeededIndex, sample_randomness, seed_samples


def draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


class RandomDataset(BaseDataset):
    """Each sample: its index and one draw of each generator (an 'augmentation')."""

    def __init__(self, size=6):
        self.size = size
        super().__init__(lazy_init=True, serialize_data=False)

    def load_data_list(self):
        return [dict(index=i) for i in range(self.size)]

    def __len__(self):
        return self.size

    def __getitem__(self, idx):
        return (idx, *draws())


def test_seeded_index_is_an_int_that_keeps_its_key_through_pickle():
    index = pickle.loads(pickle.dumps(SeededIndex(5, (1, 0, 2, 7))))
    assert index == 5 and index + 1 == 6 and index.seed_key == (1, 0, 2, 7)
    assert list(range(10))[index] == 5


def test_sample_randomness_depends_on_the_key_only_and_restores_the_generators():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    expected_after = draws()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    with sample_randomness((3, 0, 1, 4)):
        first = draws()
    assert draws() == expected_after  # the process's own streams are unchanged
    with sample_randomness((3, 0, 1, 4)):
        assert draws() == first
    with sample_randomness((3, 0, 1, 5)):
        assert draws() != first


def test_seeded_dataset_loads_seeded_indices_alike_in_any_state():
    dataset = seed_samples(RandomDataset())
    assert seed_samples(dataset) is dataset and type(dataset).__name__ == 'RandomDataset'
    index = SeededIndex(2, (0, 0, 0, 9))
    first = dataset[index]
    draws()
    assert dataset[index] == first and type(first[0]) is int  # passed on as a plain int
    assert dataset[2] != dataset[2]  # plain indices draw from the process's streams

    # Workers started by spawn receive a pickled copy: it is still seeded.
    copy = pickle.loads(pickle.dumps(dataset))
    assert isinstance(copy, RandomDataset) and copy[index] == first

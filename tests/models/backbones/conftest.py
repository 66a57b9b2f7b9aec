"""Fixtures of the backbone tests."""
import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """The models here are tiny: intra-op threads only add overhead on the shared 2-core
    test machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

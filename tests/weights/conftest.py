"""Fixtures of the weight tests (helpers live in ``tests/hf_oracle.py``)."""
import logging

import pytest
import torch

from hf_oracle import IMAGE_SHAPE


@pytest.fixture(autouse=True)
def single_thread():
    """The models here are tiny: intra-op threads only add overhead, and on the shared
    2-core test machine they made these tests about 3x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def image():
    return torch.randn(*IMAGE_SHAPE, generator=torch.Generator().manual_seed(1))


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    @property
    def text(self):
        return '\n'.join(r.getMessage() for r in self.records)


@pytest.fixture
def mm_log():
    """Messages sent to mmengine's current logger during the test."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    handler = _Collect()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)

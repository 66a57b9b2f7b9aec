"""Dataloader workers survive the SIGTERM a scheduler sends to every process of a job while
the main process trains, and end quietly once it has stopped."""
import multiprocessing
import os
import signal
import time

import pytest
import torch
from torch.utils.data import DataLoader

from cvt_dense.runtime.hooks.preemption import WorkerSignals


class SlowData(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        time.sleep(0.2)
        return index


def loader_with(worker_init_fn):
    return DataLoader(SlowData(), batch_size=1, num_workers=2, worker_init_fn=worker_init_fn,
                      multiprocessing_context='fork')


def signal_workers(iterator, signum=signal.SIGTERM):
    for worker in iterator._workers:
        os.kill(worker.pid, signum)


def test_workers_ignore_the_signals_while_training():
    training = multiprocessing.Value('b', 1, lock=False)
    iterator = iter(loader_with(WorkerSignals([signal.SIGTERM], training)))
    assert int(next(iterator)) == 0
    signal_workers(iterator)
    assert [int(batch) for batch in iterator] == list(range(1, 8))


def test_workers_end_with_status_0_once_training_stopped():
    training = multiprocessing.Value('b', 1, lock=False)
    iterator = iter(loader_with(WorkerSignals([signal.SIGTERM], training)))
    next(iterator)
    workers = list(iterator._workers)
    training.value = 0
    signal_workers(iterator)
    for worker in workers:
        worker.join(timeout=10)
    assert [worker.exitcode for worker in workers] == [0, 0]
    iterator._shutdown_workers()


def test_without_it_a_signalled_worker_ends_the_data():
    iterator = iter(loader_with(None))
    next(iterator)
    with pytest.raises(RuntimeError, match='DataLoader worker'):
        signal_workers(iterator)  # torch may raise as soon as the worker has ended
        list(iterator)

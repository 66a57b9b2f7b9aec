"""A stand-in for mmengine's Runner with what the checkpoint machinery uses of it, whose
``save_checkpoint`` writes a file of a chosen size and can fail halfway with an OS error."""
import os
import os.path as osp
from collections import defaultdict
from types import SimpleNamespace

import torch
from mmengine.logging import MessageHub


class RecordingLogger:
    """A logger keeping its messages by level."""

    def __init__(self):
        self.messages = defaultdict(list)

    def __getattr__(self, level):
        return self.messages[level].append


class FakeRunner:
    """What ``ResumableCheckpointHook`` and ``GuardedSave`` use of a runner.

    ``save_checkpoint`` notes the files of the folder when it starts (``seen``), writes
    half of ``size`` bytes, fails there with ``OSError(error)`` when ``error`` (an errno)
    is set, else writes the rest.

    Args:
        work_dir: The run's work dir.
        size (int): Bytes of each checkpoint.
    """

    def __init__(self, work_dir, size: int = 1000):
        self.work_dir = str(work_dir)
        self.size = size
        self.error = None
        self.seen = []
        self.model = torch.nn.Linear(4, 4)
        self.optim_wrapper = SimpleNamespace(state_dict=dict)
        self.message_hub = MessageHub(f'fake_runner_{id(self)}')
        self.logger = RecordingLogger()
        self.epoch, self.iter, self.max_iters = 0, 0, 100

    def save_checkpoint(self, out_dir, filename, file_client_args=None, **kwargs):
        self.seen.append(sorted(os.listdir(out_dir)))
        with open(osp.join(out_dir, filename), 'wb') as f:
            f.write(bytes(self.size // 2))
            if self.error is not None:
                raise OSError(self.error, os.strerror(self.error))
            f.write(bytes(self.size - self.size // 2))

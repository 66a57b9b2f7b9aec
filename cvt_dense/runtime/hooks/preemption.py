"""``PreemptionHook``: on SIGTERM or SIGINT, finish the iteration, write a resumable
checkpoint and exit with status 128 + the signal number."""
import atexit
import multiprocessing
import os
import signal
from typing import Sequence

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..distributed import close_distributed
from ..mmengine_internals import built_loop
from .resumable_checkpoint import ResumableCheckpointHook


class Preempted(SystemExit):
    """Raised to end a run that was asked to stop; its ``code`` is 128 + the signal."""


class WorkerSignals:
    """A dataloader ``worker_init_fn``: while ``training`` is set, the worker ignores
    ``signals``; then calls ``worker_init_fn``.

    slurm signals every process of a job, and Ctrl-C every process of the terminal's
    group: a worker ended by the signal would end the main process with a DataLoader
    error before it writes its checkpoint. Once ``training`` is cleared (the main process
    is stopping), the signals end the worker with exit status 0: multiprocessing ends the
    workers of iterators still alive at exit with SIGTERM, and torch reports a worker
    ended by a signal as an error.

    Args:
        signals (Sequence[int]): Signal numbers.
        training (multiprocessing.Value): Shared flag, set by the main process while it
            handles the signals.
        worker_init_fn (callable, optional): The dataloader's own ``worker_init_fn``.
    """

    def __init__(self, signals: Sequence[int], training, worker_init_fn=None):
        self.signals = tuple(signals)
        self.training = training
        self.worker_init_fn = worker_init_fn

    def __call__(self, worker_id: int) -> None:
        for signum in self.signals:
            signal.signal(signum, self._handle)
        if self.worker_init_fn is not None:
            self.worker_init_fn(worker_id)

    def _handle(self, signum, frame) -> None:
        if not self.training.value:
            os._exit(0)


@HOOKS.register_module(force=True)
class PreemptionHook(Hook):
    """Stop training cleanly when the scheduler asks (slurm and Kubernetes send SIGTERM).

    The signal handler only records the signal. At the end of the current iteration (in
    a distributed run, of the same iteration on every rank: the ranks agree through an
    all-reduce) the run's :class:`ResumableCheckpointHook` writes ``latest.pth``, the
    ``last_checkpoint`` pointer is updated, and the process exits with status
    ``128 + signal number`` (143 for SIGTERM, 130 for SIGINT), as a shell reports a
    process ended by that signal (when a checkpoint was written at that iteration anyway,
    it is the one resumed from). ``tools/train.py --resume`` continues from there.
    During validation the run stops after the current validation batch when the
    training position is already checkpointed. A second signal ends the process at once.
    Dataloader workers of training and validation ignore the signals while the main process
    trains (see :class:`WorkerSignals`).

    Args:
        signals (Sequence[str]): Names of the signals handled. Defaults to
            ``('SIGTERM', 'SIGINT')``.
    """

    priority = 'LOWEST'  # after the checkpoint hook: a signal arriving while it writes
    # is handled at the end of the same iteration

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGINT')):
        self.signals = [getattr(signal, name) for name in signals]
        self._received = 0
        self._previous = {}
        self._checkpoints = None
        self._training = multiprocessing.Value('b', 0, lock=False)  # seen by the workers

    def _handle(self, signum, frame) -> None:
        if self._received:  # asked twice: stop now
            self._restore_handlers()
            signal.raise_signal(signum)
            return
        self._received = signum

    def _restore_handlers(self) -> None:
        self._training.value = 0
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        # Registered in before_train when training ends with an exception: atexit runs it
        # before multiprocessing's exit handler (registered earlier), which ends the
        # workers with SIGTERM.
        atexit.unregister(self._restore_handlers)

    def before_run(self, runner) -> None:
        # Before ResumableCheckpointHook.before_train starts the training workers.
        if built_loop(runner, 'train') is None:
            return  # not training
        for kind in ('train', 'val'):
            loop = built_loop(runner, kind)
            if loop is not None:
                dataloader = loop.dataloader
                if not isinstance(dataloader.worker_init_fn, WorkerSignals):
                    dataloader.worker_init_fn = WorkerSignals(
                        self.signals, self._training, dataloader.worker_init_fn)

    def before_train(self, runner) -> None:
        hooks = [h for h in runner.hooks if isinstance(h, ResumableCheckpointHook)]
        if not hooks:  # found out now, not when the signal comes
            raise RuntimeError('PreemptionHook needs a ResumableCheckpointHook '
                               '(default_hooks.checkpoint) to write its checkpoint')
        self._checkpoints = hooks[0]
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        self._training.value = 1
        atexit.register(self._restore_handlers)

    def after_train(self, runner) -> None:
        self._restore_handlers()

    def _agreed_signal(self) -> int:
        if get_world_size() == 1:
            return self._received
        received = torch.tensor(self._received)
        all_reduce(received, op='max')
        return int(received.item())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        signum = self._agreed_signal()
        if signum:
            path = self._checkpoints.checkpoint_now(runner)
            self._stop(runner, signum, f'after iteration {runner.iter + 1}', path)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """During validation within training, stop at once when the training position
        is already in a checkpoint (the usual case: checkpoints are written before
        validation); that validation is not repeated after resuming. Otherwise the run
        stops after the next training iteration."""
        if not self._previous:  # not training (tools/test.py, runner.val())
            return
        signum = self._agreed_signal()
        if not signum:
            return
        path = self._checkpoints.checkpoint_after(runner.iter)
        if path is not None:
            self._stop(runner, signum, f'during validation after iteration {runner.iter}',
                       path)

    def _stop(self, runner, signum: int, when: str, path: str) -> None:
        runner.logger.warning(f'{signal.Signals(signum).name} received: stopped {when}; '
                              f'resumable checkpoint {path} (resume with --resume)')
        self._restore_handlers()
        close_distributed()
        raise Preempted(128 + signum)

"""``ResumableCheckpointHook``: mmengine's ``CheckpointHook`` with crash-safe files, a
periodic overwritten ``latest.pth`` and the state an exact mid-epoch resume needs."""
import functools
import glob
import os
import os.path as osp
import time
from typing import Optional

import torch
from mmengine.dist import broadcast, is_main_process
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from ..atomic_file import commit_file, temporary_name, write_text_atomic
from ..checkpoint_finder import POINTER_FILE
from ..mmengine_internals import StepCheckpointHook, wrap_save_checkpoint
from ..train_state import (all_rng_states, data_position, own_rng_state, rng_state,
                           restart_train_iterator, resume_data_position,
                           seed_sample_randomness, set_rng_state)

STATE_KEY = 'cvt_dense_train_state'
NONFINITE_STREAK = 'nonfinite_streak'  # message-hub info set by NonFiniteGuardHook


def _atomic(save):
    """``runner.save_checkpoint`` writing to a temporary name, flushing, then renaming.

    Only local paths are affected; other storage backends keep mmengine's behaviour.
    """
    @functools.wraps(save)
    def atomic_save(out_dir, filename, *args, **kwargs):
        if '://' in str(out_dir) or kwargs.get('backend_args') or kwargs.get(
                'file_client_args'):
            return save(out_dir, filename, *args, **kwargs)
        path = osp.join(out_dir, filename)
        tmp_path = temporary_name(path)
        save(out_dir, osp.basename(tmp_path), *args, **kwargs)
        if is_main_process():
            commit_file(tmp_path, path)

    return atomic_save


def make_saves_atomic(runner) -> None:
    """Make ``runner.save_checkpoint`` crash-safe (see :func:`_atomic`); once per runner."""
    wrap_save_checkpoint(runner, _atomic)


@HOOKS.register_module(force=True)
class ResumableCheckpointHook(StepCheckpointHook):
    """``CheckpointHook`` whose checkpoints survive crashes and resume exactly.

    On top of mmengine's hook:

    - every checkpoint is written to a temporary name, flushed and renamed, and the
      ``last_checkpoint`` pointer is replaced atomically after it (temporary files of a
      run killed while writing are removed when training starts again);
    - ``latest.pth`` (one file, overwritten) is written every ``latest_interval``
      iterations and/or every ``latest_seconds`` seconds, so that a killed run loses
      little; :class:`PreemptionHook` writes it on SIGTERM too;
    - checkpoints carry the RNG states of every rank and the position in the training
      data; a resumed run continues mid-epoch without repeating or skipping samples;
    - each training sample is loaded under seeds derived from the run's seed, the rank,
      the pass and its position in the pass, so that its augmentations do not depend on
      which process loads it: a run ends with the same weights with any ``num_workers``,
      stopped and resumed or not;
    - no iteration-interval checkpoint is written while non-finite losses are being skipped
      (see :class:`NonFiniteGuardHook`): the latest checkpoint stays the last good one.

    Args:
        latest_interval (int, optional): Write ``latest.pth`` every this many iterations.
            None or 0: never by count.
        latest_seconds (float, optional): Write ``latest.pth`` when this many seconds have
            passed since the last checkpoint. None or 0: never by time.
        latest_name (str): File name of the periodic checkpoint. Defaults to
            ``'latest.pth'``.
        seed_samples (bool): Load each training sample under seeds of its own (see
            above). False: samples draw from the generators of the process that loads
            them (mmengine's behaviour), and a resumed run with ``num_workers > 0`` draws
            other augmentations than one that never stopped. Defaults to True.
        **kwargs: Arguments of :class:`mmengine.hooks.CheckpointHook`.
    """

    def __init__(self, latest_interval: Optional[int] = None,
                 latest_seconds: Optional[float] = None, latest_name: str = 'latest.pth',
                 seed_samples: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.latest_interval = latest_interval or 0
        self.latest_seconds = latest_seconds or 0
        self.latest_name = latest_name
        self.seed_samples = seed_samples
        self._last_save_time = time.monotonic()
        self._epoch_start_iter = 0
        self._rng_states = None
        self._resume_state = None
        self._resumed_batches = 0
        self._saved = (None, None)  # (iteration, path) of the last checkpoint written

    # -- writing ---------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        super().before_train(runner)
        make_saves_atomic(runner)
        if is_main_process() and '://' not in str(self.out_dir):
            for stale in glob.glob(osp.join(self.out_dir, '.*.tmp[0-9]*')):
                runner.logger.warning(f'removing {stale}, left by a run killed while '
                                      f'writing a checkpoint')
                os.remove(stale)
        self._last_save_time = time.monotonic()
        if self.seed_samples:
            seed_sample_randomness(runner.train_loop.dataloader, runner.seed)
        state, self._resume_state = self._resume_state, None
        if state is not None and runner.iter == state['iter'] and runner.iter > 0:
            self._start_resumed_data(runner, state)
        elif isinstance(runner.train_loop, IterBasedTrainLoop):
            # Made with the loop, before the hooks prepared its dataloader.
            restart_train_iterator(runner.train_loop)

    def before_train_epoch(self, runner) -> None:
        self._epoch_start_iter = runner.iter - self._resumed_batches
        self._resumed_batches = 0

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.message_hub.get_info(NONFINITE_STREAK, 0):
            return
        saved_before = self._saved
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if self._saved == saved_before and self._latest_due(runner):
            self.save_latest(runner)

    def _latest_due(self, runner) -> bool:
        if self.latest_interval and (runner.iter + 1) % self.latest_interval == 0:
            return True
        if not self.latest_seconds:
            return False
        # Ranks' clocks differ: rank 0 decides for all.
        due = torch.tensor(
            int(time.monotonic() - self._last_save_time >= self.latest_seconds))
        broadcast(due, src=0)
        return bool(due.item())

    def checkpoint_after(self, iteration: int) -> Optional[str]:
        """The checkpoint written after ``iteration`` iterations, if any."""
        saved_iteration, path = self._saved
        return path if saved_iteration == iteration else None

    def checkpoint_now(self, runner) -> str:
        """A checkpoint of the iteration just finished: the one already written at this
        iteration, else a new ``latest.pth``. Called by every rank."""
        return self.checkpoint_after(runner.iter + 1) or self.save_latest(runner)

    def save_latest(self, runner) -> str:
        """Write ``latest.pth`` for the iteration just finished; return its path.

        Called by every rank (the RNG states are gathered); rank 0 writes.
        """
        path = osp.join(self.out_dir, self.latest_name)
        runner.logger.info(f'Saving {path} at {runner.iter + 1} iterations')
        self._rng_states = all_rng_states()
        runner.save_checkpoint(self.out_dir, self.latest_name,
                               save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler,
                               meta=dict(epoch=runner.epoch, iter=runner.iter + 1),
                               by_epoch=self.by_epoch)
        self._point_to(runner, path, runner.iter + 1)
        return path

    def save_step_checkpoint(self, runner, step, meta):
        self._rng_states = all_rng_states()
        super().save_step_checkpoint(runner, step, meta)
        self._point_to(runner, self.last_ckpt, meta['iter'])

    def _point_to(self, runner, path: str, iteration: int) -> None:
        self._last_save_time = time.monotonic()
        self._saved = (iteration, path)
        if is_main_process():
            write_text_atomic(osp.join(runner.work_dir, POINTER_FILE), path)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint['meta']
        checkpoint[STATE_KEY] = dict(
            rng=self._rng_states or [rng_state()],  # no collective here: rank 0 only
            data_batches=data_position(runner, meta, self._epoch_start_iter))
        self._rng_states = None

    # -- resuming --------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(STATE_KEY)
        if state is not None:
            # Applied in before_train only if this load is a resume (not load_from).
            self._resume_state = dict(state, iter=checkpoint['meta']['iter'])

    def _start_resumed_data(self, runner, state: dict) -> None:
        batches = state['data_batches']
        self._resumed_batches = batches
        rng = own_rng_state(state['rng'])
        resume_data_position(runner, batches, lambda: set_rng_state(rng))
        runner.logger.info(f'Resuming the training data after {batches} batches of the '
                           f'current epoch; RNG states restored from the checkpoint')

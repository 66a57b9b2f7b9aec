"""``ResumableCheckpointHook``: mmengine's ``CheckpointHook`` whose checkpoints survive
crashes, kills and full disks, with a periodic overwritten ``latest.pth`` and the state an
exact mid-epoch resume needs."""
import glob
import os
import os.path as osp
import time
from collections import deque
from contextlib import contextmanager
from typing import List, Optional

import torch
from mmengine.dist import broadcast, is_main_process
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from ..atomic_file import write_text_atomic
from ..checkpoint_finder import POINTER_FILE, pointed_checkpoint
from ..checkpoint_storage import (CheckpointWriteError, free_bytes, guard_saves, human_size,
                                  kept_checkpoint, raise_agreed)
from ..mmengine_internals import StepCheckpointHook
from ..train_state import (all_rng_states, data_state, own_rng_state, resumed_batches,
                           rng_state, restart_train_iterator, resume_data_position,
                           seed_sample_randomness, set_rng_state)

STATE_KEY = 'cvt_dense_train_state'
NONFINITE_STREAK = 'nonfinite_streak'  # message-hub info set by NonFiniteGuardHook
ON_SAVE_ERROR = ('stop', 'retry')
BEST_INFO = ('best_ckpt', 'best_score')  # message-hub info of save_best (and _<metric>)


class DeferredRemovals:
    """A file backend whose ``remove`` and ``rmtree`` only record the path (mmengine
    removes the previous best checkpoint before it writes the new one).

    Args:
        backend: The file backend answering everything else.
    """

    def __init__(self, backend):
        self.backend = backend
        self.paths: List[str] = []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def remove(self, path: str) -> None:
        self.paths.append(path)

    rmtree = remove


@HOOKS.register_module(force=True)
class ResumableCheckpointHook(StepCheckpointHook):
    """``CheckpointHook`` whose checkpoints survive crashes, full disks and kills, and
    resume exactly.

    On top of mmengine's hook:

    - every checkpoint is written to a temporary name, flushed and renamed, and the
      ``last_checkpoint`` pointer is replaced atomically after it (temporary files of a
      run killed while writing are removed when training starts again);
    - the set of readable checkpoints never shrinks before a newer one is committed: the
      oldest beyond ``max_keep_ckpts`` and the previous best-metric checkpoint are removed
      only after the new file is in place (mmengine removes them first), and never the
      one ``last_checkpoint`` names;
    - the free space of the folder is checked before each save against the size of the
      last checkpoint (plus 10%), and when training starts against ``max_keep_ckpts`` + 1
      checkpoints (+ ``latest.pth``), with a warning;
    - a save that fails (full disk, quota, file-size limit, I/O or permission error, a
      storage backend's error) leaves the files on disk as they were and stops the run
      with :class:`CheckpointWriteError` naming the file, the error, the free and needed
      space and the checkpoint kept, or, with ``on_save_error='retry'``, says so and
      trains on, trying again at the next interval;
    - ``latest.pth`` (one file, overwritten) is written every ``latest_interval``
      iterations and/or every ``latest_seconds`` seconds, so that a killed run loses
      little; :class:`PreemptionHook` writes it on SIGTERM too;
    - checkpoints carry the RNG states of every rank and the position in the training
      data (in samples: a run resumed with another number of processes at the same
      global batch size continues the same global sample order);
    - each training sample is loaded under seeds derived from the run's seed, the pass
      and its global position in the pass, so that its augmentations do not depend on
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
        on_save_error (str): ``'stop'``: a checkpoint that cannot be written ends the run
            (``tools/train.py`` exits with status 1 and one line saying why).
            ``'retry'``: a warning says so and training goes on; the next interval tries
            again (the run's final checkpoint is not retried: failing, it stops the run).
            Defaults to ``'stop'``.
        check_free_space (bool): Check the free space before each save and when training
            starts. Defaults to True.
        **kwargs: Arguments of :class:`mmengine.hooks.CheckpointHook`.
    """

    def __init__(self, latest_interval: Optional[int] = None,
                 latest_seconds: Optional[float] = None, latest_name: str = 'latest.pth',
                 seed_samples: bool = True, on_save_error: str = 'stop',
                 check_free_space: bool = True, **kwargs):
        super().__init__(**kwargs)
        if on_save_error not in ON_SAVE_ERROR:
            raise ValueError(f'on_save_error must be one of {ON_SAVE_ERROR}, '
                             f'got {on_save_error!r}')
        self.latest_interval = latest_interval or 0
        self.latest_seconds = latest_seconds or 0
        self.latest_name = latest_name
        self.seed_samples = seed_samples
        self.on_save_error = on_save_error
        self.check_free_space = check_free_space
        self._saves = None
        self._last_save_time = time.monotonic()
        self._epoch_start_iter = 0
        self._rng_states = None
        self._resume_state = None
        self._resumed_batches = 0
        self._saved = (None, None)  # (iteration, path) of the last checkpoint written

    # -- writing ---------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        self.prepare_storage(runner)
        self._last_save_time = time.monotonic()
        if self.seed_samples:
            seed_sample_randomness(runner.train_loop.dataloader, runner.seed)
        state, self._resume_state = self._resume_state, None
        if state is not None and runner.iter == state['iter'] and runner.iter > 0:
            self._start_resumed_data(runner, state)
        elif isinstance(runner.train_loop, IterBasedTrainLoop):
            # Made with the loop, before the hooks prepared its dataloader.
            restart_train_iterator(runner.train_loop)

    def prepare_storage(self, runner) -> None:
        """mmengine's preparation (output folder, file backend, kept checkpoints), then:
        saves made safe (:func:`guard_saves`), the checkpoints a resumed run keeps beyond
        ``max_keep_ckpts`` removed (not the one ``last_checkpoint`` names), temporary
        files of a killed writer removed, and a warning when the folder is too small."""
        held_back = self._hold_back_pruning(runner)
        super().before_train(runner)
        self._saves = guard_saves(runner, self.check_free_space)
        if not is_main_process() or '://' in str(self.out_dir):
            return
        for step in held_back:
            self._remove_checkpoint(runner, self._step_path(step))
        resumed = pointed_checkpoint(runner.work_dir)
        if resumed is not None and osp.isfile(resumed):  # the size to expect
            self._saves.sizes.setdefault(True, osp.getsize(resumed))
        for stale in glob.glob(osp.join(self.out_dir, '.*.tmp[0-9]*')):
            runner.logger.warning(f'removing {stale}, left by a run killed while writing a '
                                  f'checkpoint')
            os.remove(stale)
        if self.check_free_space:
            self._warn_if_folder_is_small(runner)

    def _hold_back_pruning(self, runner) -> list:
        """Steps of a resumed run's kept checkpoints beyond ``max_keep_ckpts``: mmengine's
        ``before_train`` would remove them; they are removed afterwards, sparing the one
        ``last_checkpoint`` names. A checkpoint lists the one it replaces among the kept
        (see :meth:`save_step_checkpoint`): a run killed before removing it removes it
        when resumed."""
        kept = list(runner.message_hub.get_info('keep_ckpt_ids') or [])
        if self.max_keep_ckpts <= 0 or len(kept) <= self.max_keep_ckpts:
            return []
        runner.message_hub.update_info('keep_ckpt_ids', kept[-self.max_keep_ckpts:])
        return kept[:-self.max_keep_ckpts]

    def _warn_if_folder_is_small(self, runner) -> None:
        """Warn when the folder cannot hold the checkpoints the run keeps, plus the one
        being written (and ``latest.pth``)."""
        size = self._saves.expected_bytes(with_optimizer=True)
        kept = max(self.max_keep_ckpts, 0)
        has_latest = bool(self.latest_interval or self.latest_seconds)
        files = [self._step_path(step) for step in getattr(self, 'keep_ckpt_ids', ())]
        files += [osp.join(self.out_dir, self.latest_name)] if has_latest else []
        present = sum(osp.getsize(path) for path in files if osp.isfile(path))
        needed = (kept + 1 + has_latest) * size - present
        free = free_bytes(self.out_dir)
        if free >= needed:
            return
        parts = [f'max_keep_ckpts={self.max_keep_ckpts}' if kept else None,
                 'one being written', self.latest_name if has_latest else None]
        there = f', {human_size(present)} of it there already' if present else ''
        then = ('is retried at the next interval' if self.on_save_error == 'retry'
                else 'stops the run')
        runner.logger.warning(
            f'{self.out_dir} has {human_size(free)} free, less than the {human_size(needed)} '
            f'its checkpoints of about {human_size(size)} need '
            f'({" + ".join(part for part in parts if part)}{there}): a checkpoint that '
            f'does not fit {then}')

    def _step_path(self, step: int) -> str:
        return self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(step))

    def before_train_epoch(self, runner) -> None:
        self._epoch_start_iter = runner.iter - self._resumed_batches
        self._resumed_batches = 0

    @contextmanager
    def _stop_or_retry(self, runner, final: bool):
        """A :class:`CheckpointWriteError` in the block stops the run, or with
        ``on_save_error='retry'`` (unless ``final``, the run's last checkpoint) is logged
        and training goes on."""
        try:
            yield
        except CheckpointWriteError as err:
            if self.on_save_error != 'retry':
                raise
            if final:
                raise CheckpointWriteError(f'{err}; it was the last checkpoint of the '
                                           f'run') from err
            runner.logger.warning(f'{err}; training goes on (on_save_error=\'retry\'): '
                                  f'the next interval tries again')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if runner.message_hub.get_info(NONFINITE_STREAK, 0):
            return
        saved_before = self._saved
        final = not self.by_epoch and self.is_last_train_iter(runner)
        with self._stop_or_retry(runner, final):
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
            if self._saved == saved_before and self._latest_due(runner):
                self.save_latest(runner)

    def after_train_epoch(self, runner) -> None:
        with self._stop_or_retry(runner, self.by_epoch and self.is_last_train_epoch(runner)):
            super().after_train_epoch(runner)

    def after_val_epoch(self, runner, metrics) -> None:
        with self._stop_or_retry(runner, final=False):
            super().after_val_epoch(runner, metrics)

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

        Called by every rank (the RNG states are gathered); rank 0 writes. The previous
        ``latest.pth`` stays until the new one replaces it.
        """
        path = osp.join(self.out_dir, self.latest_name)
        runner.logger.info(f'Saving {path} at {runner.iter + 1} iterations')
        self._rng_states = all_rng_states()
        try:
            runner.save_checkpoint(self.out_dir, self.latest_name,
                                   save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler,
                                   meta=dict(epoch=runner.epoch, iter=runner.iter + 1),
                                   by_epoch=self.by_epoch)
        finally:
            self._rng_states = None
        self._point_to(runner, path, runner.iter + 1)
        return path

    def save_step_checkpoint(self, runner, step, meta):
        """mmengine's per-interval save in the safe order: write the new checkpoint, point
        ``last_checkpoint`` to it, then remove the oldest beyond ``max_keep_ckpts``."""
        filename = self.filename_tmpl.format(step)
        path = self.file_backend.join_path(self.out_dir, filename)
        kept = list(getattr(self, 'keep_ckpt_ids', ()))  # only made with max_keep_ckpts > 0
        if self.max_keep_ckpts > 0 and kept[-1:] != [step]:
            kept.append(step)  # the old ones stay listed until removed (see before_train)
        hub = runner.message_hub
        before = {key: hub.runtime_info[key] for key in ('keep_ckpt_ids', 'last_ckpt')
                  if key in hub.runtime_info}
        if self.max_keep_ckpts > 0:
            hub.update_info('keep_ckpt_ids', kept)
        hub.update_info('last_ckpt', path)
        self._rng_states = all_rng_states()
        try:
            runner.save_checkpoint(self.out_dir, filename, self.file_client_args,
                                   save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler,
                                   meta=meta, by_epoch=self.by_epoch,
                                   backend_args=self.backend_args, **self.args)
        except CheckpointWriteError:
            for key in ('keep_ckpt_ids', 'last_ckpt'):
                hub.pop_info(key)
            hub.update_info_dict(before)
            raise
        finally:
            self._rng_states = None
        self.last_ckpt = path
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids = deque(kept[-self.max_keep_ckpts:], self.max_keep_ckpts)
        self._point_to(runner, path, meta['iter'])
        if self.max_keep_ckpts > 0:
            hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
            for old_step in kept[:-self.max_keep_ckpts]:
                self._remove_checkpoint(runner, self._step_path(old_step))

    def save_best_checkpoint(self, runner, metrics):
        """mmengine's best-metric save, with the previous best checkpoint removed only once
        the new one is written."""
        hub = runner.message_hub
        before = {key: value for key, value in hub.runtime_info.items()
                  if key.startswith(BEST_INFO)}
        backend, deferred = self.file_backend, DeferredRemovals(self.file_backend)
        self.file_backend = deferred
        try:
            super().save_best_checkpoint(runner, metrics)
        except CheckpointWriteError:
            self._undo_unwritten_best(runner, before)
            raise
        finally:
            self.file_backend = backend
            for path in deferred.paths:
                self._remove_checkpoint(runner, path)

    def _undo_unwritten_best(self, runner, before: dict) -> None:
        """Point the best scores and files back to the previous best checkpoint of each
        metric whose new best checkpoint could not be written."""
        hub = runner.message_hub
        for key, path in list(hub.runtime_info.items()):
            if not key.startswith('best_ckpt') or path == before.get(key) or \
                    self.file_backend.exists(path):
                continue
            for info in (key, key.replace('best_ckpt', 'best_score', 1)):
                hub.pop_info(info)
                if info in before:
                    hub.update_info(info, before[info])
            if key == 'best_ckpt':
                self.best_ckpt_path = before.get(key)
            else:
                self.best_ckpt_path_dict[key[len('best_ckpt_'):]] = before.get(key)
            if before.get(key):
                runner.logger.warning(f'the previous best checkpoint {before[key]} is kept')

    def _remove_checkpoint(self, runner, path: str) -> None:
        """Remove a checkpoint that a newer one replaced; never the one ``last_checkpoint``
        names, the last one written or a current best one."""
        if not is_main_process():
            return
        hub = runner.message_hub
        spared = [pointed_checkpoint(runner.work_dir), self.last_ckpt]
        spared += [value for key, value in hub.runtime_info.items()
                   if key.startswith('best_ckpt')]
        if any(other and same_file(path, other) for other in spared):
            return
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are folders
            self.file_backend.rmtree(path)

    def _point_to(self, runner, path: str, iteration: int) -> None:
        """Point ``last_checkpoint`` to the checkpoint ``path`` just written."""
        problem = None
        if is_main_process():
            pointer = osp.join(runner.work_dir, POINTER_FILE)
            try:
                write_text_atomic(pointer, path)
            except OSError as err:
                problem = (f'wrote checkpoint {path} but could not update {pointer} '
                           f'({type(err).__name__}: {err}); '
                           f'{kept_checkpoint(runner.work_dir)}')
        raise_agreed(problem)
        self._last_save_time = time.monotonic()
        self._saved = (iteration, path)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint['meta']
        checkpoint[STATE_KEY] = dict(
            rng=self._rng_states or [rng_state()],  # no collective here: rank 0 only
            **data_state(runner, meta, self._epoch_start_iter))

    # -- resuming --------------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(STATE_KEY)
        if state is not None:
            # Applied in before_train only if this load is a resume (not load_from).
            self._resume_state = dict(state, iter=checkpoint['meta']['iter'])

    def _start_resumed_data(self, runner, state: dict) -> None:
        batches = resumed_batches(state, runner.train_loop.dataloader, runner.logger)
        self._resumed_batches = batches
        rng = own_rng_state(state['rng'])
        resume_data_position(runner, batches, lambda: set_rng_state(rng))
        runner.logger.info(f'Resuming the training data after {batches} batches of the '
                           f'current epoch; RNG states restored from the checkpoint')


def same_file(path: str, other: str) -> bool:
    """Whether two checkpoint paths (local or a backend's URL) name the same file."""
    if '://' in path or '://' in other:
        return path == other
    return osp.abspath(path) == osp.abspath(other)

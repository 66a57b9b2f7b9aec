"""Checkpoint writes that fail cleanly: free space checked first, a temporary file that is
renamed into place only when complete, and one message naming what happened.

A full disk (ENOSPC), a quota (EDQUOT), a file-size limit (EFBIG), an I/O error (EIO), lost
permissions (EACCES) or a storage backend's error all end a write the same way: the
temporary file is removed, the file it would have replaced is untouched, and
:class:`CheckpointWriteError` says which file, why, how much space is free and needed, and
which checkpoint ``last_checkpoint`` still names.
"""
import functools
import os.path as osp
import shutil
from typing import Callable, Dict, Optional

import torch
from mmengine.dist import broadcast_object_list, get_world_size, is_main_process
from mmengine.model import is_model_wrapper

from .atomic_file import commit_file, discard, temporary_name
from .checkpoint_finder import pointed_checkpoint
from .mmengine_internals import wrap_save_checkpoint

SPACE_MARGIN = 0.1  # a checkpoint may grow a little (message hub, best scores)


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written; the files already on disk are unchanged."""


def free_bytes(folder: str) -> int:
    """Bytes free for this user in ``folder``'s file system."""
    return shutil.disk_usage(folder).free


def human_size(size: float) -> str:
    """``size`` bytes as ``'2.8 MB'`` (powers of 1000, as ``df -H``)."""
    for unit in ('B', 'kB', 'MB', 'GB', 'TB'):
        if abs(size) < 1000 or unit == 'TB':
            return f'{size:.0f} {unit}' if unit == 'B' else f'{size:.1f} {unit}'
        size /= 1000


def tensor_bytes(obj) -> int:
    """Bytes of the tensors in a nest of dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(value) for value in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(value) for value in obj)
    return 0


def estimated_checkpoint_bytes(runner, with_optimizer: bool) -> int:
    """What a checkpoint of ``runner`` will take, from its tensors: the model's state and,
    ``with_optimizer``, the optimizer's. Before the first step an optimizer has no state
    yet; it is then counted as two copies of the trainable parameters (Adam's moments; an
    overestimate for SGD)."""
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    size = tensor_bytes(model.state_dict())
    if with_optimizer:
        optimizer_state = tensor_bytes(runner.optim_wrapper.state_dict())
        trainable = sum(p.numel() * p.element_size() for p in model.parameters()
                        if p.requires_grad)
        size += optimizer_state or 2 * trainable
    return size


def is_local(out_dir: str, kwargs: dict) -> bool:
    """Whether a save to ``out_dir`` with ``runner.save_checkpoint``'s ``kwargs`` goes to a
    local folder (not a storage backend such as S3 or Petrel)."""
    return '://' not in str(out_dir) and not kwargs.get('backend_args') and not kwargs.get(
        'file_client_args')


def raise_agreed(problem: Optional[str]) -> None:
    """Raise :class:`CheckpointWriteError` with rank 0's ``problem`` on every rank, if it
    has one (rank 0 writes the files; the other ranks must stop or go on with it). A
    collective call in distributed runs."""
    if get_world_size() > 1:
        shared = [problem]
        broadcast_object_list(shared, src=0)
        problem = shared[0]
    if problem is not None:
        raise CheckpointWriteError(problem)


class GuardedSave:
    """``runner.save_checkpoint`` made safe for the files already on disk.

    For a local folder, the free space is checked first: a checkpoint that would not fit
    (its expected size, see :meth:`expected_bytes`, plus 10%) is not started. It is then
    written under a temporary name, flushed and renamed into place; on any failure the
    temporary file is removed. Other storage backends are written as mmengine does; their
    errors are reported the same way. Every rank must call it (rank 0 writes, and all
    ranks raise :class:`CheckpointWriteError` when the write failed).

    Args:
        save (callable): The runner's ``save_checkpoint``.
        runner (mmengine.runner.Runner): The runner.
        check_free_space (bool): Check the free space before writing. Defaults to True.
    """

    def __init__(self, save: Callable, runner, check_free_space: bool = True):
        functools.update_wrapper(self, save)
        self.save = save
        self.runner = runner
        self.check_free_space = check_free_space
        self.sizes: Dict[bool, int] = {}  # with optimizer or not -> last size written

    def expected_bytes(self, with_optimizer: bool) -> int:
        """The size of the last checkpoint of the same kind (with or without the optimizer)
        written, else :func:`estimated_checkpoint_bytes`."""
        if with_optimizer in self.sizes:
            return self.sizes[with_optimizer]
        return estimated_checkpoint_bytes(self.runner, with_optimizer)

    def __call__(self, out_dir, filename, file_client_args=None, **kwargs):
        problem = None
        if is_main_process():
            problem = self._write(str(out_dir), filename,
                                  dict(kwargs, file_client_args=file_client_args))
        raise_agreed(problem)

    def _write(self, out_dir: str, filename: str, kwargs: dict) -> Optional[str]:
        path = osp.join(out_dir, filename)
        with_optimizer = kwargs.get('save_optimizer', True)
        needed = self.expected_bytes(with_optimizer)
        if not is_local(out_dir, kwargs):
            try:
                self.save(out_dir, filename, **kwargs)
            except Exception as err:  # noqa: BLE001  any backend error: report, keep going
                return self.failure(path, err, needed)
            return None
        if self.check_free_space:
            free = free_bytes(out_dir)
            if free < needed * (1 + SPACE_MARGIN):
                return self.failure(path, 'not enough free space (checked before writing)',
                                    needed, free)
        tmp_path = temporary_name(path)
        try:
            self.save(out_dir, osp.basename(tmp_path), **kwargs)
            size = osp.getsize(tmp_path)
            commit_file(tmp_path, path)
        except BaseException as err:
            discard(tmp_path)
            if not isinstance(err, Exception):
                raise  # KeyboardInterrupt, SystemExit: not a storage problem
            return self.failure(path, err, needed)
        self.sizes[with_optimizer] = size
        return None

    def failure(self, path: str, error, needed: int, free: Optional[int] = None) -> str:
        """The one-line message of a checkpoint ``path`` that could not be written."""
        if isinstance(error, BaseException):
            error = f'{type(error).__name__}: {error}'
        space = ''
        if '://' not in path:
            folder = osp.dirname(path)
            free = free_bytes(folder) if free is None else free
            space = f'; {human_size(free)} free in {folder}, about {human_size(needed)} needed'
        return (f'could not write checkpoint {path}: {error}{space}; '
                f'{kept_checkpoint(self.runner.work_dir)}')


def kept_checkpoint(work_dir: str) -> str:
    """What ``--resume`` continues from, in words."""
    kept = pointed_checkpoint(work_dir)
    if kept is None:
        return 'no checkpoint of this run is kept yet'
    if osp.exists(kept) or '://' in kept:
        return f'kept {kept} (named by last_checkpoint; resume from it with --resume)'
    return f'last_checkpoint names {kept}, which is missing'



def guard_saves(runner, check_free_space: bool = True) -> GuardedSave:
    """Make ``runner.save_checkpoint`` a :class:`GuardedSave` (once per runner); return it."""
    guarded = wrap_save_checkpoint(
        runner, lambda save: GuardedSave(save, runner, check_free_space))
    guarded.check_free_space = check_free_space
    return guarded

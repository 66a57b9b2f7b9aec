"""One training run per work dir: ``train.lock`` names the run that holds it.

Two runs writing the same checkpoints and ``last_checkpoint`` (a requeued job that starts
while the old one still writes, the same command started twice) would remove each other's
checkpoints. The lock file holds the host, process id and start time of its run; a second
run refuses to start and names the first. A lock whose process is gone (same host: the pid
is not running, or is another process, or the machine was restarted since) is taken over
with a warning. A lock from another host cannot be checked: ``tools/train.py --force``
takes it over.
"""
import json
import logging
import os
import os.path as osp
import socket
import sys
import time
from contextlib import contextmanager
from typing import Optional

from mmengine.logging import print_log

LOCK_FILE = 'train.lock'


class WorkDirLocked(RuntimeError):
    """Another run holds the work dir."""


def _boot_id() -> Optional[str]:
    try:
        with open('/proc/sys/kernel/random/boot_id') as f:
            return f.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> Optional[str]:
    """When process ``pid`` started, in clock ticks since boot (Linux), else None: tells a
    process from a later one that reuses its pid."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_process() -> dict:
    """The lock's content for this process."""
    return dict(host=socket.gethostname(), pid=os.getpid(),
                started=time.strftime('%Y-%m-%d %H:%M:%S %z'), boot_id=_boot_id(),
                process_start=_process_start(os.getpid()), command=' '.join(sys.argv))


def describe(holder: dict) -> str:
    return (f'host {holder.get("host")}, pid {holder.get("pid")}, started '
            f'{holder.get("started")}')


def is_gone(holder: dict) -> bool:
    """Whether the process that wrote ``holder`` has certainly ended (only known on its
    own host)."""
    if holder.get('host') != socket.gethostname():
        return False
    if holder.get('boot_id') and _boot_id() and holder['boot_id'] != _boot_id():
        return True  # the machine restarted since
    pid = holder.get('pid')
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # a process of another user: running
    started = _process_start(pid)
    return bool(holder.get('process_start') and started
                and started != holder['process_start'])


def read_holder(path: str) -> Optional[dict]:
    """The lock's content; None when it cannot be read (e.g. still being written)."""
    try:
        with open(path) as f:
            holder = json.load(f)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _create(path: str, holder: dict) -> bool:
    """Create the lock file holding ``holder``; False if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, 'w') as f:
        json.dump(holder, f)
        f.flush()
        os.fsync(f.fileno())
    return True


def _take_over(path: str, holder: Optional[dict]) -> bool:
    """Move the lock of ``holder`` out of the way; False when another run did first."""
    aside = f'{path}.old{os.getpid()}'
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    if read_holder(aside) != holder:  # replaced meanwhile by a run that took it over
        os.rename(aside, path)
        return False
    os.remove(aside)
    return True


def acquire(work_dir: str, force: bool = False) -> dict:
    """Take ``work_dir``'s lock for this process; return its content.

    Args:
        work_dir (str): The run's work dir (made if missing).
        force (bool): Take the lock over even when its run may still be running.

    Raises:
        WorkDirLocked: Another run holds it (its host, pid and start time are named).
    """
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_FILE)
    mine = this_process()
    for _ in range(10):  # a few rounds when other runs take it over at the same time
        if _create(path, mine):
            return mine
        holder = read_holder(path)
        gone = holder is not None and is_gone(holder)
        if holder is None and not force:
            raise WorkDirLocked(
                f'{path} cannot be read (a run starting now, or a damaged file): if no '
                f'run uses {work_dir}, remove it or start with --force')
        if not (gone or force):
            raise WorkDirLocked(
                f'{work_dir} is used by another training run ({describe(holder)}; lock '
                f'file {path}): wait for it to end, or if it has ended (e.g. on another '
                f'machine), start with --force')
        if _take_over(path, holder):
            owner = describe(holder) if holder else 'an unreadable lock'
            reason = 'its process is no longer running' if gone else '--force'
            print_log(f'taking over {path} from the run of {owner} ({reason})',
                      logger='current', level=logging.WARNING)
    raise WorkDirLocked(f'could not take {path}: other runs keep taking it')


def release(work_dir: str, mine: dict) -> None:
    """Remove ``work_dir``'s lock if it is still the one ``mine`` (:func:`acquire`)."""
    path = osp.join(work_dir, LOCK_FILE)
    if read_holder(path) == mine:
        os.remove(path)


@contextmanager
def work_dir_lock(work_dir: str, force: bool = False):
    """Hold ``work_dir``'s lock for the block (:func:`acquire`); released when the block
    ends, by an exception or ``SystemExit`` (preemption) too. A killed process leaves it:
    the next run on the same host takes it over."""
    mine = acquire(work_dir, force)
    try:
        yield mine
    finally:
        release(work_dir, mine)

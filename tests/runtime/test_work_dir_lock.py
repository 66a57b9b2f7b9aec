"""One training run per work dir: a live holder is named and refused, a dead one's lock is
taken over with a warning, --force takes any."""
import json
import os
import socket
import subprocess
import sys

import pytest

from cvt_dense.runtime import work_dir_lock
from cvt_dense.runtime.work_dir_lock import (LOCK_FILE, WorkDirLocked, acquire, read_holder,
                                             this_process)


@pytest.fixture
def warnings(monkeypatch):
    messages = []
    monkeypatch.setattr(work_dir_lock, 'print_log', lambda msg, **kwargs: messages.append(msg))
    return messages


def write_lock(folder, **changes):
    holder = dict(this_process(), **changes)
    (folder / LOCK_FILE).write_text(json.dumps(holder))
    return holder


def ended_pid() -> int:
    """The pid of a process that has ended (not reused that fast)."""
    proc = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_a_second_run_is_refused_and_named(tmp_path, warnings):
    mine = acquire(str(tmp_path))
    assert read_holder(str(tmp_path / LOCK_FILE)) == mine
    assert (mine['host'], mine['pid']) == (socket.gethostname(), os.getpid())
    with pytest.raises(WorkDirLocked) as err:
        acquire(str(tmp_path))  # this process is alive: a second run of it is refused
    assert str(err.value).startswith(
        f'{tmp_path} is used by another training run (host {mine["host"]}, pid '
        f'{os.getpid()}, started {mine["started"]}; lock file {tmp_path}/{LOCK_FILE})')
    assert '--force' in str(err.value) and not warnings
    work_dir_lock.release(str(tmp_path), mine)
    assert not (tmp_path / LOCK_FILE).exists()


@pytest.mark.parametrize('dead', [dict(pid='ended'), dict(process_start='1'),
                                  dict(boot_id='another boot')])
def test_the_lock_of_an_ended_run_is_taken_over(tmp_path, warnings, dead):
    """Ended: its pid runs no process, runs a later process (reused), or the machine
    restarted since."""
    if dead.get('pid') == 'ended':
        dead['pid'] = ended_pid()
    old = write_lock(tmp_path, **dead)
    mine = acquire(str(tmp_path))
    assert mine['pid'] == os.getpid() and read_holder(str(tmp_path / LOCK_FILE)) == mine
    assert warnings == [f'taking over {tmp_path}/{LOCK_FILE} from the run of host '
                        f'{old["host"]}, pid {old["pid"]}, started {old["started"]} (its '
                        f'process is no longer running)']
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]


def test_another_host_or_an_unreadable_lock_needs_force(tmp_path, warnings):
    write_lock(tmp_path, host='node-17', pid=ended_pid())  # cannot be checked from here
    with pytest.raises(WorkDirLocked, match='another training run \\(host node-17'):
        acquire(str(tmp_path))
    assert acquire(str(tmp_path), force=True)['pid'] == os.getpid()
    assert warnings[-1].endswith('(--force)')
    (tmp_path / LOCK_FILE).write_text('{"host": ')  # cut short
    with pytest.raises(WorkDirLocked, match='cannot be read'):
        acquire(str(tmp_path))
    acquire(str(tmp_path), force=True)
    assert 'an unreadable lock (--force)' in warnings[-1]


def test_the_lock_is_released_when_the_block_ends_by_an_exception(tmp_path):
    with pytest.raises(SystemExit):
        with work_dir_lock.work_dir_lock(str(tmp_path / 'run')) as mine:
            assert read_holder(str(tmp_path / 'run' / LOCK_FILE)) == mine
            raise SystemExit(143)  # as PreemptionHook ends a run
    assert not (tmp_path / 'run' / LOCK_FILE).exists()
    other = write_lock(tmp_path, pid=1)
    work_dir_lock.release(str(tmp_path), this_process())  # not ours: left alone
    assert read_holder(str(tmp_path / LOCK_FILE)) == other

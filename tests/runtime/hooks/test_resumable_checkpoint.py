"""ResumableCheckpointHook without training: the order of writes and removals, failed saves
(stop or retry), best-metric checkpoints, the folder-size warning, when latest.pth is due."""
import errno
import os
import os.path as osp
import time
from collections import namedtuple
from types import SimpleNamespace

import pytest
from runtime.checkpoint_fakes import FakeRunner

from cvt_dense.runtime import checkpoint_storage
from cvt_dense.runtime.checkpoint_storage import CheckpointWriteError
from cvt_dense.runtime.hooks import ResumableCheckpointHook, resumable_checkpoint

DiskUsage = namedtuple('DiskUsage', 'total used free')


def prepared(tmp_path, **kwargs):
    """A hook ready to save into ``tmp_path`` (as before training), and its runner."""
    runner = FakeRunner(tmp_path)
    hook = ResumableCheckpointHook(by_epoch=False, interval=1, **kwargs)
    hook.prepare_storage(runner)
    return hook, runner


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def save_iteration(hook, runner, iteration):
    """What the training loop does for an interval checkpoint after ``iteration``."""
    runner.iter = iteration - 1
    hook.after_train_iter(runner, batch_idx=iteration - 1)


def pointed(tmp_path):
    return osp.basename((tmp_path / 'last_checkpoint').read_text())


def test_the_oldest_is_removed_after_the_new_one_is_in_place(tmp_path):
    hook, runner = prepared(tmp_path, max_keep_ckpts=2)
    for iteration in (1, 2, 3):
        save_iteration(hook, runner, iteration)
    # While iter_3.pth was written, iter_1.pth and iter_2.pth were both still there.
    assert {'iter_1.pth', 'iter_2.pth'} <= set(runner.seen[-1])
    assert files(tmp_path) == ['iter_2.pth', 'iter_3.pth', 'last_checkpoint']
    assert pointed(tmp_path) == 'iter_3.pth'
    assert runner.message_hub.get_info('keep_ckpt_ids') == [2, 3]


@pytest.mark.parametrize('error', [errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO,
                                   errno.EACCES])
def test_a_failed_save_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, error):
    hook, runner = prepared(tmp_path, max_keep_ckpts=1)
    save_iteration(hook, runner, 1)
    runner.error = error
    with pytest.raises(CheckpointWriteError) as err:
        save_iteration(hook, runner, 2)
    raised = OSError(error, os.strerror(error))  # PermissionError for EACCES
    assert str(err.value).startswith(f'could not write checkpoint {tmp_path}/iter_2.pth: '
                                     f'{type(raised).__name__}: {raised}; ')
    assert str(err.value).endswith(f'; kept {tmp_path}/iter_1.pth (named by '
                                   f'last_checkpoint; resume from it with --resume)')
    assert files(tmp_path) == ['iter_1.pth', 'last_checkpoint']
    assert pointed(tmp_path) == 'iter_1.pth' and hook.last_ckpt.endswith('iter_1.pth')
    assert runner.message_hub.get_info('keep_ckpt_ids') == [1]
    assert runner.message_hub.get_info('last_ckpt').endswith('iter_1.pth')


def test_a_pointer_that_cannot_be_updated_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    hook, runner = prepared(tmp_path, max_keep_ckpts=1)
    save_iteration(hook, runner, 1)

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(resumable_checkpoint, 'write_text_atomic', full_disk)
    with pytest.raises(CheckpointWriteError, match=rf'^wrote checkpoint {tmp_path}/iter_2.pth '
                       rf'but could not update {tmp_path}/last_checkpoint \(OSError: .*No '
                       rf'space left on device\); kept {tmp_path}/iter_1.pth'):
        save_iteration(hook, runner, 2)
    assert files(tmp_path) == ['iter_1.pth', 'iter_2.pth', 'last_checkpoint']
    assert pointed(tmp_path) == 'iter_1.pth'


def test_retry_says_so_and_saves_at_the_next_interval(tmp_path):
    hook, runner = prepared(tmp_path, max_keep_ckpts=1, on_save_error='retry')
    runner.max_iters = 4
    save_iteration(hook, runner, 1)
    runner.error = errno.ENOSPC
    save_iteration(hook, runner, 2)  # no exception: training goes on
    [warning] = runner.logger.messages['warning']
    assert warning.startswith(f'could not write checkpoint {tmp_path}/iter_2.pth')
    assert warning.endswith("; training goes on (on_save_error='retry'): the next interval "
                            "tries again")
    runner.error = None
    save_iteration(hook, runner, 3)
    assert files(tmp_path) == ['iter_3.pth', 'last_checkpoint']
    runner.error = errno.ENOSPC
    with pytest.raises(CheckpointWriteError, match='it was the last checkpoint of the run$'):
        save_iteration(hook, runner, 4)
    assert files(tmp_path) == ['iter_3.pth', 'last_checkpoint']


def test_the_free_space_check_fires_before_the_write(tmp_path, monkeypatch):
    hook, runner = prepared(tmp_path, max_keep_ckpts=1)
    save_iteration(hook, runner, 1)
    monkeypatch.setattr(checkpoint_storage.shutil, 'disk_usage',
                        lambda folder: DiskUsage(10 ** 9, 10 ** 9 - 500, 500))
    with pytest.raises(CheckpointWriteError, match=r'iter_2.pth: not enough free space '
                       r'\(checked before writing\); 500 B free in .*, about 1.0 kB needed'):
        save_iteration(hook, runner, 2)
    assert len(runner.seen) == 1  # not started
    assert files(tmp_path) == ['iter_1.pth', 'last_checkpoint']


def test_a_small_folder_is_warned_about_when_training_starts(tmp_path, monkeypatch):
    (tmp_path / 'iter_4.pth').write_bytes(bytes(1000))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    warnings = {}
    for free in (3500, 4500):
        monkeypatch.setattr(checkpoint_storage.shutil, 'disk_usage',
                            lambda folder: DiskUsage(10 ** 9, 10 ** 9 - free, free))
        runner = FakeRunner(tmp_path)
        runner.message_hub.update_info('keep_ckpt_ids', [4])  # resumed: iter_4.pth is kept
        hook = ResumableCheckpointHook(by_epoch=False, interval=1, max_keep_ckpts=3,
                                       latest_interval=10)
        hook.prepare_storage(runner)
        warnings[free] = runner.logger.messages['warning']
    # 5 checkpoints of 1 kB (the resumed one's size), 1 kB of them there already: 4 kB.
    assert warnings[4500] == []
    assert warnings[3500] == [
        f'{tmp_path} has 3.5 kB free, less than the 4.0 kB its checkpoints of about 1.0 kB '
        f'need (max_keep_ckpts=3 + one being written + latest.pth, 1.0 kB of it there '
        f'already): a checkpoint that does not fit stops the run']


def test_a_resumed_run_prunes_but_spares_the_pointed_checkpoint(tmp_path):
    for iteration in (1, 2, 3):
        (tmp_path / f'iter_{iteration}.pth').write_bytes(b'checkpoint')
    # Resumed from iter_2 (iter_3 was unreadable): last_checkpoint still names iter_2.
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    runner = FakeRunner(tmp_path)
    runner.message_hub.update_info('keep_ckpt_ids', [1, 2, 3])
    hook = ResumableCheckpointHook(by_epoch=False, interval=1, max_keep_ckpts=1)
    hook.prepare_storage(runner)
    assert files(tmp_path) == ['iter_2.pth', 'iter_3.pth', 'last_checkpoint']


def test_the_previous_best_is_removed_only_after_the_new_best_is_written(tmp_path):
    hook, runner = prepared(tmp_path, save_best='acc', rule='greater')
    runner.iter = 2
    hook.after_val_epoch(runner, dict(acc=0.5))
    assert files(tmp_path) == ['best_acc_iter_2.pth']
    runner.iter, runner.error = 4, errno.ENOSPC
    with pytest.raises(CheckpointWriteError):
        hook.after_val_epoch(runner, dict(acc=0.7))
    assert files(tmp_path) == ['best_acc_iter_2.pth']
    hub = runner.message_hub
    assert (hub.get_info('best_score'), osp.basename(hub.get_info('best_ckpt'))) == (
        0.5, 'best_acc_iter_2.pth')  # still the previous best
    assert 'the previous best checkpoint' in runner.logger.messages['warning'][-1]

    runner.iter, runner.error = 6, None
    hook.after_val_epoch(runner, dict(acc=0.6))  # better than the kept 0.5
    assert 'best_acc_iter_2.pth' in runner.seen[-1]  # there while the new one was written
    assert files(tmp_path) == ['best_acc_iter_6.pth']
    assert hub.get_info('best_score') == 0.6


@pytest.mark.parametrize('interval, seconds, iteration, idle, due', [
    (3, None, 2, 0, True), (3, None, 3, 0, False), (None, 60, 5, 61, True),
    (None, 60, 5, 10, False), (None, None, 99, 1e6, False)])
def test_latest_is_due_by_iterations_or_time(interval, seconds, iteration, idle, due):
    hook = ResumableCheckpointHook(latest_interval=interval, latest_seconds=seconds)
    hook._last_save_time = time.monotonic() - idle
    assert hook._latest_due(SimpleNamespace(iter=iteration)) is due


def test_unknown_on_save_error_is_refused():
    with pytest.raises(ValueError, match="on_save_error must be one of .* got 'ignore'"):
        ResumableCheckpointHook(on_save_error='ignore')

"""GuardedSave: a checkpoint is renamed into place only when complete; a failed or
impossible write leaves the folder as it was and says why in one message."""
import errno
from collections import namedtuple

import pytest
from runtime.checkpoint_fakes import FakeRunner

from cvt_dense.runtime import checkpoint_storage
from cvt_dense.runtime.checkpoint_storage import (CheckpointWriteError, GuardedSave,
                                                  guard_saves, human_size, tensor_bytes)

DiskUsage = namedtuple('DiskUsage', 'total used free')


def fake_free_space(monkeypatch, free: int) -> None:
    monkeypatch.setattr(checkpoint_storage.shutil, 'disk_usage',
                        lambda folder: DiskUsage(10 ** 12, 10 ** 12 - free, free))


def test_saves_are_atomic_and_a_failed_write_changes_nothing(tmp_path):
    runner = FakeRunner(tmp_path, size=1000)
    guarded = guard_saves(runner)
    assert guard_saves(runner) is guarded and isinstance(runner.save_checkpoint, GuardedSave)
    runner.save_checkpoint(str(tmp_path), 'latest.pth')
    assert (tmp_path / 'latest.pth').stat().st_size == 1000
    assert guarded.expected_bytes(with_optimizer=True) == 1000  # the last one's size
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'latest.pth'))

    runner.error = errno.ENOSPC
    with pytest.raises(CheckpointWriteError) as err:
        runner.save_checkpoint(str(tmp_path), 'latest.pth')
    assert str(err.value).startswith(
        f'could not write checkpoint {tmp_path}/latest.pth: OSError: [Errno 28] No space '
        f'left on device; ')
    assert f'free in {tmp_path}, about 1.0 kB needed; kept {tmp_path}/latest.pth' in str(
        err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last_checkpoint', 'latest.pth']
    assert (tmp_path / 'latest.pth').stat().st_size == 1000  # the old file, untouched


def test_an_interrupted_write_removes_its_temporary_file(tmp_path):
    runner = FakeRunner(tmp_path)

    def interrupted(out_dir, filename, **kwargs):
        (tmp_path / filename).write_bytes(b'half')
        raise KeyboardInterrupt

    runner.save_checkpoint = interrupted
    guard_saves(runner)
    with pytest.raises(KeyboardInterrupt):  # not a storage error: passed on
        runner.save_checkpoint(str(tmp_path), 'iter_1.pth')
    assert not list(tmp_path.iterdir())


def test_free_space_is_checked_before_any_byte_is_written(tmp_path, monkeypatch):
    runner = FakeRunner(tmp_path, size=50_000)
    guard_saves(runner)
    runner.save_checkpoint(str(tmp_path), 'iter_1.pth')
    fake_free_space(monkeypatch, 54_000)  # < 50 kB + 10%
    with pytest.raises(CheckpointWriteError) as err:
        runner.save_checkpoint(str(tmp_path), 'iter_2.pth')
    assert str(err.value) == (
        f'could not write checkpoint {tmp_path}/iter_2.pth: not enough free space (checked '
        f'before writing); 54.0 kB free in {tmp_path}, about 50.0 kB needed; no checkpoint '
        f'of this run is kept yet')
    assert len(runner.seen) == 1  # the second save was not started
    assert sorted(p.name for p in tmp_path.iterdir()) == ['iter_1.pth']
    fake_free_space(monkeypatch, 56_000)
    runner.save_checkpoint(str(tmp_path), 'iter_2.pth')
    guard_saves(runner, check_free_space=False)
    fake_free_space(monkeypatch, 0)
    runner.save_checkpoint(str(tmp_path), 'iter_3.pth')
    assert len(runner.seen) == 3


def test_the_first_checkpoint_is_estimated_from_the_tensors(tmp_path):
    runner = FakeRunner(tmp_path)
    weights = tensor_bytes(runner.model.state_dict())
    assert weights == (16 + 4) * 4
    guarded = guard_saves(runner)
    assert guarded.expected_bytes(with_optimizer=False) == weights
    # No optimizer state before the first step: Adam's two moments per parameter.
    assert guarded.expected_bytes(with_optimizer=True) == 3 * weights


def test_backend_errors_are_reported_too(tmp_path):
    runner = FakeRunner(tmp_path)

    def unreachable(out_dir, filename, **kwargs):
        raise ConnectionError('s3 endpoint unreachable')

    runner.save_checkpoint = unreachable
    guard_saves(runner)
    with pytest.raises(CheckpointWriteError, match=r'^could not write checkpoint '
                       r's3://bucket/run/iter_1.pth: ConnectionError: s3 endpoint '
                       r'unreachable; no checkpoint'):
        runner.save_checkpoint('s3://bucket/run', 'iter_1.pth')


def test_human_size():
    assert [human_size(n) for n in (999, 2_845_995, 78.8e9)] == ['999 B', '2.8 MB', '78.8 GB']

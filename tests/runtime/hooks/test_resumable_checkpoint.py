"""ResumableCheckpointHook pieces without a runner: atomic saves, when latest.pth is due."""
import time
from types import SimpleNamespace

import pytest

from cvt_dense.runtime.hooks import ResumableCheckpointHook
from cvt_dense.runtime.hooks.resumable_checkpoint import make_saves_atomic


class FakeRunner:
    """Writes ``content`` like ``Runner.save_checkpoint``; raises when ``crash`` is set."""

    def __init__(self):
        self.crash = False
        self.iter = 0

    def save_checkpoint(self, out_dir, filename, **kwargs):
        with open(f'{out_dir}/{filename}', 'wb') as f:
            f.write(b'half')
            if self.crash:
                raise KeyboardInterrupt('killed while writing')
            f.write(b' and the rest')


def test_saves_are_atomic(tmp_path):
    runner = FakeRunner()
    make_saves_atomic(runner)
    make_saves_atomic(runner)  # idempotent
    runner.save_checkpoint(str(tmp_path), 'latest.pth')
    assert (tmp_path / 'latest.pth').read_bytes() == b'half and the rest'
    runner.crash = True
    with pytest.raises(KeyboardInterrupt):
        runner.save_checkpoint(str(tmp_path), 'latest.pth')
    assert (tmp_path / 'latest.pth').read_bytes() == b'half and the rest'  # untouched
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != 'latest.pth']
    assert len(leftovers) == 1 and leftovers[0].startswith('.latest.pth.tmp')


@pytest.mark.parametrize('interval, seconds, iteration, idle, due', [
    (3, None, 2, 0, True), (3, None, 3, 0, False), (None, 60, 5, 61, True),
    (None, 60, 5, 10, False), (None, None, 99, 1e6, False)])
def test_latest_is_due_by_iterations_or_time(interval, seconds, iteration, idle, due):
    hook = ResumableCheckpointHook(latest_interval=interval, latest_seconds=seconds)
    hook._last_save_time = time.monotonic() - idle
    assert hook._latest_due(SimpleNamespace(iter=iteration)) is due

"""find_resumable_checkpoint: the newest readable checkpoint, warnings naming the others."""
import os
import time

import pytest
import torch

from cvt_dense.runtime import checkpoint_finder
from cvt_dense.runtime.checkpoint_finder import checkpoint_problem, find_resumable_checkpoint


def save(path, iteration, age=0):
    torch.save(dict(meta=dict(iter=iteration), state_dict={'w': torch.ones(3)}), path)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_readable_and_damaged_files(tmp_path):
    good = save(tmp_path / 'a.pth', 1)
    assert checkpoint_problem(str(good)) is None
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[:-30])
    assert 'not a zip file' in checkpoint_problem(str(cut))
    flipped = bytearray(good.read_bytes())
    flipped[flipped.index(torch.ones(3).numpy().tobytes())] ^= 0xFF  # a bad copy: one
    # byte of the weights changed, the size the same (the CRC catches it)
    (tmp_path / 'flipped.pth').write_bytes(bytes(flipped))
    assert checkpoint_problem(str(tmp_path / 'flipped.pth')) is not None
    torch.save({'weights': torch.ones(1)}, tmp_path / 'other.pth')
    assert 'not an mmengine' in checkpoint_problem(str(tmp_path / 'other.pth'))


def test_pointer_target_first_then_newest(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(checkpoint_finder, 'print_log',
                        lambda msg, **kwargs: warnings.append(msg))
    older = save(tmp_path / 'iter_2.pth', 2, age=20)
    newer = save(tmp_path / 'iter_4.pth', 4, age=10)
    latest = save(tmp_path / 'latest.pth', 5)
    assert find_resumable_checkpoint(str(tmp_path)) == str(latest)  # newest, no pointer
    (tmp_path / 'last_checkpoint').write_text(str(older))
    assert find_resumable_checkpoint(str(tmp_path)) == str(older)
    older.write_bytes(older.read_bytes()[:100])
    assert find_resumable_checkpoint(str(tmp_path)) == str(latest)
    assert len(warnings) == 1
    assert warnings[0].startswith(f'skipping checkpoint {older}: it cannot be read')
    assert newer.exists()


def test_no_checkpoint_and_no_readable_checkpoint(tmp_path):
    assert find_resumable_checkpoint(str(tmp_path)) is None
    (tmp_path / 'iter_1.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'gone.pth'))
    with pytest.raises(RuntimeError) as err:
        find_resumable_checkpoint(str(tmp_path))
    message = str(err.value)
    assert 'no readable checkpoint' in message
    assert f'{tmp_path}/gone.pth: file not found' in message
    assert f'{tmp_path}/iter_1.pth: ' in message

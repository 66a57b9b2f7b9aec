"""Crash-safe files: the target is replaced only by a complete file."""
from cvt_dense.runtime.atomic_file import commit_file, temporary_name, write_text_atomic


def test_write_text_atomic_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'last_checkpoint'
    target.write_text('old')
    write_text_atomic(str(target), 'new')
    assert target.read_text() == 'new'
    assert [p.name for p in tmp_path.iterdir()] == ['last_checkpoint']


def test_an_unfinished_write_leaves_the_old_file(tmp_path):
    target = tmp_path / 'latest.pth'
    target.write_bytes(b'complete')
    tmp = temporary_name(str(target))
    with open(tmp, 'wb') as f:
        f.write(b'half')  # the writer dies here: nothing is committed
    assert target.read_bytes() == b'complete'
    assert tmp.startswith(str(tmp_path / '.latest.pth.tmp'))
    commit_file(tmp, str(target))
    assert target.read_bytes() == b'half'

"""Crash-safe files: write under a temporary name, flush to disk, then rename.

A rename within one folder is atomic on POSIX file systems, so a reader sees either the old
file or the complete new one, never a half-written one, whatever kills the writer.
"""
import os
import os.path as osp


def fsync_path(path: str) -> None:
    """Flush a file's (or a folder's) contents to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp_path: str, path: str) -> None:
    """Flush ``tmp_path`` and rename it to ``path`` (replacing it), then flush the folder."""
    fsync_path(tmp_path)
    os.replace(tmp_path, path)
    fsync_path(osp.dirname(osp.abspath(path)))


def temporary_name(path: str) -> str:
    """A hidden name next to ``path``, unique to this process."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.tmp{os.getpid()}')


def write_text_atomic(path: str, text: str) -> None:
    """Replace ``path`` by a file holding ``text``, atomically."""
    tmp_path = temporary_name(path)
    try:
        with open(tmp_path, 'w') as f:
            f.write(text)
        commit_file(tmp_path, path)
    except BaseException:
        discard(tmp_path)
        raise


def discard(path: str) -> None:
    """Remove ``path`` if it can be (the temporary file of a failed write; one left
    behind is removed when the next run starts)."""
    try:
        os.remove(path)
    except OSError:
        pass

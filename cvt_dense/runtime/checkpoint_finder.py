"""Pick the checkpoint ``--resume`` continues from: the newest one that can be read.

A checkpoint can be damaged (a copy cut short, a full disk, a writer killed before
checkpoints were written atomically). Instead of failing on torch's "failed finding central
directory", :func:`find_resumable_checkpoint` tries the work dir's ``last_checkpoint``
target first, then the other ``*.pth`` files from the newest, skips unreadable ones with a
warning naming them, and raises one error listing every attempt when none can be read.
"""
import glob
import logging
import os.path as osp
import zipfile
from typing import List, Optional

import torch
from mmengine.logging import print_log

POINTER_FILE = 'last_checkpoint'


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or None when it can.

    The zip archive torch writes is checked entry by entry (CRC), then the pickle is loaded
    memory-mapped (``weights_only=True``) and must be an mmengine training checkpoint.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad_entry = archive.testzip()
        if bad_entry is not None:
            return f'corrupt archive entry {bad_entry}'
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as err:  # any failure to read makes the file unusable
        return f'{type(err).__name__}: {err}'.strip()
    if not isinstance(checkpoint, dict) or not {'meta', 'state_dict'} <= checkpoint.keys():
        return 'not an mmengine training checkpoint (no meta/state_dict)'
    return None


def pointed_checkpoint(work_dir: str) -> Optional[str]:
    """The path in ``work_dir/last_checkpoint``, or None when there is none."""
    pointer = osp.join(work_dir, POINTER_FILE)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        target = f.read().strip()
    return target or None


def resume_candidates(work_dir: str) -> List[str]:
    """``last_checkpoint``'s target, then the work dir's checkpoints from the newest."""
    files = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime, reverse=True)
    target = pointed_checkpoint(work_dir)
    if target is not None:
        files = [target] + [f for f in files if osp.abspath(f) != osp.abspath(target)]
    return files


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest readable checkpoint of ``work_dir``; None when it has no checkpoint.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        str | None: Path of the checkpoint to resume from.

    Raises:
        RuntimeError: When there are checkpoints but none of them can be read; the message
            lists each file tried and why it failed.
    """
    tried = []
    for path in resume_candidates(work_dir):
        problem = 'file not found' if not osp.isfile(path) else checkpoint_problem(path)
        if problem is None:
            return path
        print_log(f'skipping checkpoint {path}: it cannot be read ({problem})',
                  logger='current', level=logging.WARNING)
        tried.append(f'  {path}: {problem}')
    if tried:
        raise RuntimeError(f'--resume: no readable checkpoint in {work_dir}; tried:\n'
                           + '\n'.join(tried))
    return None

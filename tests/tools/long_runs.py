"""Helpers of the long-run tests: the demo configs shrunk to seconds, runs of
``tools/train.py`` with the fault-injection hooks, and weight comparisons."""
import os
import subprocess

import torch
from tools_e2e import (DET_TINY, REPO, SEG_TINY, TRAIN_ONLY, python_tool, run_tool, signal_after,
                       tool_env)

SEG_ITERS = 8
DET_EPOCHS = 3  # 4 images, 2 per batch: 2 iterations per epoch
DETERMINISTIC = ['randomness.deterministic=True']
SEG_ARGS = [*SEG_TINY, *TRAIN_ONLY, *DETERMINISTIC, f'train_cfg.max_iters={SEG_ITERS}',
            f'default_hooks.checkpoint.interval={SEG_ITERS}']
DET_ARGS = [*DET_TINY, *TRAIN_ONLY, *DETERMINISTIC, f'train_cfg.max_epochs={DET_EPOCHS}',
            f'default_hooks.checkpoint.interval={DET_EPOCHS}']


def with_faults(config, workspace) -> str:
    """A config that inherits ``config`` and imports the fault-injection hooks."""
    path = workspace / f'faults_{os.path.basename(config)}'
    path.write_text(f'_base_ = [{config!r}]\n'
                    "custom_imports = dict(imports=['cvt_dense', 'fault_injection'])\n")
    return str(path)


def fault_env() -> dict:
    env = tool_env()
    env['PYTHONPATH'] = os.pathsep.join([str(REPO / 'tests/tools'),
                                         env.get('PYTHONPATH', '')])
    env['PYTHONUNBUFFERED'] = '1'
    return env


def train(config, work_dir, args, cwd, resume=False):
    cmd = python_tool('train.py', config, '--work-dir', work_dir,
                      *(['--resume'] if resume else []), '--cfg-options', *args)
    return run_tool(cmd, cwd=cwd, env=fault_env())


def start_train(config, work_dir, args, cwd, resume=False, **popen) -> subprocess.Popen:
    """Start ``tools/train.py`` in a process group of its own (faults may signal the whole
    group), its output on ``stdout``."""
    cmd = [str(c) for c in python_tool('train.py', config, '--work-dir', work_dir,
                                       *(['--resume'] if resume else []),
                                       '--cfg-options', *args)]
    return subprocess.Popen(cmd, cwd=cwd, env=fault_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            **popen)


def train_status(config, work_dir, args, cwd, resume=False, **popen):
    """Run ``tools/train.py`` to its end; return (exit status, output)."""
    proc = start_train(config, work_dir, args, cwd, resume, **popen)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    return proc.returncode, out


def train_and_signal(config, work_dir, args, cwd, after_lines, signum, resume=False):
    """tools/train.py, sent ``signum`` after ``after_lines`` training iterations; return
    (exit status, output)."""
    return signal_after(start_train(config, work_dir, args, cwd, resume), after_lines, signum)


def final_weights(work_dir, name):
    return torch.load(work_dir / name)['state_dict']


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:3]}'

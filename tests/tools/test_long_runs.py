"""Long runs on the demo configs (tiny CvT, CPU): preemption by SIGTERM, SIGKILL at random
moments, damaged checkpoints, non-finite losses. Every resumed run must end with exactly
the weights of a run that was never stopped."""
import json
import os
import random
import re
import signal
import subprocess

import pytest
import torch
from tools_e2e import (DET_CONFIG, DET_TINY, REPO, SEG_CONFIG, SEG_TINY, TRAIN_ONLY,
                       python_tool, run_log, run_tool, tool_env)

SEG_ITERS = 8
DET_EPOCHS = 3  # 4 images, 2 per batch: 2 iterations per epoch
DETERMINISTIC = ['randomness.deterministic=True']
SEG_ARGS = [*SEG_TINY, *TRAIN_ONLY, *DETERMINISTIC, f'train_cfg.max_iters={SEG_ITERS}',
            f'default_hooks.checkpoint.interval={SEG_ITERS}']
DET_ARGS = [*DET_TINY, *TRAIN_ONLY, *DETERMINISTIC, f'train_cfg.max_epochs={DET_EPOCHS}',
            f'default_hooks.checkpoint.interval={DET_EPOCHS}']
TRAIN_LINE = re.compile(r'(Iter|Epoch)\(train\)')


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


def train_and_signal(config, work_dir, args, cwd, after_lines, signum, resume=False):
    """Start a training run, send ``signum`` once it has logged ``after_lines`` training
    iterations, wait for it; return (exit status, output)."""
    cmd = [str(c) for c in python_tool('train.py', config, '--work-dir', work_dir,
                                       *(['--resume'] if resume else []),
                                       '--cfg-options', *args)]
    proc = subprocess.Popen(cmd, cwd=cwd, env=fault_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines, seen = [], 0
    try:
        for line in proc.stdout:
            lines.append(line)
            if TRAIN_LINE.search(line):
                seen += 1
                if seen == after_lines:
                    proc.send_signal(signum)
        proc.wait(timeout=240)
    finally:
        proc.kill()
    return proc.returncode, ''.join(lines)


def final_weights(work_dir, name):
    return torch.load(work_dir / name)['state_dict']


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:3]}'


@pytest.fixture(scope='module')
def seg_reference(workspace):
    work_dir = workspace / 'long_seg_ref'
    train(SEG_CONFIG, work_dir, SEG_ARGS, workspace)
    return final_weights(work_dir, f'iter_{SEG_ITERS}.pth')


@pytest.fixture(scope='module')
def det_reference(workspace):
    work_dir = workspace / 'long_det_ref'
    train(DET_CONFIG, work_dir, DET_ARGS, workspace)
    return final_weights(work_dir, f'epoch_{DET_EPOCHS}.pth')


def test_sigterm_then_resume_matches_uninterrupted_seg(seg_reference, workspace):
    work_dir = workspace / 'long_seg_term'
    after = random.Random(10).randint(1, SEG_ITERS - 3)
    status, out = train_and_signal(SEG_CONFIG, work_dir, SEG_ARGS, workspace, after,
                                   signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, out[-3000:]
    stopped = int(re.search(r'SIGTERM received: stopped after iteration (\d+)', out)[1])
    assert after <= stopped < SEG_ITERS  # the signal arrived before the end
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'latest.pth')
    assert torch.load(work_dir / 'latest.pth')['meta']['iter'] == stopped

    train(SEG_CONFIG, work_dir, SEG_ARGS, workspace, resume=True)
    log = run_log(work_dir)
    assert f'resumed epoch: 0, iter: {stopped}' in log
    assert f'after {stopped} batches' in log and 'Iter(train) [1/' not in log
    assert_same_weights(final_weights(work_dir, f'iter_{SEG_ITERS}.pth'), seg_reference)


def test_sigterm_while_writing_checkpoint_then_resume_matches_det(det_reference, workspace):
    """Stopped mid-epoch (iteration 3 of 6, epoch 2 of 3) by a SIGTERM that arrives while
    the periodic checkpoint of that iteration is being written."""
    work_dir = workspace / 'long_det_term'
    args = [*DET_ARGS, 'default_hooks.checkpoint.latest_interval=3',
            'default_hooks.fault.type=SignalDuringSave', 'default_hooks.fault.iteration=3']
    status, out = train_and_signal(with_faults(DET_CONFIG, workspace), work_dir, args, workspace, 0, None)
    assert status == 128 + signal.SIGTERM, out[-3000:]
    assert 'fault_injection: SIGTERM while writing iteration 3' in out
    assert 'SIGTERM received: stopped after iteration 3' in out
    latest = torch.load(work_dir / 'latest.pth')
    assert (latest['meta']['epoch'], latest['meta']['iter']) == (1, 3)
    assert not list(work_dir.glob('.*.tmp*'))  # no temporary file left behind

    train(DET_CONFIG, work_dir, DET_ARGS, workspace, resume=True)
    log = run_log(work_dir)
    assert 'resumed epoch: 1, iter: 3' in log and 'after 1 batches' in log
    # Epoch 2 continues with its second batch: 1 + 2 + 2 iterations, none repeated.
    assert log.count('Epoch(train) [2]') == 1 and log.count('Epoch(train) [3]') == 2
    assert_same_weights(final_weights(work_dir, f'epoch_{DET_EPOCHS}.pth'), det_reference)

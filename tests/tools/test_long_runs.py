"""Long runs on the demo configs (tiny CvT, CPU): preemption by SIGTERM, SIGKILL at random
moments, damaged checkpoints, non-finite losses. Every resumed run must end with exactly
the weights of a run that was never stopped."""
import json
import os
import random
import re
import signal
import subprocess
import sys

import pytest
import torch
from tools_e2e import (DET_CONFIG, DET_TINY, REPO, SEG_CONFIG, SEG_TINY, TOOLS, TRAIN_ONLY,
                       free_port, python_tool, run_and_signal, run_log, run_tool, tool_env)

SEG_ITERS = 8
DET_EPOCHS = 3  # 4 images, 2 per batch: 2 iterations per epoch
DETERMINISTIC = ['randomness.deterministic=True']
SEG_ARGS = [*SEG_TINY, *TRAIN_ONLY, *DETERMINISTIC, f'train_cfg.max_iters={SEG_ITERS}',
            f'default_hooks.checkpoint.interval={SEG_ITERS}']
DET_ARGS = [*DET_TINY, *TRAIN_ONLY, *DETERMINISTIC, f'train_cfg.max_epochs={DET_EPOCHS}',
            f'default_hooks.checkpoint.interval={DET_EPOCHS}']
WORKERS = ['train_dataloader.num_workers=2']  # the reference runs load in the main process


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
    """tools/train.py, sent ``signum`` after ``after_lines`` iterations (run_and_signal)."""
    cmd = python_tool('train.py', config, '--work-dir', work_dir,
                      *(['--resume'] if resume else []), '--cfg-options', *args)
    return run_and_signal(cmd, cwd, fault_env(), after_lines, signum)


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
    status, out = train_and_signal(with_faults(DET_CONFIG, workspace), work_dir, args,
                                   workspace, 0, None)
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


def test_sigkill_at_random_moments_loses_at_most_the_interval(seg_reference, workspace):
    work_dir = workspace / 'long_seg_kill'
    interval = 2
    args = [*SEG_ARGS, f'default_hooks.checkpoint.latest_interval={interval}']
    rng = random.Random(11)
    done = 0  # iterations finished before the last kill, as the log shows
    for attempt in range(3):
        after = rng.randint(1, 3)
        status, out = train_and_signal(SEG_CONFIG, work_dir, args, workspace, after,
                                       signal.SIGKILL, resume=attempt > 0)
        if attempt > 0:
            found = re.search(r'resumed epoch: 0, iter: (\d+)', out)
            assert found or 'Did not find last_checkpoint' in out  # killed before any
            resumed = int(found[1]) if found else 0
            assert done - interval <= resumed <= done  # lost work < the periodic interval
        logged = [int(n) for n in re.findall(r'Iter\(train\) \[(\d+)/', out)]
        assert status == -signal.SIGKILL and logged and logged[-1] < SEG_ITERS, out[-3000:]
        done = logged[-1]
    out = train(SEG_CONFIG, work_dir, args, workspace, resume=True)
    final = torch.load(work_dir / f'iter_{SEG_ITERS}.pth')
    assert final['meta']['iter'] == SEG_ITERS
    assert not list(work_dir.glob('.*.tmp*'))  # none left by a kill during a write
    assert_same_weights(final['state_dict'], seg_reference)


def test_truncated_latest_checkpoint_falls_back_to_previous(seg_reference, workspace):
    work_dir = workspace / 'long_seg_truncated'
    half = SEG_ITERS // 2
    train(SEG_CONFIG, work_dir, [*SEG_ARGS, f'train_cfg.max_iters={half}',
                                 f'default_hooks.checkpoint.interval={half - 1}',
                                 'default_hooks.checkpoint.save_last=False',
                                 'default_hooks.checkpoint.latest_interval=1'], workspace)
    latest = work_dir / 'latest.pth'
    assert torch.load(latest)['meta']['iter'] == half
    latest.write_bytes(latest.read_bytes()[:latest.stat().st_size // 2])  # a cut copy
    stale = work_dir / '.latest.pth.tmp4242'  # as left by a writer killed mid-write
    stale.write_bytes(b'half')

    out = train(SEG_CONFIG, work_dir, SEG_ARGS, workspace, resume=True)
    assert f'skipping checkpoint {latest}: it cannot be read' in out
    assert f'removing {stale}' in out and not stale.exists()
    assert f'resumed epoch: 0, iter: {half - 1}' in run_log(work_dir)
    assert_same_weights(final_weights(work_dir, f'iter_{SEG_ITERS}.pth'), seg_reference)


def test_no_readable_checkpoint_is_one_clear_error(workspace):
    work_dir = workspace / 'long_seg_unreadable'
    work_dir.mkdir()
    (work_dir / 'iter_2.pth').write_bytes(b'not a checkpoint')
    (work_dir / 'latest.pth').write_bytes(b'')
    cmd = python_tool('train.py', SEG_CONFIG, '--work-dir', work_dir, '--resume',
                      '--cfg-options', *SEG_ARGS)
    proc = subprocess.run([str(c) for c in cmd], cwd=workspace, env=tool_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode != 0
    assert 'no readable checkpoint in' in proc.stdout
    assert f'{work_dir}/iter_2.pth' in proc.stdout and f'{work_dir}/latest.pth' in proc.stdout


def test_nan_losses_are_skipped_and_weights_unchanged(workspace):
    work_dir = workspace / 'long_seg_nan'
    args = [*SEG_ARGS, 'default_hooks.checkpoint.interval=1',
            'default_hooks.fault.type=NaNLossAt', 'default_hooks.fault.iterations=[3,4]',
            'default_hooks.digests.type=WeightDigests']
    out = train(with_faults(SEG_CONFIG, workspace), work_dir, args, workspace)
    digests = json.loads((work_dir / 'weight_digests.json').read_text())
    assert all(d['finite'] for d in digests.values())
    assert digests['2'] == digests['3'] == digests['4'] != digests['5']
    assert digests['1']['weights'] != digests['2']['weights']
    for iteration, streak in ((3, 1), (4, 2)):
        assert (f'iteration {iteration}: non-finite loss nan (loss_nan=nan); update skipped, '
                f'weights unchanged ({streak} in a row)') in out
    # No checkpoint is written while the losses are non-finite.
    assert not (work_dir / 'iter_3.pth').exists() and not (work_dir / 'iter_4.pth').exists()
    assert (work_dir / f'iter_{SEG_ITERS}.pth').exists()


def test_consecutive_nan_losses_stop_the_run(workspace):
    work_dir = workspace / 'long_seg_nan_stop'
    args = [*SEG_ARGS, 'default_hooks.checkpoint.interval=1',
            'default_hooks.nonfinite_guard.max_consecutive=3',
            'default_hooks.fault.type=NaNLossAt', 'default_hooks.fault.iterations=[2,3,4,5]']
    cmd = python_tool('train.py', with_faults(SEG_CONFIG, workspace), '--work-dir', work_dir,
                      '--cfg-options', *args)
    proc = subprocess.run([str(c) for c in cmd], cwd=workspace, env=fault_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert ('NonFiniteTrainingError: 3 consecutive non-finite training steps '
            '(iterations 2-4)') in proc.stdout
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_1.pth')
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_1.pth']


def test_sigterm_to_one_rank_stops_both_at_the_same_iteration(workspace):
    """Two torchrun processes (gloo); only rank 1 gets SIGTERM: the ranks agree on the
    iteration (rank 0 reports the signal it did not receive) and rank 0 writes."""
    work_dir = workspace / 'long_seg_dist'
    iters = 12
    args = [*SEG_TINY, *TRAIN_ONLY, *DETERMINISTIC, f'train_cfg.max_iters={iters}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.pid.type=WritePid']
    env = fault_env()
    env.update(PYTHON=sys.executable, PORT=str(free_port()))
    cmd = ['bash', str(TOOLS / 'dist_train.sh'), with_faults(SEG_CONFIG, workspace), '2',
           '--work-dir', str(work_dir), '--cfg-options', *args]
    proc = subprocess.Popen(cmd, cwd=workspace, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if re.search(r'Iter\(train\) \[ *2/', line):
                os.kill(int((work_dir / 'pid_rank1').read_text()), signal.SIGTERM)
        proc.wait(timeout=240)
    finally:
        proc.kill()
    out = ''.join(lines)
    found = re.search(r'SIGTERM received: stopped after iteration (\d+)', out)
    assert found, out[-3000:]
    stopped = int(found[1])
    assert 2 <= stopped < iters
    assert proc.returncode != 0  # torchrun reports the workers' status 143 as a failure
    assert torch.load(work_dir / 'latest.pth')['meta']['iter'] == stopped
    assert not re.search(rf'Iter\(train\) \[ *{stopped + 1}/', out)  # rank 0 stopped too


def test_sigterm_during_validation_stops_at_once(workspace):
    """The epoch's checkpoint is written before validation: the run stops after the
    current validation batch and resumes with the next epoch."""
    work_dir = workspace / 'long_det_val'
    args = [*DET_TINY, 'train_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
            'train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.fault.type=SignalDuringValidation']
    status, out = train_and_signal(with_faults(DET_CONFIG, workspace), work_dir, args,
                                   workspace, 0, None)
    assert status == 128 + signal.SIGTERM, out[-3000:]
    assert 'fault_injection: SIGTERM during validation' in out
    assert (f'SIGTERM received: stopped during validation after iteration 2; resumable '
            f'checkpoint {work_dir}/epoch_1.pth') in out
    assert 'Epoch(val) [1][2/2]' not in out  # stopped after the first validation batch
    args = [a for a in args if 'fault' not in a]
    train(DET_CONFIG, work_dir, args, workspace, resume=True)
    assert 'resumed epoch: 1, iter: 2' in run_log(work_dir)
    assert torch.load(work_dir / 'epoch_2.pth')['meta']['iter'] == 4


def test_sigterm_then_resume_matches_uninterrupted_det(det_reference, workspace):
    work_dir = workspace / 'long_det_term_random'
    after = random.Random(12).randint(1, 2 * DET_EPOCHS - 2)
    status, out = train_and_signal(DET_CONFIG, work_dir, DET_ARGS, workspace, after,
                                   signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, out[-3000:]
    stopped = int(re.search(r'SIGTERM received: stopped after iteration (\d+)', out)[1])
    assert after <= stopped < 2 * DET_EPOCHS  # the signal arrived before the end

    train(DET_CONFIG, work_dir, DET_ARGS, workspace, resume=True)
    log = run_log(work_dir)
    # Stopped within (or at the end of) epoch `epoch`, after `done` of its 2 batches.
    epoch = (stopped - 1) // 2
    done = stopped - 2 * epoch
    assert f'resumed epoch: {epoch}, iter: {stopped}' in log
    assert f'after {done} batches' in log
    assert_same_weights(final_weights(work_dir, f'epoch_{DET_EPOCHS}.pth'), det_reference)


def stop_by_group_sigterm_then_resume(config, work_dir, args, workspace) -> str:
    """Train with ``args``, SIGTERM every process of the run (its dataloader workers too,
    as slurm does) after iteration 3, check that it stopped there, resume with ``args``;
    return the resumed run's log."""
    faults = ['default_hooks.fault.type=SignalGroupAfter', 'default_hooks.fault.iteration=3']
    status, out = train_and_signal(with_faults(config, workspace), work_dir,
                                   [*args, *faults], workspace, 0, None)
    assert status == 128 + signal.SIGTERM, out[-3000:]
    assert 'SIGTERM received: stopped after iteration 3' in out
    train(config, work_dir, args, workspace, resume=True)
    return run_log(work_dir)


def test_group_sigterm_with_workers_then_resume_matches_seg(seg_reference, workspace):
    """Two dataloader workers (the reference run has none) and SIGTERM to every process:
    the workers ignore it, the run stops with its checkpoint, and the resumed run ends
    with the reference's weights, because each sample's augmentations depend on its place
    in training, not on the process that loads it."""
    work_dir = workspace / 'long_seg_workers'
    log = stop_by_group_sigterm_then_resume(SEG_CONFIG, work_dir, [*SEG_ARGS, *WORKERS],
                                            workspace)
    assert 'after 3 batches' in log
    assert_same_weights(final_weights(work_dir, f'iter_{SEG_ITERS}.pth'), seg_reference)


def test_group_sigterm_with_persistent_workers_then_resume_matches_det(det_reference,
                                                                       workspace):
    """As above for the epoch-based loop with persistent workers, stopped in the middle
    of epoch 2; the resumed epoch's log keeps counting its batches."""
    work_dir = workspace / 'long_det_workers'
    args = [*DET_ARGS, *WORKERS, 'train_dataloader.persistent_workers=True']
    log = stop_by_group_sigterm_then_resume(DET_CONFIG, work_dir, args, workspace)
    assert 'resumed epoch: 1, iter: 3' in log and 'Epoch(train) [2][2/2]' in log
    assert_same_weights(final_weights(work_dir, f'epoch_{DET_EPOCHS}.pth'), det_reference)

"""Storage and scheduling faults on the UperNet demo config (tiny CvT, CPU): a file-size
limit smaller than a checkpoint (the error a full disk or a quota gives), SIGKILL while a
checkpoint is written, a second run in the same work dir. The checkpoints already on disk
survive, and resuming from the last good one ends with exactly the weights of a run that
was never stopped."""
import re
import resource
import signal
import socket

from long_runs import (SEG_ARGS, SEG_ITERS, assert_same_weights, final_weights, start_train,
                       train, train_status, with_faults)
from tools_e2e import SEG_CONFIG, run_log

from cvt_dense.runtime.checkpoint_finder import checkpoint_problem

FILE_SIZE_LIMIT = 1_000_000  # bytes: the logs fit, a checkpoint (2.8 MB) does not


def limit_file_size():
    """``preexec_fn``: what ``ulimit -f`` does (Python then gets EFBIG, errno 27)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def assert_only_kept(work_dir, iterations, pointed):
    """The work dir holds the checkpoints of ``iterations``, all readable, no temporary
    file, and ``last_checkpoint`` names the one of ``pointed``."""
    assert sorted(p.name for p in work_dir.glob('*.pth')) == sorted(
        f'iter_{i}.pth' for i in iterations)
    assert all(checkpoint_problem(str(work_dir / f'iter_{i}.pth')) is None
               for i in iterations)
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / f'iter_{pointed}.pth')
    assert not list(work_dir.glob('.*.tmp*'))


def write_error(work_dir, iteration, kept) -> str:
    """The one line a checkpoint that cannot be written ends (or, retried, marks) a run
    with."""
    return (rf'could not write checkpoint {work_dir}/iter_{iteration}\.pth: OSError: '
            rf'\[Errno 27\] File too large; [\d.]+ [kMGT]?B free in {work_dir}, about '
            rf'[\d.]+ MB needed; kept {work_dir}/iter_{kept}\.pth \(named by last_checkpoint')


def test_file_size_limit_with_retries_keeps_every_checkpoint(seg_reference, workspace):
    """max_keep_ckpts=3 and a checkpoint every iteration: 3 iterations, then resumed under
    the limit with on_save_error='retry' (mmengine would remove iter_1, iter_2, iter_3
    before the 3 first failed writes): each failure is said and training goes on, the
    final checkpoint's failure stops the run; iter_1-3 remain and the resume from iter_3
    ends with the reference weights."""
    work_dir = workspace / 'faults_fsize_retry'
    args = [*SEG_ARGS, 'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=3']
    train(SEG_CONFIG, work_dir, [*args, 'train_cfg.max_iters=3'], workspace)
    status, out = train_status(SEG_CONFIG, work_dir,
                               [*args, 'default_hooks.checkpoint.on_save_error=retry'],
                               workspace, resume=True, preexec_fn=limit_file_size)
    assert status == 1, out[-3000:]
    for iteration in range(4, SEG_ITERS):
        assert re.search(write_error(work_dir, iteration, 3) + r'.*; training goes on '
                         r"\(on_save_error='retry'\)", out), out[-3000:]
    assert re.search(write_error(work_dir, SEG_ITERS, 3) +
                     r'.*; it was the last checkpoint of the run$', out, flags=re.M)
    assert f'Iter(train) [{SEG_ITERS}/{SEG_ITERS}]' in out  # trained to the end
    assert_only_kept(work_dir, [1, 2, 3], pointed=3)

    train(SEG_CONFIG, work_dir, args, workspace, resume=True)
    assert 'resumed epoch: 0, iter: 3' in run_log(work_dir)
    assert_same_weights(final_weights(work_dir, f'iter_{SEG_ITERS}.pth'), seg_reference)
    assert_only_kept(work_dir, [6, 7, 8], pointed=SEG_ITERS)  # old ones removed again


def test_kill_while_writing_then_file_size_limit_keep_the_checkpoint(seg_reference,
                                                                    workspace):
    """max_keep_ckpts=1, a checkpoint every 2 iterations. SIGKILL halfway through writing
    iter_6 (mmengine would have removed iter_4, the only checkpoint, before): iter_4 stays;
    a second run started meanwhile in the same work dir refuses. The next run takes the
    dead run's lock over, resumes from iter_4 under the file-size limit and stops at
    iter_6 with one line; iter_4 is still there, and the last resume ends with the
    reference weights."""
    work_dir = workspace / 'faults_kill_write'
    args = [*SEG_ARGS, 'default_hooks.checkpoint.interval=2',
            'default_hooks.checkpoint.max_keep_ckpts=1']
    faults = ['default_hooks.fault.type=PauseWhileWriting', 'default_hooks.fault.iteration=6']
    proc = start_train(with_faults(SEG_CONFIG, workspace), work_dir, [*args, *faults],
                       workspace)
    try:
        for line in proc.stdout:
            if 'fault_injection: paused while writing' in line:
                break
        assert line.rstrip().endswith(f'{work_dir}/.iter_6.pth.tmp{proc.pid}'), line
        assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_4.pth']
        assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_4.pth')

        second, out = train_status(SEG_CONFIG, work_dir, args, workspace, resume=True)
        assert second == 1
        assert (f'{work_dir} is used by another training run (host {socket.gethostname()}, '
                f'pid {proc.pid}, started ') in out
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    status, out = train_status(SEG_CONFIG, work_dir, args, workspace, resume=True,
                               preexec_fn=limit_file_size)
    assert status == 1, out[-3000:]
    assert f'taking over {work_dir}/train.lock from the run of host' in out
    assert f'pid {proc.pid}' in out and 'its process is no longer running' in out
    assert f'removing {work_dir}/.iter_6.pth.tmp{proc.pid}' in out
    assert re.search(write_error(work_dir, 6, 4) + r'.*\)$', out, flags=re.M), out[-3000:]
    assert 'Iter(train) [7/' not in out  # stopped at the failed save
    assert_only_kept(work_dir, [4], pointed=4)
    assert not (work_dir / 'train.lock').exists()  # released at the error

    train(SEG_CONFIG, work_dir, args, workspace, resume=True)
    assert 'resumed epoch: 0, iter: 4' in run_log(work_dir)
    assert_same_weights(final_weights(work_dir, f'iter_{SEG_ITERS}.pth'), seg_reference)
    assert_only_kept(work_dir, [SEG_ITERS], pointed=SEG_ITERS)

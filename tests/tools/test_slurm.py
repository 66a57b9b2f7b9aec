"""tools/slurm_train.sh and slurm_test.sh through a stand-in ``srun`` (no slurm here): the
arguments srun gets, a SIGTERM to the job that reaches train.py's preemption hook, and a
requeued run (same command, ``--resume``) that continues from the checkpoint it wrote."""
import os
import signal
import stat
import subprocess
import sys

import pytest
import torch
from tools_e2e import (SEG_CONFIG, SEG_TINY, TOOLS, TRAIN_ONLY, free_port, printed_metrics,
                       run_and_signal, run_log, run_tool, tool_env)

ITERS = 12
# Records its arguments, then starts the command after its options as slurm's one task
# would (slurm's variables set, srun exec'd by the script, the task exec'd by srun: one
# process, which the job's signals reach as they reach srun's tasks).
FAKE_SRUN = '''#!/usr/bin/env bash
printf '%s\\n' "$@" > "$SRUN_ARGS_FILE"
while [ $# -gt 0 ]; do
    case "$1" in
        -p) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
export SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_NODELIST=localhost
exec "$@"
'''


@pytest.fixture
def slurm_env(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text(FAKE_SRUN)
    srun.chmod(srun.stat().st_mode | stat.S_IXUSR)
    env = tool_env()
    env.update(PATH=f'{bin_dir}{os.pathsep}{env["PATH"]}', PYTHON=sys.executable,
               SRUN_ARGS_FILE=str(tmp_path / 'srun_args'), MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(free_port()), GPUS='1', CPUS_PER_TASK='2',
               SRUN_ARGS='--qos=low --time=1:00:00', PYTHONUNBUFFERED='1')
    return env


def srun_args(env):
    with open(env['SRUN_ARGS_FILE']) as f:
        return f.read().splitlines()


def test_slurm_train_preempted_and_requeued_then_slurm_test(slurm_env, workspace):
    work_dir = workspace / 'slurm_seg'
    options = ['--resume', '--cfg-options', *SEG_TINY, *TRAIN_ONLY,
               f'train_cfg.max_iters={ITERS}', f'default_hooks.checkpoint.interval={ITERS}']
    cmd = ['bash', TOOLS / 'slurm_train.sh', 'debug', 'cvt_seg', SEG_CONFIG, work_dir, *options]
    # --resume in an empty work dir: the first run of a requeued job starts from scratch.
    status, out = run_and_signal(cmd, workspace, slurm_env, after_lines=2,
                                 signum=signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, out[-3000:]
    assert srun_args(slurm_env) == [
        '-p', 'debug', '--job-name=cvt_seg', '--gres=gpu:1', '--ntasks=1',
        '--ntasks-per-node=1', '--cpus-per-task=2', '--kill-on-bad-exit=1',
        '--signal=TERM@120', '--qos=low', '--time=1:00:00', sys.executable, '-u',
        str(TOOLS / 'train.py'), SEG_CONFIG, f'--work-dir={work_dir}', '--launcher=slurm',
        *map(str, options)]
    assert 'Distributed launcher: slurm' in run_log(work_dir)
    stopped = torch.load(work_dir / 'latest.pth')['meta']['iter']
    assert 2 <= stopped < ITERS

    # Requeued: the same command continues from latest.pth to the end.
    run_tool(cmd, cwd=workspace, env=slurm_env)
    assert f'resumed epoch: 0, iter: {stopped}' in run_log(work_dir)
    assert torch.load(work_dir / f'iter_{ITERS}.pth')['meta']['iter'] == ITERS

    checkpoint = work_dir / f'iter_{ITERS}.pth'
    out = run_tool(['bash', TOOLS / 'slurm_test.sh', 'debug', 'cvt_test', SEG_CONFIG,
                    checkpoint, '--work-dir', workspace / 'slurm_seg_test', '--cfg-options',
                    *SEG_TINY], cwd=workspace, env=slurm_env)
    assert 0. <= printed_metrics(out)['mIoU'] <= 100.
    assert srun_args(slurm_env)[:8] == [
        '-p', 'debug', '--job-name=cvt_test', '--gres=gpu:1', '--ntasks=1',
        '--ntasks-per-node=1', '--cpus-per-task=2', '--kill-on-bad-exit=1']
    assert srun_args(slurm_env)[10:15] == [sys.executable, '-u', str(TOOLS / 'test.py'),
                                           SEG_CONFIG, str(checkpoint)]


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
def test_slurm_scripts_need_their_four_arguments(script):
    proc = subprocess.run(['bash', str(TOOLS / script), 'only', 'three', 'arguments'],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert f'usage: {TOOLS / script} PARTITION JOB_NAME' in proc.stderr

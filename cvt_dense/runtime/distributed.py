"""Distributed runs without a GPU: torchrun / slurm processes joined by the gloo backend.

mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` and its default DDP wrapper
passes ``device_ids=[LOCAL_RANK]``; both fail on a CPU-only machine. When there is no CUDA
device, :func:`setup_cpu_distributed` creates the process group itself (mmengine's Runner
then leaves it alone) and makes DDP wrap the CPU model without device ids. With a GPU
nothing changes and mmengine does everything as usual.
"""
import datetime
import logging
import os
import subprocess
import sys

import torch
import torch.distributed as dist

LAUNCHERS = ('none', 'pytorch', 'slurm')
DDP_WRAPPERS = ('MMDistributedDataParallel', 'MMSeparateDistributedDataParallel')


def _slurm_env_to_torch_env() -> None:
    """Set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT from slurm's variables."""
    try:
        proc_id = int(os.environ['SLURM_PROCID'])
        ntasks = int(os.environ['SLURM_NTASKS'])
        node_list = os.environ['SLURM_NODELIST']
    except KeyError as err:
        raise RuntimeError(f'--launcher slurm needs the slurm variable {err.args[0]}; run '
                           f'the command through srun') from err
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        first = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
        os.environ['MASTER_ADDR'] = first.strip()
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['RANK'] = str(proc_id)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')


def setup_cpu_distributed(cfg, launcher: str) -> bool:
    """Prepare ``cfg`` (and the process group) for a CPU-only distributed run.

    Does nothing and returns False when ``launcher == 'none'`` or a CUDA device exists.

    Args:
        cfg (mmengine.Config): The run's config; ``env_cfg.dist_cfg`` and
            ``model_wrapper_cfg`` are updated in place.
        launcher (str): ``'none'``, ``'pytorch'`` (torchrun) or ``'slurm'``.

    Returns:
        bool: True when this function initialised a gloo process group.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    if launcher == 'none' or torch.cuda.is_available():
        return False
    dist_cfg = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    backend = dist_cfg.pop('backend', 'gloo')
    if backend != 'gloo':
        print(f'No CUDA device: using the gloo backend instead of {backend!r}.')
    if launcher == 'slurm':
        _slurm_env_to_torch_env()
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher {launcher} needs the environment variables {missing}; '
                           f'start the tool with torchrun (tools/dist_train.sh)')
    timeout = dist_cfg.pop('timeout', None)
    if timeout is not None:
        dist_cfg['timeout'] = datetime.timedelta(seconds=timeout)
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', **dist_cfg)
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    if wrapper.get('type', 'MMDistributedDataParallel') in DDP_WRAPPERS:
        # mmengine passes device_ids=[LOCAL_RANK]; a CPU module needs device_ids=None.
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def close_distributed() -> None:
    """Wait for every process, then destroy the process group, if there is one.

    Call it once a tool's work is done. Left to interpreter exit, gloo's threads may be torn
    down while still joinable, and the process aborts ("terminate called without an active
    exception") after finishing its work, so torchrun reports a failed run.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def end_distributed_process(code: int = 0) -> None:
    """End a tool's process that ran in a process group: close the group, flush the logs
    and streams, and exit at once with ``code``. Does nothing without a process group.

    Even after :func:`close_distributed`, a process of a 2-process gloo run aborted at
    interpreter exit ("terminate called without an active exception") about once in 25
    loaded runs: a C++ thread of torch's distributed runtime is destroyed while joinable
    during interpreter teardown. All work is done and flushed by then, so skipping the
    teardown (``os._exit``) loses nothing and torchrun sees the real exit code.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    close_distributed()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""Distributed runs without a GPU: torchrun / slurm processes joined by the gloo backend.

mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` and its default DDP wrapper
passes ``device_ids=[LOCAL_RANK]``; both fail on a CPU-only machine. When there is no CUDA
device, :func:`setup_cpu_distributed` creates the process group itself (mmengine's Runner
then leaves it alone) and makes DDP wrap the CPU model without device ids. PyTorch's
SyncBatchNorm refuses CPU tensors once a process group exists, so every SyncBN of the model
becomes BN there (each process normalises its own batch; in one process mmengine's Runner
reverts SyncBN itself, and torch >= 2.4 runs it as BN without a group). With a GPU nothing
changes and mmengine does everything as usual.
"""
import datetime
import logging
import os
import subprocess
import sys
from typing import Any, List

import torch
import torch.distributed as dist

LAUNCHERS = ('none', 'pytorch', 'slurm')
DDP_WRAPPERS = ('MMDistributedDataParallel', 'MMSeparateDistributedDataParallel')
# mmcv's names of the norms that synchronise over the process group (GPU only).
SYNC_NORMS = ('SyncBN', 'MMSyncBN')


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


def sync_norms_to_batchnorm(node: Any, path: str = 'model') -> List[str]:
    """Turn every SyncBN norm config under ``node`` into BN, in place.

    Args:
        node: A config (dicts and lists of them), e.g. ``cfg.model``.
        path (str): Name of ``node`` in the messages.

    Returns:
        list[str]: Where a norm was changed, e.g. ``['model.backbone.conv_proj_norm_cfg']``.
    """
    changed = []
    if isinstance(node, dict):
        if node.get('type') in SYNC_NORMS:
            node['type'] = 'BN'
            changed.append(path)
        for key, value in node.items():
            changed += sync_norms_to_batchnorm(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            changed += sync_norms_to_batchnorm(value, f'{path}[{i}]')
    return changed


def setup_cpu_distributed(cfg, launcher: str) -> bool:
    """Prepare ``cfg`` (and the process group) for a CPU-only distributed run.

    Does nothing and returns False when ``launcher == 'none'`` or a CUDA device exists.

    Args:
        cfg (mmengine.Config): The run's config; ``env_cfg.dist_cfg``,
            ``model_wrapper_cfg``, the model's SyncBN norms (to BN) and ``sync_bn``
            (removed) are updated in place.
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
    changed = sync_norms_to_batchnorm(cfg.get('model'))
    if cfg.pop('sync_bn', None) is not None:
        changed.append('sync_bn')
    if changed:
        print(f'No CUDA device: SyncBN runs only on GPUs, so {", ".join(changed)} use BN '
              f'(each process normalises its own batch).')
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

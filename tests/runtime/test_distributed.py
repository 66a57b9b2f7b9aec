"""Distributed runs without a GPU: a gloo process group and a DDP wrapper without device ids."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

from cvt_dense.runtime import close_distributed, setup_cpu_distributed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def make_cfg(**extra):
    return Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl')), **extra))


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


def test_nothing_happens_without_a_launcher(no_cuda):
    cfg = make_cfg()
    assert setup_cpu_distributed(cfg, 'none') is False
    assert cfg.env_cfg.dist_cfg.backend == 'nccl' and 'model_wrapper_cfg' not in cfg


def test_nothing_happens_with_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = make_cfg()
    assert setup_cpu_distributed(cfg, 'pytorch') is False
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


def test_missing_torchrun_variables_are_named(no_cuda, monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match='RANK.*torchrun'):
        setup_cpu_distributed(make_cfg(), 'pytorch')


def test_unknown_launcher(no_cuda):
    with pytest.raises(ValueError, match='mpi'):
        setup_cpu_distributed(make_cfg(), 'mpi')


def test_single_process_gloo_group(no_cuda, monkeypatch):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    cfg = make_cfg(find_unused_parameters=True)
    try:
        assert setup_cpu_distributed(cfg, 'pytorch') is True
        assert dist.is_initialized() and dist.get_backend() == 'gloo'
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                             broadcast_buffers=False,
                                             find_unused_parameters=True, device_ids=None)
        # The wrapper config really wraps a CPU model.
        from mmengine.model import MMDistributedDataParallel
        ddp = MMDistributedDataParallel(module=torch.nn.Linear(2, 2),
                                        **{k: v for k, v in cfg.model_wrapper_cfg.items()
                                           if k != 'type'})
        assert ddp(torch.ones(1, 2)).shape == (1, 2)
        close_distributed()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_sync_norms_become_batchnorm_in_a_cpu_group(no_cuda, monkeypatch, capsys):
    """In a CPU process group SyncBN refuses to run; the config's SyncBN norms (any depth,
    in lists too) and ``sync_bn`` become BN, said once, and the model trains a step."""
    from mmengine.registry import MODELS

    import cvt_dense  # noqa: F401  (registers CvT)
    for key, value in dict(RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
    backbone = dict(type='CvT', arch=dict(embed_dims=[8, 16, 24], num_heads=[1, 2, 3],
                                          depths=[1, 1, 1]),
                    conv_proj_norm_cfg=dict(type='SyncBN', requires_grad=True))
    cfg = make_cfg(model=dict(backbone=backbone, heads=[dict(norm_cfg=dict(type='BN')),
                                                        dict(norm_cfg=dict(type='MMSyncBN'))]),
                   sync_bn='torch')
    x = torch.randn(2, 3, 32, 32)
    try:
        assert setup_cpu_distributed(cfg, 'pytorch') is True
        with pytest.raises(ValueError, match='SyncBatchNorm expected input tensor to be on '
                           'GPU'):  # what the conversion avoids
            MODELS.build(backbone).train()(x)
        assert cfg.model.backbone.conv_proj_norm_cfg == dict(type='BN', requires_grad=True)
        assert [head.norm_cfg.type for head in cfg.model.heads] == ['BN', 'BN']
        assert 'sync_bn' not in cfg
        assert capsys.readouterr().out.count(
            'No CUDA device: SyncBN runs only on GPUs, so model.backbone.conv_proj_norm_cfg, '
            'model.heads[1].norm_cfg, sync_bn use BN') == 1
        sum(out.sum() for out in MODELS.build(cfg.model.backbone).train()(x)).backward()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


END_SCRIPT = '''
import logging, os, sys, torch.distributed as dist
from cvt_dense.runtime import end_distributed_process
end_distributed_process(3)  # no group yet: nothing happens
dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{sys.argv[2]}', rank=0,
                        world_size=1)
logger = logging.getLogger('tool')
logger.addHandler(logging.FileHandler(sys.argv[1]))
logger.warning('last log line')
print('work done', end='')  # no newline: only an explicit flush writes it
end_distributed_process(5)
print('not reached')
'''


def test_end_distributed_process_flushes_and_exits_with_the_code(tmp_path):
    import subprocess
    import sys
    log = tmp_path / 'tool.log'
    proc = subprocess.run([sys.executable, '-c', END_SCRIPT, str(log), str(free_port())],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == 'work done'
    assert log.read_text() == 'last log line\n'


def test_close_without_a_group_does_nothing():
    assert not dist.is_initialized()
    close_distributed()
    assert not dist.is_initialized()


def test_slurm_variables_are_translated(no_cuda, monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):  # overwritten; restored afterwards
        monkeypatch.setenv(key, 'stale')
    monkeypatch.setenv('SLURM_PROCID', '0')
    monkeypatch.setenv('SLURM_NTASKS', '1')
    monkeypatch.setenv('SLURM_LOCALID', '0')
    monkeypatch.setenv('SLURM_NODELIST', 'node1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    try:
        assert setup_cpu_distributed(make_cfg(), 'slurm') is True
        assert dist.get_world_size() == 1 and dist.get_rank() == 0
        assert [os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')] == ['0', '1', '0']
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_slurm_without_slurm_variables(no_cuda, monkeypatch):
    monkeypatch.delenv('SLURM_PROCID', raising=False)
    with pytest.raises(RuntimeError, match='SLURM_PROCID.*srun'):
        setup_cpu_distributed(make_cfg(), 'slurm')

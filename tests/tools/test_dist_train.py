"""tools/dist_train.sh: two torchrun processes (gloo, CPU) train the UperNet demo config,
with SyncBN in the backbone and the head as in the ADE20K configs."""
import sys

import torch
from tools_e2e import SEG_CONFIG, SEG_TINY, TOOLS, TRAIN_ONLY, free_port, run_log, run_tool


def test_two_process_torchrun_training(workspace, monkeypatch):
    work_dir = workspace / 'seg_dist'
    monkeypatch.setenv('PYTHON', sys.executable)
    monkeypatch.setenv('PORT', str(free_port()))
    # 2 processes x 2 images per iteration = the 4 training images.
    out = run_tool(['bash', TOOLS / 'dist_train.sh', SEG_CONFIG, '2', '--work-dir', work_dir,
                    '--cfg-options', *SEG_TINY, *TRAIN_ONLY, 'train_cfg.max_iters=2',
                    'default_hooks.checkpoint.interval=2',
                    'model.backbone.conv_proj_norm_cfg.type=SyncBN',
                    'model.decode_head.norm_cfg.type=SyncBN'], cwd=workspace, timeout=300)
    assert out.count('No CUDA device: using the gloo backend') == 2  # one per process
    assert out.count('No CUDA device: SyncBN runs only on GPUs, so '
                     'model.backbone.conv_proj_norm_cfg, model.decode_head.norm_cfg use BN') == 2
    log = run_log(work_dir)
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert 'Iter(train) [2/2]' in log
    ckpt = torch.load(work_dir / 'iter_2.pth')
    assert ckpt['meta']['iter'] == 2
    # Saved from the DDP-wrapped model, without a ``module.`` prefix.
    assert all(not k.startswith('module.') for k in ckpt['state_dict'])

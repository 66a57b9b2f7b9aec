"""tools/dist_train.sh: two torchrun processes (gloo, CPU) train the UperNet demo config,
with SyncBN in the backbone and the head as in the ADE20K configs; resumed on one process
with twice the batch, the run reads the same global steps."""
import json
import sys
from collections import defaultdict

import torch
from long_runs import fault_env, with_faults
from tools_e2e import (SEG_CONFIG, SEG_TINY, TOOLS, TRAIN_ONLY, free_port, python_tool,
                       run_log, run_tool)


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


def samples_per_step(work_dir) -> dict:
    """Iteration -> the sorted (image, flipped) samples all ranks read (RecordSamples)."""
    steps = defaultdict(list)
    for path in work_dir.glob('samples_rank*.jsonl'):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            steps[record['iter']] += [tuple(sample) for sample in record['samples']]
    return {iteration: sorted(samples) for iteration, samples in steps.items()}


def test_resumed_on_one_process_with_twice_the_batch_reads_the_same_steps(workspace):
    """8 training images; 2 processes x 2 images for 8 iterations, then from its iter_4.pth
    1 process x 4 images: iterations 5-8 read the same images with the same flips."""
    from cvt_dense.datasets import generate_shapes
    root = workspace / 'shapes8'
    generate_shapes(root / 'data' / 'shapes', num_train=8, num_val=1, seed=1, verbose=False)
    config = with_faults(SEG_CONFIG, root)
    args = [*SEG_TINY, *TRAIN_ONLY, 'train_cfg.max_iters=8',
            'default_hooks.checkpoint.interval=4', 'default_hooks.samples.type=RecordSamples']
    two_ranks, one_rank = root / 'two_ranks', root / 'one_rank'
    env = dict(fault_env(), PYTHON=sys.executable, PORT=str(free_port()))
    run_tool(['bash', TOOLS / 'dist_train.sh', config, '2', '--work-dir', two_ranks,
              '--cfg-options', *args], cwd=root, env=env, timeout=300)
    run_tool(python_tool('train.py', config, '--work-dir', one_rank, '--resume',
                         two_ranks / 'iter_4.pth', '--cfg-options', *args,
                         'train_dataloader.batch_size=4'), cwd=root, env=fault_env())
    log = run_log(one_rank)
    assert 'resumed epoch: 0, iter: 4' in log
    assert ('Resumed with 1 processes instead of 2 at the same global batch size (4 '
            'samples per step)') in log
    uninterrupted, resumed = samples_per_step(two_ranks), samples_per_step(one_rank)
    assert sorted(uninterrupted) == list(range(1, 9)) and sorted(resumed) == [5, 6, 7, 8]
    assert all(len(samples) == 4 for samples in uninterrupted.values())
    assert len({tuple(uninterrupted[i]) for i in range(5, 9)}) == 4  # the steps differ
    assert resumed == {i: uninterrupted[i] for i in range(5, 9)}

"""Helpers of the end-to-end tool tests: running the tools in subprocesses, reading their
outputs, and the overrides that shrink the demo configs to seconds on a CPU."""
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import cvt_dense.runtime  # noqa: F401,E402  (torch.load of mmengine checkpoints, as the tools)

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
DET_CONFIG = str(REPO / 'configs/demo/maskrcnn_cvt13_shapes.py')
SEG_CONFIG = str(REPO / 'configs/demo/upernet_cvt13_shapes.py')
CONVIT_DET_CONFIG = str(REPO / 'configs/demo/maskrcnn_convit_shapes.py')
CONVIT_SEG_CONFIG = str(REPO / 'configs/demo/upernet_convit_shapes.py')
NUM_TRAIN, NUM_VAL = 4, 2

# A 3-block CvT (widths 16/32/64) instead of CvT-13; slim heads for UperNet.
TINY_BACKBONE = ['model.backbone.arch._delete_=True',
                 'model.backbone.arch.embed_dims=[16,32,64]',
                 'model.backbone.arch.num_heads=[1,1,2]', 'model.backbone.arch.depths=[1,1,1]']
DET_TINY = TINY_BACKBONE + ['model.neck.in_channels=[16,32,64]']
SEG_TINY = TINY_BACKBONE + ['model.decode_head.in_channels=[16,32,64]',
                            'model.decode_head.channels=32', 'model.auxiliary_head.in_channels=64',
                            'model.auxiliary_head.channels=16']  # aux head on the last level
# A 4-block ConViT (2 GPSA, 2 MHSA blocks, width 32) instead of ConViT-Tiny.
TINY_CONVIT = ['model.backbone.arch._delete_=True', 'model.backbone.arch.embed_dims=32',
               'model.backbone.arch.num_heads=4', 'model.backbone.arch.depth=4',
               'model.backbone.arch.local_up_to_layer=2']
CONVIT_DET_TINY = TINY_CONVIT + ['model.backbone.out_indices=[3]', 'model.neck.in_channels=32']
CONVIT_SEG_TINY = TINY_CONVIT + ['model.backbone.out_indices=[0,1,2,3]',
                                 'model.neck.in_channels=[32,32,32,32]']
# Train only: no validation during training, log every iteration, keep every checkpoint.
TRAIN_ONLY = ['train_dataloader.batch_size=2', 'val_cfg=None', 'val_dataloader=None',
              'val_evaluator=None', 'default_hooks.logger.interval=1',
              'default_hooks.checkpoint.max_keep_ckpts=5']


def tool_env() -> dict:
    env = dict(os.environ)
    # One thread per process: on a shared 2-core machine, OpenMP threads fighting over the
    # cores make a step ~10x slower.
    env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    env.pop('LOCAL_RANK', None)
    return env


def run_tool(cmd, cwd, timeout=240, env=None) -> str:
    """Run a command, fail with the end of its output if it fails; return the output."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env or tool_env(),
                          timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, cmd))} exited with {proc.returncode}:\n'
                    f'{proc.stdout[-4000:]}')
    return proc.stdout


TRAIN_LINE = re.compile(r'(Iter|Epoch)\(train\)')


def run_and_signal(cmd, cwd, env, after_lines, signum, timeout=240):
    """Start a training command in a process group of its own (faults may signal the whole
    group), send ``signum`` once it has logged ``after_lines`` training iterations, wait for
    it; return (exit status, output)."""
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return signal_after(proc, after_lines, signum, timeout)


def signal_after(proc: subprocess.Popen, after_lines, signum, timeout=240):
    """Send ``signum`` to a started training process once it has logged ``after_lines``
    training iterations, wait for it; return (exit status, output)."""
    lines, seen = [], 0
    try:
        for line in proc.stdout:
            lines.append(line)
            if TRAIN_LINE.search(line):
                seen += 1
                if seen == after_lines:
                    proc.send_signal(signum)
        proc.wait(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, ''.join(lines)


def python_tool(name, *args):
    return [sys.executable, TOOLS / name, *args]


def printed_metrics(output: str) -> dict:
    """The ``metrics: {...}`` line that tools/test.py prints."""
    lines = re.findall(r'^metrics: (\{.*\})$', output, flags=re.M)
    assert lines, f'no metrics line in the output:\n{output[-2000:]}'
    return json.loads(lines[-1])


def run_log(work_dir: Path) -> str:
    """Text of the newest run log in a work dir."""
    logs = sorted(work_dir.glob('*/*.log'))
    assert logs, f'no log under {work_dir}'
    return logs[-1].read_text()


def free_port() -> int:
    """A TCP port nobody listens on now (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tool(path: str):
    """Import a tool script (``analysis/plot_curves.py``) as a module."""
    spec = importlib.util.spec_from_file_location(path.replace('/', '_')[:-3], TOOLS / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path, min_bytes=10_000):
    """A decodable PNG of more than ``min_bytes``; returns its (width, height)."""
    from PIL import Image
    assert path.stat().st_size > min_bytes, f'{path}: {path.stat().st_size} bytes'
    with Image.open(path) as image:
        image.load()  # decodes
        return image.size

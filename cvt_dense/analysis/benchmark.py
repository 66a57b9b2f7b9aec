"""Whole-model inference latency, throughput and peak memory (CPU or GPU).

Each timed pass is the model's ``test_step`` (data preprocessing, forward, post-processing
such as NMS and mask pasting), as in mmdet's and mmseg's benchmark tools.
"""
import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import List, Optional

import torch

from ..runtime.amp import bf16_autocast_hooks

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def proc_status_kb(field: str) -> int:
    """A ``/proc/self/status`` entry in kB, e.g. ``VmRSS`` or ``VmHWM`` (Linux)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or the process's peak RSS (Linux)."""
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM to the current RSS
    except OSError:
        pass  # not Linux, or not allowed: the peak then covers the whole process life


def peak_memory_bytes(device: torch.device) -> int:
    """Peak CUDA memory allocated by tensors, or the process's peak RSS on a CPU."""
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device)
    return proc_status_kb('VmHWM') * 1024


@contextlib.contextmanager
def amp_context(model: torch.nn.Module, device: torch.device, amp: Optional[str]):
    """Mixed precision for inference.

    On a GPU the whole model runs under ``torch.autocast`` (bf16 or fp16). On a CPU only
    bf16 is offered, and only the backbone is autocast: mmcv's CPU kernels (NMS, RoIAlign)
    take fp32 only (the same split as ``tools/train.py --amp`` on a CPU).

    Args:
        model (nn.Module): The mmdet / mmseg model.
        device (torch.device): Where it runs.
        amp (str, optional): None, ``'bf16'`` or ``'fp16'``.
    """
    if amp is None:
        yield
        return
    if amp not in AMP_DTYPES:
        raise ValueError(f'amp must be one of {sorted(AMP_DTYPES)} or None, got {amp!r}')
    if device.type == 'cuda':
        with torch.autocast('cuda', dtype=AMP_DTYPES[amp]):
            yield
        return
    if amp != 'bf16':
        raise ValueError(f'{amp} autocast needs a GPU; on a CPU use bf16')
    handles = bf16_autocast_hooks(model.backbone)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class BenchmarkResult:
    """Timings of :func:`benchmark_model`.

    Args:
        times_s (list[float]): Seconds of each timed pass.
        batch_size (int): Images per pass.
        peak_memory_bytes (int): Peak memory during the timed passes.
        memory_kind (str): What the peak measures.
    """
    times_s: List[float]
    batch_size: int
    peak_memory_bytes: int
    memory_kind: str

    @property
    def latency_s(self) -> float:
        """Median seconds per pass."""
        return statistics.median(self.times_s)

    @property
    def images_per_s(self) -> float:
        return self.batch_size / self.latency_s


@torch.no_grad()
def benchmark_model(model: torch.nn.Module, batch: dict, repeats: int = 10, warmup: int = 2,
                    amp: Optional[str] = None) -> BenchmarkResult:
    """Time ``model.test_step(batch)``: median of ``repeats`` passes after ``warmup``.

    GPU work is synchronised before each clock reading.

    Args:
        model (nn.Module): An mmdet / mmseg model in eval mode, on its device.
        batch (dict): A ``test_step`` batch (``inputs``, ``data_samples``).
        repeats (int): Timed passes.
        warmup (int): Untimed passes first (allocator, oneDNN / cuDNN kernel choice).
        amp (str, optional): None, ``'bf16'`` or ``'fp16'`` (see :func:`amp_context`).

    Returns:
        BenchmarkResult: The timings and peak memory.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f'need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}')
    device = next(model.parameters()).device

    def synchronize():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)

    times = []
    with amp_context(model, device, amp):
        for _ in range(warmup):
            model.test_step(batch)
        synchronize()
        reset_peak_memory(device)
        for _ in range(repeats):
            start = time.perf_counter()
            model.test_step(batch)
            synchronize()
            times.append(time.perf_counter() - start)
    kind = 'CUDA tensors, peak allocated' if device.type == 'cuda' else 'process peak RSS'
    return BenchmarkResult(times, len(batch['inputs']), peak_memory_bytes(device), kind)

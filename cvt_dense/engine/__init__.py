"""Glue between the toolkit and mmengine: the tools' shared logic (task detection, options,
resume, ``--show-dir``/``--out``), distributed runs on CPUs, mixed precision on CPUs, and
loading mmengine checkpoints under ``torch.load(weights_only=True)``, and the hooks of long
runs (crash-safe resumable checkpoints, preemption, non-finite loss guard, bad samples)."""
from .amp import CPUBF16OptimWrapper, enable_amp
from .checkpoint_finder import find_resumable_checkpoint
from .checkpoint_safety import allow_mmengine_checkpoints
from .distributed import close_distributed, end_distributed_process, setup_cpu_distributed
from .hooks import BadSampleHook, NonFiniteGuardHook, PreemptionHook, ResumableCheckpointHook
from .task import SCOPE_TASKS, task_of
from .tool_config import (add_common_args, add_prediction_dump, apply_resume, build_runner,
                          check_prediction_out, enable_show_dir, enable_tensorboard,
                          load_config)

__all__ = ['BadSampleHook', 'CPUBF16OptimWrapper', 'NonFiniteGuardHook', 'PreemptionHook',
           'ResumableCheckpointHook', 'SCOPE_TASKS', 'add_common_args', 'add_prediction_dump',
           'allow_mmengine_checkpoints', 'apply_resume', 'build_runner', 'check_prediction_out',
           'close_distributed', 'enable_amp', 'enable_show_dir', 'enable_tensorboard',
           'end_distributed_process', 'find_resumable_checkpoint', 'load_config',
           'setup_cpu_distributed', 'task_of']

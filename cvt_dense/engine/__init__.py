"""Glue between the toolkit and mmengine: the tools' shared logic (task detection, options,
resume, ``--show-dir``/``--out``), distributed runs on CPUs, mixed precision on CPUs, and
loading mmengine checkpoints under ``torch.load(weights_only=True)``."""
from .amp import CPUBF16OptimWrapper, enable_amp
from .checkpoint_safety import allow_mmengine_checkpoints
from .distributed import close_distributed, setup_cpu_distributed
from .task import SCOPE_TASKS, task_of
from .tool_config import (add_common_args, add_prediction_dump, apply_resume, build_runner,
                          check_prediction_out, enable_show_dir, enable_tensorboard,
                          load_config)

__all__ = ['CPUBF16OptimWrapper', 'SCOPE_TASKS', 'add_common_args', 'add_prediction_dump',
           'allow_mmengine_checkpoints', 'apply_resume', 'build_runner', 'check_prediction_out',
           'close_distributed', 'enable_amp', 'enable_show_dir', 'enable_tensorboard',
           'load_config', 'setup_cpu_distributed', 'task_of']

"""What ``tools/train.py`` and ``tools/test.py`` share: their options and the config edits
behind them (work dir, resume, TensorBoard, ``--show-dir``, ``--out``). Importing it loads
the runtime (:mod:`cvt_dense.runtime`)."""
from ..config_files import SCOPE_TASKS, task_of
from ..runtime import end_distributed_process, enable_amp
from .tool_config import (add_common_args, add_prediction_dump, apply_resume, build_runner,
                          check_prediction_out, enable_show_dir, enable_tensorboard,
                          hold_work_dir, load_config, train_until_done)

__all__ = ['SCOPE_TASKS', 'add_common_args', 'add_prediction_dump', 'apply_resume',
           'build_runner', 'check_prediction_out', 'enable_amp', 'enable_show_dir',
           'enable_tensorboard', 'end_distributed_process', 'hold_work_dir', 'load_config',
           'task_of', 'train_until_done']

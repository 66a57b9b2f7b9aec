"""Long runs on mmengine's Runner: crash-safe resumable checkpoints that survive full disks,
one run per work dir, exact mid-epoch resume (RNG states, data position, per-sample seeds;
also with another number of processes at the same global batch size), preemption, the
non-finite loss guard, bad samples, CPU mixed precision, CPU distributed runs and an eager
optimizer update under mmengine's ``compile`` option.

Importing it registers its hooks and optimizer wrapper in mmengine's root registries (so
mmdet and mmseg configs can name them) and lets mmengine's training checkpoints load under
``torch.load(weights_only=True)``. Every use of mmengine's private API is in
:mod:`.mmengine_internals`.
"""
from .amp import CPUBF16OptimWrapper, enable_amp
from .checkpoint_finder import find_resumable_checkpoint
from .checkpoint_storage import CheckpointWriteError
from .distributed import close_distributed, end_distributed_process, setup_cpu_distributed
from .hooks import (BadSampleHook, CompiledTrainStepHook, NonFiniteGuardHook, PreemptionHook,
                    ResumableCheckpointHook)
from .mmengine_internals import warn_if_unchecked
from .work_dir_lock import WorkDirLocked
from ..weights import allow_mmengine_checkpoints

warn_if_unchecked()
allow_mmengine_checkpoints()  # mmengine checkpoints load under torch.load(weights_only=True)

__all__ = ['BadSampleHook', 'CPUBF16OptimWrapper', 'CheckpointWriteError',
           'CompiledTrainStepHook', 'NonFiniteGuardHook', 'PreemptionHook',
           'ResumableCheckpointHook', 'WorkDirLocked',
           'allow_mmengine_checkpoints', 'close_distributed', 'enable_amp',
           'end_distributed_process', 'find_resumable_checkpoint', 'setup_cpu_distributed']

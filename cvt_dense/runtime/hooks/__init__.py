"""Training hooks for long runs (registered in mmengine's ``HOOKS``, so that mmdet and
mmseg configs can name them): crash-safe resumable checkpoints, preemption, non-finite
loss guard, bad-sample reporting, an eager optimizer update under ``compile``."""
from .bad_samples import BadSampleHook
from .compiled_train_step import CompiledTrainStepHook
from .nonfinite_guard import NonFiniteGuardHook, NonFiniteTrainingError
from .preemption import Preempted, PreemptionHook
from .resumable_checkpoint import ResumableCheckpointHook

__all__ = ['BadSampleHook', 'CompiledTrainStepHook', 'NonFiniteGuardHook',
           'NonFiniteTrainingError', 'Preempted', 'PreemptionHook', 'ResumableCheckpointHook']

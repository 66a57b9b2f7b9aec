"""Training hooks for long runs (registered in mmengine's ``HOOKS``, so that mmdet and
mmseg configs can name them): crash-safe resumable checkpoints, preemption, non-finite
loss guard, bad-sample reporting."""
from .bad_samples import BadSampleHook
from .nonfinite_guard import NonFiniteGuardHook, NonFiniteTrainingError
from .preemption import Preempted, PreemptionHook
from .resumable_checkpoint import ResumableCheckpointHook

__all__ = ['BadSampleHook', 'NonFiniteGuardHook', 'NonFiniteTrainingError', 'Preempted',
           'PreemptionHook', 'ResumableCheckpointHook']

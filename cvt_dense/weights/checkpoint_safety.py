"""Let mmengine's training checkpoints load under ``torch.load(weights_only=True)``.

Two ways: :func:`mmengine_checkpoints_allowed` for one read (what the weight loader uses),
:func:`allow_mmengine_checkpoints` for the whole process (what the runtime applies, since
mmengine's own ``torch.load`` calls cannot be wrapped).

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls
``torch.load`` without the argument, so ``--resume`` and ``tools/test.py`` fail on the
checkpoints mmengine itself wrote: their ``message_hub`` holds mmengine ``HistoryBuffer``
objects (numpy arrays inside) and numpy scalars (e.g. the ETA). Turning ``weights_only``
off would let any checkpoint run code; instead :func:`allow_mmengine_checkpoints`
allow-lists exactly the globals those checkpoints contain, found by reproducing the failure
(``torch.serialization.get_unsafe_globals_in_checkpoint`` on an mmdet and an mmseg run):

- ``mmengine.logging.history_buffer.HistoryBuffer``;
- numpy's array and scalar reconstruction: ``numpy._core.multiarray._reconstruct``,
  ``numpy.ndarray``, ``numpy.dtype``, ``numpy._core.multiarray.scalar`` (registered under
  numpy 1.x's ``numpy.core`` names too, so older checkpoints load as well) and numpy 2's
  numeric dtype classes (``numpy.dtypes.Float64DType``, ``Int64DType``, ...);
- ``builtins.getattr``, which pickle uses to name ``HistoryBuffer.min/max/current/mean``
  (stored in each buffer's state). It is *not* allowed in general: the name is mapped to
  :func:`history_buffer_statistic`, which returns only those ``HistoryBuffer`` methods and
  refuses every other attribute lookup.

Every other global still makes ``torch.load`` raise ``UnpicklingError``.
"""
import contextlib
import pickle

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

_NUMPY_ARRAY_FUNCS = ('_reconstruct', 'scalar')
# Numeric dtypes a HistoryBuffer or a logged numpy scalar can have.
_NUMPY_DTYPES = (np.float64, np.float32, np.float16, np.int64, np.int32, np.bool_)


def history_buffer_statistic(obj, name: str):
    """Restricted ``getattr`` used while unpickling: ``HistoryBuffer`` statistics only.

    Args:
        obj: Must be the ``HistoryBuffer`` class.
        name (str): A statistics method of ``HistoryBuffer`` (``min``, ``max``,
            ``current`` or ``mean``).

    Returns:
        The unbound ``HistoryBuffer`` method.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    # Statistics added with HistoryBuffer.register_statistics are no attributes of the
    # class: pickle cannot name them with getattr, so these four are all there is.
    allowed = {'min', 'max', 'current', 'mean'}
    if obj is HistoryBuffer and name in allowed and hasattr(HistoryBuffer, name):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'weights_only load: getattr({obj!r}, {name!r}) is not allowed; cvt_dense only '
        f'allows HistoryBuffer statistics methods {sorted(allowed)}')


def mmengine_checkpoint_globals() -> list:
    """``add_safe_globals`` entries: (object, name it has in the pickle) pairs."""
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    entries = [
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
        (history_buffer_statistic, 'builtins.getattr'),
    ]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        entries += [(getattr(multiarray, f), f'{module}.{f}') for f in _NUMPY_ARRAY_FUNCS]
    # numpy 2 rebuilds each dtype as an instance of its own class (numpy.dtypes.Float64DType
    # for the float64 log history, Int64DType for the counts), which BUILD must accept.
    for dtype in _NUMPY_DTYPES:
        cls = type(np.dtype(dtype))
        if cls is not np.dtype:
            entries.append((cls, f'{cls.__module__}.{cls.__qualname__}'))
    return entries


def allow_mmengine_checkpoints() -> None:
    """Allow-list mmengine checkpoint contents for every ``torch.load(weights_only=True)``
    of the process (mmengine's own loads included: resume, ``load_from``, the test tools).

    Idempotent; applied on ``import cvt_dense.runtime``. Does nothing on torch < 2.4 (which
    has no ``add_safe_globals`` and does not default to ``weights_only=True``).
    """
    global _allowed_for_the_process
    if hasattr(torch.serialization, 'add_safe_globals'):
        _allowed_for_the_process = True
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())  # a set union


# Whether allow_mmengine_checkpoints ran: a scoped read ending must not undo it.
_allowed_for_the_process = False


@contextlib.contextmanager
def mmengine_checkpoints_allowed():
    """A context in which ``torch.load(weights_only=True)`` accepts mmengine checkpoint
    contents, leaving torch's global allow-list as it was (on torch < 2.4 nothing is needed).

    torch's own ``safe_globals`` context is not used: on exit it removes its entries even
    where the process-wide allow-list (:func:`allow_mmengine_checkpoints`) holds them too,
    and later mmengine loads (``--resume``, ``tools/test.py``) would then fail.
    """
    if not hasattr(torch.serialization, 'add_safe_globals'):
        yield
        return
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
        if _allowed_for_the_process:  # applied inside the scope, e.g. by an import there
            allow_mmengine_checkpoints()

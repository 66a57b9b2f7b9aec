"""Which downstream library a config belongs to, read from its ``default_scope``."""
from typing import Mapping

# default_scope -> task name used by the tools.
SCOPE_TASKS = {'mmdet': 'det', 'mmseg': 'seg'}


def task_of(cfg: Mapping) -> str:
    """Task of a config: ``'det'`` for mmdet (``default_scope='mmdet'``), ``'seg'`` for mmseg.

    Args:
        cfg (Mapping): A loaded config (``mmengine.Config`` or a dict).

    Returns:
        str: ``'det'`` or ``'seg'``.

    Raises:
        ValueError: The config has no ``default_scope`` or one the tools do not support.
    """
    scope = cfg.get('default_scope')
    if scope not in SCOPE_TASKS:
        name = getattr(cfg, 'filename', None) or 'the config'
        raise ValueError(
            f'{name} has default_scope={scope!r}; cvt_dense tools need '
            f"default_scope='mmdet' (detection / instance segmentation) or "
            f"default_scope='mmseg' (semantic segmentation)")
    return SCOPE_TASKS[scope]

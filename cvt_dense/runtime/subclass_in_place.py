"""Add behaviour to one object that mmengine built, without rebuilding it: its
``__class__`` becomes a subclass made once per class. Used for a dataloader's dataset and
batch sampler, which the dataloader does not let anyone replace once it is built."""
from typing import Callable

_SUBCLASSES = {}


def subclass_in_place(obj, make_subclass: Callable[[type], type]):
    """Set ``obj.__class__`` to ``make_subclass(type(obj))`` (made once per class; nothing
    changes when ``obj`` has it already); return ``obj``.

    ``make_subclass`` must return a direct subclass that adds no instance fields, so that
    the instance layout is kept and ``__class__`` can be reassigned.
    """
    cls = type(obj)
    if cls.__dict__.get('_made_by') is make_subclass:
        return obj
    key = (make_subclass, cls)
    if key not in _SUBCLASSES:
        subclass = make_subclass(cls)
        subclass._made_by = make_subclass
        _SUBCLASSES[key] = subclass
    obj.__class__ = _SUBCLASSES[key]
    return obj

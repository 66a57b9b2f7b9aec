"""The one registration of a backbone, which everything else reads.

``@register_backbone(...)`` on a :class:`~.base.DenseBackbone` subclass makes it known to
the weight loader (its ``checkpoint_spec``), to the OpenMMLab registries
(:mod:`cvt_dense.registry` listens), to the contract tests (its ``small`` instance), to the
tools' ``--backbone`` choices, the demo, ``benchmark_backbone`` (its ``benchmark`` instance
and reference ``peer``) and the attention pictures. Nothing else spells a backbone's name.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from torch import nn

from ...weights import register_spec

# peer(our model, (H, W)) -> (reference model, function(model, images) -> outputs), or
# None when the reference cannot run that size.
PeerBuilder = Callable[[nn.Module, Tuple[int, int]], Optional[Tuple[nn.Module, Callable]]]


@dataclass(frozen=True)
class Peer:
    """A reference implementation a backbone is benchmarked against.

    Args:
        name (str): What the tools print (e.g. ``'transformers'``).
        build (PeerBuilder): Builds it for an input size; may copy our model's weights.
    """

    name: str
    build: PeerBuilder


@dataclass(frozen=True)
class BackboneInfo:
    """What the toolkit knows of a registered backbone.

    Args:
        cls (type): The backbone class.
        name (str): Its short name for the tools (``--backbone``): the class name in lower
            case.
        small (dict): Constructor arguments of a small instance (milliseconds on a CPU):
            the contract tests and smoke runs use it.
        benchmark (dict): Constructor arguments of the instance ``benchmark_backbone``
            measures by default.
        peer (Peer, optional): The reference implementation it is benchmarked against.
    """

    cls: type
    name: str
    small: dict = field(default_factory=dict)
    benchmark: dict = field(default_factory=dict)
    peer: Optional[Peer] = None


_BACKBONES: Dict[str, BackboneInfo] = {}
_LISTENERS: List[Callable[[type], None]] = []


def register_backbone(small: dict, benchmark: Optional[dict] = None,
                      peer: Optional[Peer] = None) -> Callable[[type], type]:
    """Class decorator: register a :class:`~.base.DenseBackbone` subclass (once).

    Args:
        small (dict): See :class:`BackboneInfo`.
        benchmark (dict, optional): See :class:`BackboneInfo`; defaults to ``small``.
        peer (Peer, optional): See :class:`BackboneInfo`.

    Raises:
        ValueError: Another class is registered under the same name.
    """
    def decorate(cls: type) -> type:
        info = BackboneInfo(cls, cls.__name__.lower(), dict(small),
                            dict(small if benchmark is None else benchmark), peer)
        existing = _BACKBONES.get(info.name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(f'a backbone named {cls.__name__} is already registered '
                             f'({existing.cls.__module__}.{existing.cls.__qualname__})')
        _BACKBONES[info.name] = info
        register_spec(cls.checkpoint_spec)
        for listener in _LISTENERS:
            listener(cls)
        return cls
    return decorate


def unregister_backbone(name: str) -> None:
    """Forget a registered backbone (for tests that register one of their own)."""
    _BACKBONES.pop(name.lower(), None)


def on_register(listener: Callable[[type], None]) -> None:
    """Call ``listener(cls)`` for every backbone registered now and later."""
    _LISTENERS.append(listener)
    for info in registered_backbones():
        listener(info.cls)


def registered_backbones() -> Tuple[BackboneInfo, ...]:
    """Every registered backbone, in registration order."""
    return tuple(_BACKBONES.values())


def get_backbone(name: str) -> BackboneInfo:
    """The registered backbone of a short or class name (case-insensitive).

    Raises:
        KeyError: No such backbone; the message lists the registered ones.
    """
    info = _BACKBONES.get(name.lower())
    if info is None:
        raise KeyError(f'no backbone {name!r} is registered; registered: '
                       f'{[i.name for i in registered_backbones()]}')
    return info

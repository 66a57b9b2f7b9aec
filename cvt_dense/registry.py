"""The one place that puts the toolkit into the OpenMMLab registries.

Models: every registered backbone (:func:`cvt_dense.models.register_backbone`, including
ones registered after this module ran) and the necks go into the ``MODELS`` of mmdet and
mmseg, whichever are installed (mmseg does not need mmdet), so that
``custom_imports=dict(imports=['cvt_dense'])`` makes them buildable from their configs.
``Registry.build`` switches to the registry of the current default scope, which may be
neither (mmengine's own, or another library's), so the models also go into mmengine's root
registry, the parent every downstream registry falls back to. With neither library
installed the models are plain PyTorch modules; the model modules themselves never import
mmdet or mmseg. A name another module already holds in a registry keeps its owner (a
warning says so): the toolkit never overwrites a registration that is not its own.

Training components (the long-run hooks, the locality hook, the optimizer wrappers) are
registered by name only: the first config that builds one imports the module that defines
it (e.g. :mod:`cvt_dense.runtime`), so that ``import cvt_dense`` alone loads no training machinery
and changes no torch global.
"""
import importlib
import logging
import sys
import warnings
from typing import Callable, Dict, List

from mmengine import registry as mm_registries
from mmengine.logging import print_log
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

from .models import NECKS, CvtDenseSimpleFPN, registered_backbones
from .models.backbones import on_register

# Optional downstream libraries (import names) whose MODELS get the toolkit's models.
DOWNSTREAM_LIBRARIES = ('mmdet', 'mmseg')
# mmengine root registry -> {training component: the module that registers it there when
# imported}.
TRAINING_COMPONENTS: Dict[str, Dict[str, str]] = {
    'HOOKS': {**{name: 'cvt_dense.runtime' for name in (
        'BadSampleHook', 'CompiledTrainStepHook', 'NonFiniteGuardHook', 'PreemptionHook',
        'ResumableCheckpointHook')},
        'LocalityHook': 'cvt_dense.analysis.locality_hook'},
    'OPTIM_WRAPPERS': {'CPUBF16OptimWrapper': 'cvt_dense.runtime'},
    'OPTIM_WRAPPER_CONSTRUCTORS': {'LayerDecayOptimWrapperConstructor': 'cvt_dense.optim'},
}
_following_registrations = False


def _former_name(name: str, cls: type) -> Callable:
    """A builder of ``cls`` under its former registry name ``name``, with a warning."""
    def build(*args, **kwargs):
        warnings.warn(f"type='{name}' is the former name of cvt_dense's {cls.__name__}; use "
                      f"type='{cls.__name__}' (mmdet's ViTDet project registers a {name} of "
                      f"its own, with other arguments)", FutureWarning, stacklevel=2)
        return cls(*args, **kwargs)
    build.__name__ = build.__qualname__ = name
    return build


# Former registry names of toolkit models, for configs written before the rename. Each goes
# only into mmengine's root MODELS, where mmdet's and mmseg's registries fall back to, and
# only while no other module holds it in any of them: mmdet's ViTDet project registers its
# own SimpleFPN into mmdet's MODELS, and imported after us it then neither fails (name
# taken) nor is shadowed.
FORMER_NAMES: Dict[str, type] = {'SimpleFPN': CvtDenseSimpleFPN}
_FORMER_NAME_BUILDERS = {name: _former_name(name, cls) for name, cls in FORMER_NAMES.items()}


def installed_model_registries() -> List[Registry]:
    """``MODELS`` of every installed downstream library, then mmengine's root ``MODELS``.

    A library that is not installed (or hidden with ``sys.modules[name] = None``) is
    skipped. One that is installed but fails to import (e.g. a dependency of its own is
    missing, or it refuses the installed mmcv) raises: the error is the library's, not
    hidden.

    Raises:
        ImportError: A library is installed in a version without ``<library>.registry``
            (mmdet 2.x, mmseg 0.x).
    """
    registries = []
    for library in DOWNSTREAM_LIBRARIES:
        try:
            registries.append(importlib.import_module(f'{library}.registry').MODELS)
        except ModuleNotFoundError as err:
            if err.name == library or sys.modules.get(library, False) is None:
                continue
            if err.name == f'{library}.registry':
                version = getattr(sys.modules.get(library), '__version__', 'unknown')
                raise ImportError(
                    f'{library} {version} is installed but has no {library}.registry: '
                    f'cvt_dense needs the mmengine-based releases (mmdet 3.x, '
                    f'mmsegmentation 1.x)') from err
            raise
    return registries + [MMENGINE_MODELS]


def _owner(component: Callable) -> str:
    """Where a registered class or function is defined (the same after a reload)."""
    return f'{component.__module__}.{component.__qualname__}'


def _holders(registries: List[Registry], name: str, ours: Callable) -> List[str]:
    """'scope::registry (owner)' of each of ``registries`` where ``name`` holds something
    defined elsewhere than ``ours``."""
    return [f'{registry.scope}::{registry.name} ({_owner(registry.module_dict[name])})'
            for registry in registries
            if name in registry.module_dict
            and _owner(registry.module_dict[name]) != _owner(ours)]


def _register(registries: List[Registry], cls: type) -> None:
    """Register ``cls`` under its class name wherever the name is free or ours (force only
    replaces our own class, e.g. from a reloaded module)."""
    name = cls.__name__
    for registry in registries:
        if registry.module_dict.get(name) is cls:
            continue
        taken = _holders([registry], name, cls)
        if taken:
            print_log(f'cvt_dense: {name!r} is already registered in {taken[0]}; cvt_dense '
                      f'leaves it there, so configs of that registry build that one, not '
                      f'{_owner(cls)}', logger='current', level=logging.WARNING)
            continue
        registry.register_module(module=cls, force=True)


def _register_former_names(registries: List[Registry]) -> None:
    """Register each of :data:`FORMER_NAMES` into mmengine's root ``MODELS`` (the last of
    ``registries``) unless another module holds the name in one of ``registries``."""
    root = registries[-1]
    for name, cls in FORMER_NAMES.items():
        builder = _FORMER_NAME_BUILDERS[name]
        if root.module_dict.get(name) is builder:
            continue
        taken = _holders(registries, name, builder)
        if taken:
            print_log(f'cvt_dense: {name!r} is already registered in {", ".join(taken)}; '
                      f'cvt_dense does not register it as the former name of {cls.__name__} '
                      f"(configs name ours type='{cls.__name__}')",
                      logger='current', level=logging.WARNING)
            continue
        root.register_module(name=name, module=builder, force=True)


def _builder_importing(module: str, registry: Registry, name: str):
    """A stand-in for ``name`` that imports ``module`` (which registers the real class
    over it) and builds the real one."""
    def build(*args, **kwargs):
        importlib.import_module(module)
        component = registry.get(name)
        if component is build:
            raise KeyError(f'{module} did not register {name} in {registry.name}')
        return component(*args, **kwargs)
    build.__name__ = build.__qualname__ = name
    return build


def register_training_names() -> None:
    """Make the training components buildable by name before their modules are imported
    (idempotent; a module already imported has registered its classes)."""
    for registry_name, components in TRAINING_COMPONENTS.items():
        registry = getattr(mm_registries, registry_name)
        for name, module in components.items():
            if module not in sys.modules and name not in registry.module_dict:
                registry.register_module(name=name,
                                         module=_builder_importing(module, registry, name))


def register_all_modules() -> List[Registry]:
    """Register every toolkit model into the installed libraries' ``MODELS`` (idempotent;
    backbones registered later follow), and the training components' names.

    Returns:
        list[Registry]: The registries the models are now in.
    """
    global _following_registrations
    registries = installed_model_registries()
    for cls in NECKS:
        _register(registries, cls)
    _register_former_names(registries)
    if not _following_registrations:
        # Also registers the backbones registered so far.
        on_register(lambda cls: _register(installed_model_registries(), cls))
        _following_registrations = True
    for info in registered_backbones():
        _register(registries, info.cls)
    register_training_names()
    return registries

"""``load_pretrained``: checkpoint file -> converted, adapted tensors -> model, with a report.

This is what every backbone's ``init_weights()`` runs for
``init_cfg=dict(type='Pretrained', ...)``; the backbone's
:class:`~cvt_dense.weights.spec.CheckpointSpec` supplies everything that is not shared.
"""
import re
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import MMLogger
from torch import nn

from .adapt import Adaptation, adapt_to_model
from .convert import convert_checkpoint
from .errors import CheckpointError, CheckpointMismatchError
from .io import PathLike, read_checkpoint
from .spec import CheckpointSpec

BN_COUNTER = 'num_batches_tracked'  # absent from some checkpoints; harmless when its BN loads
SHOWN_KEYS = 5  # keys quoted per category in messages

Mismatch = Tuple[str, Tuple[int, ...], Tuple[int, ...]]


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Args:
        source (str): The checkpoint path or URL.
        source_format (str): The format the backbone's spec detected (e.g. 'official',
            'hf', or 'cvt_dense' for backbone-only files).
        loaded (list[str]): Model keys filled from the checkpoint.
        dropped_classifier (list[str]): Classifier-only checkpoint keys (source names).
        dropped_other (list[str]): Checkpoint keys outside the backbone (e.g. ``neck.*``).
        adapted (list[Adaptation]): Tensors resampled or channel-adapted to fit the model.
        newly_initialised (list[str]): Model keys no ImageNet checkpoint has (output norms,
            extra levels, optional tensors the checkpoint lacks); they keep their
            initialisation.
        missing (list[str]): Other model keys the checkpoint lacks.
        unexpected (list[str]): Checkpoint keys the model does not have.
        mismatched (list[tuple]): (key, checkpoint shape, model shape) that could not be
            adapted.
        notes (list[str]): How the model differs from the networks the released
            checkpoints were trained as (``CheckpointSpec.variant_notes``).
    """

    source: str
    source_format: str
    loaded: List[str] = field(default_factory=list)
    dropped_classifier: List[str] = field(default_factory=list)
    dropped_other: List[str] = field(default_factory=list)
    adapted: List[Adaptation] = field(default_factory=list)
    newly_initialised: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Mismatch] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every backbone tensor came from the checkpoint and none was left over."""
        return not (self.missing or self.unexpected or self.mismatched)


def load_pretrained(model: nn.Module, checkpoint: Union[PathLike, Mapping],
                    allow_partial: bool = False, allow_pickle: bool = False,
                    map_location: Any = 'cpu', prefix: Optional[str] = None,
                    spec: Optional[CheckpointSpec] = None, sha256: Optional[str] = None,
                    **ignored_mm_keys) -> LoadReport:
    """Load ImageNet (or our own) backbone weights into ``model`` and log what happened.

    The checkpoint's format is detected from its keys (e.g. official release, Hugging Face,
    timm, ours, wrapped in ``state_dict``/``model``, or a full mmdet/mmseg checkpoint),
    renamed to our names, stripped of the classifier, and adapted where a tensor depends on
    the grid or the input channels (see :mod:`cvt_dense.weights.adapt`).

    Args:
        model (nn.Module): A backbone, e.g. :class:`~cvt_dense.models.CvT`.
        checkpoint (str | PathLike | Mapping): File, Hugging Face model directory, URL
            (downloaded once into a cache), ``hf://OWNER/REPO[/FILE]`` hub id, or an already
            loaded checkpoint dict.
        allow_partial (bool): Load the tensors that fit and only warn about missing,
            unexpected and mismatched ones. Defaults to False (they are an error).
        allow_pickle (bool): Allow full unpickling for trusted files that store Python
            objects. Defaults to False.
        map_location: As for ``torch.load``. Defaults to 'cpu'.
        prefix (str, optional): Load only keys under this prefix (``backbone.`` is picked
            automatically when present).
        spec (CheckpointSpec, optional): The backbone's checkpoint description. Defaults
            to ``model.checkpoint_spec``.
        sha256 (str, optional): Expected sha256 of the checkpoint file (full digest or a
            prefix of at least 8 hex digits), e.g.
            ``init_cfg=dict(type='Pretrained', checkpoint=URL, sha256='...')``.
        **ignored_mm_keys: Other ``init_cfg`` keys; logged and ignored.

    Returns:
        LoadReport: What was loaded, dropped, adapted, missing or unexpected.

    Raises:
        CheckpointError: The checkpoint cannot be read or holds no tensors of this
            backbone.
        PickleNotAllowedError: It needs unpickling and ``allow_pickle`` is False.
        CheckpointMismatchError: It does not fit the model and ``allow_partial`` is False;
            the message names the first offending keys and both shapes.
    """
    if ignored_mm_keys:
        MMLogger.get_current_instance().warning(
            f'load_pretrained: ignoring unknown init_cfg keys {sorted(ignored_mm_keys)}')
    if isinstance(checkpoint, Mapping):
        if sha256 is not None:
            raise ValueError('sha256 needs a checkpoint file, not an in-memory dict')
        return load_checkpoint_dict(model, checkpoint, allow_partial=allow_partial,
                                    prefix=prefix, spec=spec)
    raw = read_checkpoint(checkpoint, map_location=map_location, allow_pickle=allow_pickle,
                          sha256=sha256)
    return load_checkpoint_dict(model, raw, source=str(checkpoint),
                                allow_partial=allow_partial, prefix=prefix, spec=spec)


def load_checkpoint_dict(model: nn.Module, checkpoint: Mapping,
                         source: str = '<in-memory checkpoint>', allow_partial: bool = False,
                         prefix: Optional[str] = None, spec: Optional[CheckpointSpec] = None
                         ) -> LoadReport:
    """The part of :func:`load_pretrained` after reading: convert, adapt, check, load, log.

    Args:
        model (nn.Module): A backbone, e.g. :class:`~cvt_dense.models.CvT`.
        checkpoint (Mapping): A checkpoint dict in any supported format.
        source (str): Where it came from, for messages.
        allow_partial (bool): See :func:`load_pretrained`.
        prefix (str, optional): See :func:`load_pretrained`.
        spec (CheckpointSpec, optional): See :func:`load_pretrained`.

    Returns:
        LoadReport: What was loaded, dropped, adapted, missing or unexpected.
    """
    spec = spec or _spec_of(model)
    try:
        conversion = convert_checkpoint(checkpoint, spec, prefix)
    except CheckpointError as e:
        raise CheckpointError(f'{source}: {e}') from None
    model_state = model.state_dict()
    state, adapted = adapt_to_model(conversion.state_dict, model_state, spec)
    report = LoadReport(source, conversion.source_format,
                        dropped_classifier=conversion.dropped_classifier,
                        dropped_other=conversion.dropped_other, adapted=adapted)
    loadable = _compare(state, model_state, report, spec)
    if not report.complete and not allow_partial:
        raise CheckpointMismatchError(_mismatch_message(model, state, report, spec))
    if not loadable:
        raise CheckpointMismatchError(_mismatch_message(model, state, report, spec)
                                      + ' (nothing would be loaded even with allow_partial)')
    with torch.no_grad():
        incompatible = model.load_state_dict(loadable, strict=False)
    if incompatible.unexpected_keys:  # cannot happen: loadable only holds model keys
        raise RuntimeError(f'unexpected keys {incompatible.unexpected_keys}')
    report.loaded = sorted(loadable)
    report.notes = list(spec.variant_notes(model))
    _log(MMLogger.get_current_instance(), report, model_state)
    return report


def _spec_of(model: nn.Module) -> CheckpointSpec:
    spec = getattr(model, 'checkpoint_spec', None)
    if spec is None:
        raise TypeError(f'{type(model).__name__} has no checkpoint_spec: pass spec= to say '
                        f'how its checkpoints are named')
    return spec


def _is_optional_and_absent(key: str, state: Mapping, spec: CheckpointSpec) -> bool:
    return any(re.match(pattern, key) and not any(re.match(pattern, k) for k in state)
               for pattern in spec.optional)


def _compare(state: Mapping, model_state: Mapping, report: LoadReport,
             spec: CheckpointSpec) -> dict:
    """Sort keys into the report's categories; returns the tensors that can be loaded."""
    loadable = {}
    for key, value in state.items():
        if key not in model_state:
            report.unexpected.append(key)
        elif value.shape != model_state[key].shape:
            report.mismatched.append((key, tuple(value.shape), tuple(model_state[key].shape)))
        else:
            loadable[key] = value
    for key in model_state:
        if key in state:
            continue
        if spec.is_new_in_dense(key) or _is_optional_and_absent(key, state, spec) \
                or (key.endswith(BN_COUNTER)
                    and key[:-len(BN_COUNTER)] + 'running_mean' in state):
            report.newly_initialised.append(key)
        else:
            report.missing.append(key)
    return loadable


def _first(items: Sequence, n: int = SHOWN_KEYS) -> str:
    shown = ', '.join(str(i) for i in items[:n])
    return shown + (f', ... ({len(items) - n} more)' if len(items) > n else '')


def _mismatch_message(model: nn.Module, state: Mapping, report: LoadReport,
                      spec: CheckpointSpec) -> str:
    lines = [f'{report.source} ({report.source_format} format) does not fit this '
             f'{type(model).__name__}:']
    if report.mismatched:
        shapes = [f'{k}: checkpoint {tuple(a)} vs model {tuple(b)}'
                  for k, a, b in report.mismatched]
        lines.append(f'  {len(shapes)} tensor(s) with a different shape: {_first(shapes, 3)}')
    if report.missing:
        lines.append(f'  {len(report.missing)} model tensor(s) missing from the checkpoint: '
                     f'{_first(report.missing)}')
    if report.unexpected:
        lines.append(f'  {len(report.unexpected)} checkpoint tensor(s) the model does not '
                     f'have: {_first(report.unexpected)}')
    found, mine = spec.guess_arch(state), spec.guess_arch(model.state_dict())
    lines.append(f'  checkpoint ({f"looks like {found.preset}" if found.preset else "custom"}): '
                 f'{found.description}; model ({mine.preset or "custom"}): {mine.description}')
    lines += [f'  {advice}' for pattern, advice in spec.hints
              if any(re.match(pattern, k) for k in report.unexpected)]
    lines.append('Pick the arch that matches the checkpoint, or pass allow_partial=True in '
                 'init_cfg to load only the tensors that fit.')
    return '\n'.join(lines)


def _log(logger, report: LoadReport, model_state: Mapping):
    logger.info(
        f'load_pretrained: {report.source} ({report.source_format} format): loaded '
        f'{len(report.loaded)}/{len(model_state)} model tensors; dropped '
        f'{len(report.dropped_classifier)} classifier-only tensor(s)'
        + (f' ({_first(report.dropped_classifier)})' if report.dropped_classifier else '')
        + (f'; dropped {len(report.dropped_other)} non-backbone key(s) '
           f'({_first(report.dropped_other)})' if report.dropped_other else ''))
    for a in report.adapted:
        logger.info(f'load_pretrained: adapted {a.key} {a.source_shape} -> {a.target_shape} '
                    f'({a.rule})')
    for note in report.notes:
        logger.warning(f'load_pretrained: {note}')
    if report.newly_initialised:
        logger.info(f'load_pretrained: {len(report.newly_initialised)} tensor(s) not in '
                    f'ImageNet checkpoints keep their initialisation: '
                    f'{_first(report.newly_initialised, 8)}')
    if not report.complete:
        shapes = [f'{k}: checkpoint {a} vs model {b}' for k, a, b in report.mismatched]
        logger.warning(
            f'load_pretrained (allow_partial=True): missing {len(report.missing)} '
            f'[{_first(report.missing)}]; unexpected {len(report.unexpected)} '
            f'[{_first(report.unexpected)}]; shape mismatch {len(shapes)} [{_first(shapes)}]; '
            f'these tensors keep their initialisation / were skipped')

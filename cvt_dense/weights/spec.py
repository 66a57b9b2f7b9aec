"""What a backbone tells the shared weight machinery about its checkpoints.

The loader, the conversion record, the report, the mismatch message and
``tools/convert_weights.py`` are written once; each backbone describes its own checkpoints
with one :class:`CheckpointSpec` (in ``models/backbones/<name>_checkpoint.py``) and registers
it here. This module imports nothing from ``models``: the dependency runs one way.
"""
import re
from dataclasses import dataclass
from typing import Callable, Collection, Dict, Mapping, Optional, Tuple

import torch

# (new tensor, what was done) or None when the key is not one the rule adapts.
Adapted = Optional[Tuple[torch.Tensor, str]]


@dataclass(frozen=True)
class ArchGuess:
    """An architecture read from a state dict.

    Args:
        preset (str, optional): The matching preset name, or None.
        description (str): The facts read (widths, depths, input channels).
    """

    preset: Optional[str]
    description: str


@dataclass(frozen=True)
class CheckpointSpec:
    """A backbone's checkpoints, as pure data and pure functions.

    Args:
        backbone (str): The registered model name (``'CvT'``).
        detect_format (Callable): Checkpoint keys -> format name (e.g. ``'official'``,
            ``'hf'``, ``'cvt_dense'`` for backbone-only files) or None if the keys are not
            this backbone's.
        to_model_key (Callable): (source key, format) -> our key, or None when the source
            format's table does not know the key (kept as it is and reported).
        classifier_prefixes (tuple[str]): Our names of tensors only the ImageNet classifier
            uses; dropped.
        input_conv (str): Our key of the first conv weight (adapted for
            ``in_channels != 3``).
        new_in_dense (tuple[str]): Regexes of model keys no ImageNet checkpoint holds
            (output norms, extra levels); they keep their initialisation.
        optional (tuple[str]): Regexes of model keys that keep their initialisation when
            the checkpoint has no key matching the same regex (e.g. CvT's optional
            positional embeddings).
        adapt_grid_tensor (Callable): (our key, checkpoint tensor, model tensor) -> (the
            checkpoint tensor resampled to the model tensor's grid, rule), or None when the
            key is not grid-dependent or cannot be resampled.
        guess_arch (Callable): State dict under our names -> :class:`ArchGuess`.
        hints (tuple[tuple[str, str]]): (regex, advice): the advice is added to a mismatch
            message when an unexpected checkpoint key matches the regex.
        variant_notes (Callable): model -> notes on how it differs from the networks the
            released checkpoints were trained as (their tensors still fit); the loader
            logs them and keeps them in its report.
    """

    backbone: str
    detect_format: Callable[[Collection[str]], Optional[str]]
    to_model_key: Callable[[str, str], Optional[str]]
    classifier_prefixes: Tuple[str, ...]
    input_conv: str
    guess_arch: Callable[[Mapping[str, torch.Tensor]], ArchGuess]
    adapt_grid_tensor: Callable[[str, torch.Tensor, torch.Tensor], Adapted] = \
        lambda key, value, target: None
    new_in_dense: Tuple[str, ...] = ()
    optional: Tuple[str, ...] = ()
    hints: Tuple[Tuple[str, str], ...] = ()
    variant_notes: Callable[[object], Tuple[str, ...]] = lambda model: ()

    def is_new_in_dense(self, key: str) -> bool:
        return any(re.match(pattern, key) for pattern in self.new_in_dense)


_SPECS: Dict[str, CheckpointSpec] = {}


def register_spec(spec: CheckpointSpec) -> CheckpointSpec:
    """Make ``spec`` known to format detection across backbones (idempotent)."""
    _SPECS[spec.backbone] = spec
    return spec


def registered_specs() -> Tuple[CheckpointSpec, ...]:
    return tuple(_SPECS.values())


def get_spec(backbone: str) -> CheckpointSpec:
    """The spec registered for ``backbone`` (case-insensitive), with the valid names."""
    for name, spec in _SPECS.items():
        if name.lower() == backbone.lower():
            return spec
    raise KeyError(f'no checkpoint description for backbone {backbone!r}; known: '
                   f'{sorted(_SPECS)}')


def detect_backbone(keys: Collection[str]) -> Optional[Tuple[CheckpointSpec, str]]:
    """(spec, format) of the first registered backbone whose checkpoints have these keys."""
    keys = list(keys)
    for spec in _SPECS.values():
        fmt = spec.detect_format(keys)
        if fmt is not None:
            return spec, fmt
    return None

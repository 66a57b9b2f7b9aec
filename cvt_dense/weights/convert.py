"""Pure ``checkpoint -> state_dict`` conversion to a backbone's names, for every backbone.

Unwraps (``{'state_dict': ...}``, ``{'model': ...}``, DDP's ``module.``, the ``backbone.``
of full mmdet/mmseg checkpoints), detects the source format with the backbone's
:class:`~cvt_dense.weights.spec.CheckpointSpec`, renames and drops the classifier. Every
function here returns new dicts, shares the tensors, and gives the same result when run on
its own output.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch

from .errors import CheckpointError
from .spec import CheckpointSpec, detect_backbone

BACKBONE_PREFIX = 'backbone.'
WRAPPER_KEYS = ('state_dict', 'model')
DDP_PREFIX = 'module.'


@dataclass
class ConversionResult:
    """A converted state dict and what was done to get it.

    Args:
        state_dict (dict): Backbone tensors under our names.
        source_format (str): Format detected by the backbone's spec.
        wrapper (list[str]): Wrapper keys / prefixes that were unwrapped, outermost first.
        renamed (list[tuple[str, str]]): (source key, new key) for every renamed tensor.
        dropped_classifier (list[str]): Classifier-only keys (source names) that were removed.
        dropped_other (list[str]): Keys outside the selected prefix (e.g. ``neck.*``) or
            non-tensor entries that were removed.
        unmapped (list[str]): Keys the source format's table does not know; kept as they
            are so the loader reports them.
    """

    state_dict: Dict[str, torch.Tensor]
    source_format: str
    wrapper: List[str] = field(default_factory=list)
    renamed: List[Tuple[str, str]] = field(default_factory=list)
    dropped_classifier: List[str] = field(default_factory=list)
    dropped_other: List[str] = field(default_factory=list)
    unmapped: List[str] = field(default_factory=list)


def unwrap_checkpoint(checkpoint: Mapping, prefix: Optional[str] = None
                      ) -> Tuple[Dict[str, object], List[str], List[str]]:
    """Find the state dict inside a checkpoint.

    Args:
        checkpoint (Mapping): What :func:`cvt_dense.weights.io.read_checkpoint` returned.
        prefix (str, optional): Keep only keys under this prefix and strip it (like
            mmengine's ``Pretrained`` ``prefix``). By default ``backbone.`` is selected when
            present (mmdet/mmseg checkpoints).

    Returns:
        tuple: (state dict, unwrap steps, keys dropped because they are outside the prefix).
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'expected a checkpoint dict, got {type(checkpoint).__name__}')
    steps, sd = [], checkpoint
    while True:
        inner = next((k for k in WRAPPER_KEYS if isinstance(sd.get(k), Mapping)), None)
        if inner is None:
            break
        steps.append(inner)
        sd = sd[inner]
    sd = dict(sd)
    if sd and all(k.startswith(DDP_PREFIX) for k in sd):
        steps.append(DDP_PREFIX)
        sd = {k[len(DDP_PREFIX):]: v for k, v in sd.items()}
    if prefix is None and any(k.startswith(BACKBONE_PREFIX) for k in sd):
        prefix = BACKBONE_PREFIX
    dropped = []
    if prefix:
        if not prefix.endswith('.'):
            prefix += '.'
        kept = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not kept:
            raise CheckpointError(f'no key starts with prefix {prefix!r}; first keys: '
                                  f'{sorted(sd)[:5]}')
        dropped = sorted(k for k in sd if not k.startswith(prefix))
        steps.append(prefix)
        sd = kept
    return sd, steps, dropped


def convert_checkpoint(checkpoint: Mapping, spec: CheckpointSpec,
                       prefix: Optional[str] = None) -> ConversionResult:
    """Unwrap, rename to the backbone's names and drop the classifier, recording each step.

    Args:
        checkpoint (Mapping): A raw checkpoint or a plain state dict in any format the
            backbone's spec knows.
        spec (CheckpointSpec): The target backbone's description.
        prefix (str, optional): See :func:`unwrap_checkpoint`.

    Returns:
        ConversionResult: The converted state dict and what happened.

    Raises:
        CheckpointError: No key looks like a tensor of this backbone; when the keys are
            another registered backbone's, the message says which.
    """
    sd, steps, dropped_other = unwrap_checkpoint(checkpoint, prefix)
    non_tensors = sorted(k for k, v in sd.items() if not isinstance(v, torch.Tensor))
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    fmt = spec.detect_format(sd)
    if fmt is None:
        raise CheckpointError(_not_this_backbone(sd, spec))
    result = ConversionResult({}, fmt, steps, dropped_other=dropped_other + non_tensors)
    for key, value in sd.items():
        new = spec.to_model_key(key, fmt)
        if new is None:
            result.unmapped.append(key)
            new = key
        if new.startswith(spec.classifier_prefixes):
            result.dropped_classifier.append(key)
            continue
        if new != key:
            result.renamed.append((key, new))
        result.state_dict[new] = value
    return result


def _not_this_backbone(sd: Mapping, spec: CheckpointSpec) -> str:
    message = f'no {spec.backbone} tensors found; first keys: {sorted(sd)[:5]}'
    other = detect_backbone(sd)
    if other is not None:
        other_spec, fmt = other
        guess = other_spec.guess_arch(convert_checkpoint(sd, other_spec).state_dict)
        like = f' ({guess.preset})' if guess.preset else ''
        message += (f'. They are a {other_spec.backbone}{like} checkpoint ({fmt} format): '
                    f"build type='{other_spec.backbone}' to load it")
    return message


def add_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str = BACKBONE_PREFIX
               ) -> Dict[str, torch.Tensor]:
    """Prefix every key (e.g. ``backbone.`` for mmengine's ``load_from``); idempotent."""
    return {k if k.startswith(prefix) else prefix + k: v for k, v in state_dict.items()}

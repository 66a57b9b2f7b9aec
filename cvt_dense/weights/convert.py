"""Pure ``state_dict -> state_dict`` conversion of CvT checkpoints to our (= official) names.

Handles the official release (``stage{i}.*``, ``norm.*``, ``head.*``), Hugging Face
(``[cvt.]encoder.stages.{i}.*``, ``layernorm.*``, ``classifier.*``), files written by our
converter, wrappers (``{'state_dict': ...}``, ``{'model': ...}``, DDP's ``module.``) and full
mmdet/mmseg checkpoints (backbone under ``backbone.``). Every function here returns new
dicts, shares the tensors, and gives the same result when run on its own output.
"""
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch

from .errors import CheckpointError

# The one official <-> Hugging Face name table, used by the loader, the CLI and the tests.
# Paths are relative to a stage (official ``stage{i}.``, HF ``[cvt.]encoder.stages.{i}.``);
# ``{j}`` is a block index and ``{x}``/``{xx}`` one of q/query, k/key, v/value. Each entry
# names a module (its parameter and buffer leaves keep their names) or a bare parameter.
STAGE_NAME_TABLE: Tuple[Tuple[str, str], ...] = (
    ('patch_embed.proj', 'embedding.convolution_embeddings.projection'),
    ('patch_embed.norm', 'embedding.convolution_embeddings.normalization'),
    ('cls_token', 'cls_token'),
    ('blocks.{j}.norm1', 'layers.{j}.layernorm_before'),
    ('blocks.{j}.norm2', 'layers.{j}.layernorm_after'),
    ('blocks.{j}.attn.conv_proj_{x}.conv',
     'layers.{j}.attention.attention.convolution_projection_{xx}.convolution_projection'
     '.convolution'),
    ('blocks.{j}.attn.conv_proj_{x}.bn',
     'layers.{j}.attention.attention.convolution_projection_{xx}.convolution_projection'
     '.normalization'),
    ('blocks.{j}.attn.proj_{x}', 'layers.{j}.attention.attention.projection_{xx}'),
    ('blocks.{j}.attn.proj', 'layers.{j}.attention.output.dense'),
    ('blocks.{j}.mlp.fc1', 'layers.{j}.intermediate.dense'),
    ('blocks.{j}.mlp.fc2', 'layers.{j}.output.dense'),
)
# Top-level modules after the stages: the final cls-token norm and the classifier.
HEAD_NAME_TABLE: Tuple[Tuple[str, str], ...] = (('norm', 'layernorm'), ('head', 'classifier'))
QKV_NAMES = (('q', 'query'), ('k', 'key'), ('v', 'value'))
OFFICIAL_STAGE_PREFIX = 'stage{i}.'
HF_STAGE_PREFIX = 'encoder.stages.{i}.'
HF_MODEL_PREFIX = 'cvt.'  # CvtForImageClassification wraps CvtModel as ``cvt``

# Official names of tensors that only the ImageNet classifier uses.
CLASSIFIER_ONLY_PREFIXES = tuple(f'{official}.' for official, _ in HEAD_NAME_TABLE)
BACKBONE_PREFIX = 'backbone.'
WRAPPER_KEYS = ('state_dict', 'model')
DDP_PREFIX = 'module.'

_HF_KEY = re.compile(r'^(?:cvt\.)?encoder\.stages\.\d+\.')
_OFFICIAL_KEY = re.compile(r'^stage\d+\.')


def _expand(table):
    for official, hf in table:
        if '{x}' in official:
            for x, xx in QKV_NAMES:
                yield official.replace('{x}', x), hf.replace('{xx}', xx)
        else:
            yield official, hf


def _pattern(template: str) -> re.Pattern:
    body = re.escape(template).replace(r'\{i\}', r'(?P<i>\d+)').replace(r'\{j\}', r'(?P<j>\d+)')
    return re.compile('^' + body + r'(?P<leaf>(?:\..+)?)$')


def _build_rules():
    """(official template, hf template) pairs of full keys with their compiled patterns."""
    pairs = [(OFFICIAL_STAGE_PREFIX + o, HF_STAGE_PREFIX + h) for o, h in _expand(STAGE_NAME_TABLE)]
    pairs += list(HEAD_NAME_TABLE)
    return [(o, h, _pattern(o), _pattern(h)) for o, h in pairs]


_RULES = _build_rules()


def _fill(template: str, match: re.Match) -> str:
    indices = {k: v for k, v in match.groupdict().items() if k != 'leaf'}
    return template.format(**indices) + match.group('leaf')


def hf_to_official_key(key: str) -> Optional[str]:
    """Official name of a Hugging Face CvT key, or None if the key is not in the table.

    Accepts keys of ``CvtModel`` (``encoder.stages...``) and of
    ``CvtForImageClassification`` (``cvt.encoder.stages...``, ``layernorm``, ``classifier``).
    """
    stripped = key[len(HF_MODEL_PREFIX):] if key.startswith(HF_MODEL_PREFIX) else key
    for official, _, _, hf_re in _RULES:
        m = hf_re.match(stripped)
        if m:
            return _fill(official, m)
    return None


def official_to_hf_key(key: str, with_cvt_prefix: bool = True) -> Optional[str]:
    """Hugging Face name of an official key (the inverse of :func:`hf_to_official_key`).

    Stage keys get the ``cvt.`` prefix of ``CvtForImageClassification`` unless
    ``with_cvt_prefix`` is False (``CvtModel``); the head keys never have it.
    """
    for official, hf, off_re, _ in _RULES:
        m = off_re.match(key)
        if m:
            name = _fill(hf, m)
            prefix = HF_MODEL_PREFIX if with_cvt_prefix and name.startswith('encoder.') else ''
            return prefix + name
    return None


def detect_format(keys: Iterable[str]) -> str:
    """'hf', 'official' (with classifier), 'cvt_dense' (backbone only) or 'unknown'."""
    keys = list(keys)
    if any(_HF_KEY.match(k) for k in keys):
        return 'hf'
    if any(_OFFICIAL_KEY.match(k) for k in keys):
        return 'official' if any(k.startswith(CLASSIFIER_ONLY_PREFIXES) for k in keys) \
            else 'cvt_dense'
    return 'unknown'


@dataclass
class ConversionResult:
    """A converted state dict and what was done to get it.

    Args:
        state_dict (dict): Backbone tensors under official names.
        source_format (str): Detected format, see :func:`detect_format`.
        wrapper (list[str]): Wrapper keys / prefixes that were unwrapped, outermost first.
        renamed (list[tuple[str, str]]): (source key, new key) for every renamed tensor.
        dropped_classifier (list[str]): Classifier-only keys (source names) that were removed.
        dropped_other (list[str]): Keys outside the selected prefix (e.g. ``neck.*``) or
            non-tensor entries that were removed.
        unmapped (list[str]): Hugging Face style keys that the table does not know; kept as
            they are so the loader reports them.
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


def convert_checkpoint(checkpoint: Mapping, prefix: Optional[str] = None) -> ConversionResult:
    """Unwrap, rename to official names and drop the classifier, with a record of each step.

    Args:
        checkpoint (Mapping): A raw checkpoint or a plain state dict in any supported format.
        prefix (str, optional): See :func:`unwrap_checkpoint`.

    Returns:
        ConversionResult: The converted state dict and what happened.

    Raises:
        CheckpointError: No key looks like a CvT tensor.
    """
    sd, steps, dropped_other = unwrap_checkpoint(checkpoint, prefix)
    non_tensors = sorted(k for k, v in sd.items() if not isinstance(v, torch.Tensor))
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    fmt = detect_format(sd)
    if fmt == 'unknown':
        raise CheckpointError(
            f'no CvT tensors found: keys look neither official (stage0.*) nor Hugging Face '
            f'(cvt.encoder.stages.0.*); first keys: {sorted(sd)[:5]}')
    result = ConversionResult({}, fmt, steps, dropped_other=dropped_other + non_tensors)
    for key, value in sd.items():
        new = key
        if fmt == 'hf':
            mapped = hf_to_official_key(key)
            if mapped is None and _HF_KEY.match(key):
                result.unmapped.append(key)
            new = mapped or key
        if new.startswith(CLASSIFIER_ONLY_PREFIXES):
            result.dropped_classifier.append(key)
            continue
        if new != key:
            result.renamed.append((key, new))
        result.state_dict[new] = value
    return result


def convert_to_cvt(checkpoint: Mapping, prefix: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Backbone state dict under official names from any supported checkpoint (idempotent).

    Args:
        checkpoint (Mapping): A raw checkpoint or a state dict (official, HF, ours, wrapped,
            or a full mmdet/mmseg checkpoint).
        prefix (str, optional): See :func:`unwrap_checkpoint`.

    Returns:
        dict: ``{official name: tensor}`` without the classifier-only tensors.
    """
    return convert_checkpoint(checkpoint, prefix).state_dict


def add_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str = BACKBONE_PREFIX
               ) -> Dict[str, torch.Tensor]:
    """Prefix every key (e.g. ``backbone.`` for mmengine's ``load_from``); idempotent."""
    return {k if k.startswith(prefix) else prefix + k: v for k, v in state_dict.items()}


def infer_arch(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, object]:
    """Widths, depths and input channels read from an official-named state dict.

    Returns a dict with ``embed_dims``, ``depths``, ``in_channels`` and ``preset`` (the
    matching name of ``ARCH_SETTINGS`` or None). Heads cannot be read from the weights.
    """
    from ..models.backbones.cvt import ARCH_SETTINGS
    dims, depths, in_channels = [], [], None
    i = 0
    while f'stage{i}.patch_embed.proj.weight' in state_dict:
        w = state_dict[f'stage{i}.patch_embed.proj.weight']
        dims.append(int(w.shape[0]))
        in_channels = in_channels if i else int(w.shape[1])
        blocks = {m.group(1) for k in state_dict
                  for m in [re.match(rf'^stage{i}\.blocks\.(\d+)\.', k)] if m}
        depths.append(len(blocks))
        i += 1
    preset = next((name for name, s in ARCH_SETTINGS.items()
                   if list(s['embed_dims']) == dims and list(s['depths']) == depths), None)
    return dict(embed_dims=dims, depths=depths, in_channels=in_channels, preset=preset)

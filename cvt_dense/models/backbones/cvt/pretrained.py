"""CvT's checkpoints: the official <-> Hugging Face name table and the loader's description.

Our names are the official release's (``stage{i}.*``, ``norm.*``, ``head.*``); Hugging Face
checkpoints (``[cvt.]encoder.stages.{i}.*``, ``layernorm.*``, ``classifier.*``) are renamed
with the one table below, used by the loader, ``tools/convert_weights.py``, the tests and
the docs.
"""
import re
from typing import Collection, Dict, Mapping, Optional, Tuple

import torch

from ....weights import ArchGuess, CheckpointSpec, convert_checkpoint
from ...layers import pos_embed_adapter
from .presets import ARCH_SETTINGS, STAGE_DEFAULTS

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
INPUT_CONV_KEY = 'stage0.patch_embed.proj.weight'
POS_EMBED_PATTERN = r'^stage\d+\.pos_embed$'

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


def detect_format(keys: Collection[str]) -> Optional[str]:
    """'hf', 'official' (with classifier), 'cvt_dense' (backbone only) or None."""
    keys = list(keys)
    if any(_HF_KEY.match(k) for k in keys):
        return 'hf'
    if any(_OFFICIAL_KEY.match(k) for k in keys):
        return 'official' if any(k.startswith(CLASSIFIER_ONLY_PREFIXES) for k in keys) \
            else 'cvt_dense'
    return None


def to_official_key(key: str, fmt: str) -> Optional[str]:
    """Our (official) name of ``key`` in format ``fmt``; None for HF stage keys the table
    does not know."""
    if fmt != 'hf':
        return key
    mapped = hf_to_official_key(key)
    if mapped is None and _HF_KEY.match(key):
        return None
    return mapped or key


def infer_arch(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, object]:
    """Widths, depths and input channels read from an official-named state dict.

    Returns a dict with ``embed_dims``, ``depths``, ``in_channels`` and ``preset`` (the
    matching name of ``ARCH_SETTINGS`` or None). Heads cannot be read from the weights.
    """
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


def guess_arch(state_dict: Mapping[str, torch.Tensor]) -> ArchGuess:
    arch = infer_arch(state_dict)
    return ArchGuess(arch['preset'], f'embed_dims {arch["embed_dims"]}, depths '
                                     f'{arch["depths"]}, in_channels {arch["in_channels"]}')


# Arch fields of the q/k/v projections, whose values (STAGE_DEFAULTS, the same in every
# stage) every released CvT checkpoint, official or Hugging Face, was trained with.
RELEASED_PROJECTION_FIELDS = ('qkv_proj_methods', 'qkv_kernel_sizes', 'q_strides',
                              'q_paddings', 'kv_strides', 'kv_paddings')
CONV_PROJECTION_PATTERN = r'^stage\d+\.blocks\.\d+\.attn\.conv_proj_[qkv]\.'


def variant_notes(model) -> Tuple[str, ...]:
    """What a model's q/k/v projections change against the released checkpoints'."""
    settings = model.arch_settings
    changed = {key: settings[key] for key in RELEASED_PROJECTION_FIELDS
               if any(value != STAGE_DEFAULTS[key][0] for value in settings[key])}
    if not changed:
        return ()
    released = {key: STAGE_DEFAULTS[key][0] for key in changed}
    return (f'this CvT\'s q/k/v projections {changed} differ from those every released CvT '
            f'checkpoint was trained with ({released} in every stage). The tensors that fit '
            f'were loaded unchanged (depth-wise k/v kernels at a larger stride see fewer '
            f'positions), so the network is not the pretrained one until fine-tuning adapts '
            f'it; its accuracy is not measured here.',)


CVT_CHECKPOINTS = CheckpointSpec(
    backbone='CvT',
    detect_format=detect_format,
    to_model_key=to_official_key,
    classifier_prefixes=CLASSIFIER_ONLY_PREFIXES,
    input_conv=INPUT_CONV_KEY,
    guess_arch=guess_arch,
    # A stage's (1, C, H, W) positional embedding (or square (1, H*W, C) tokens),
    # resampled bicubically to the model's grid as at run time.
    adapt_grid_tensor=pos_embed_adapter(POS_EMBED_PATTERN, antialias=False),
    new_in_dense=(r'out_norm\d+\.', r'extra_embed\.'),
    optional=(POS_EMBED_PATTERN,),
    hints=((POS_EMBED_PATTERN, 'The checkpoint has positional embeddings: build the model '
                               'with use_pos_embed=True (or arch pos_embeds) to use them.'),
           (CONV_PROJECTION_PATTERN,
            "The checkpoint has depth-wise conv + BN q/k/v projections (qkv_proj_methods "
            "'dw_bn', as every released CvT); the model's 'avg' (q) or 'linear' (q, k, v) "
            "projections have no tensors: pass allow_partial=True to drop them.")),
    variant_notes=variant_notes,
)


def convert_to_cvt(checkpoint: Mapping, prefix: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """CvT backbone state dict under official names from any supported checkpoint (idempotent).

    Args:
        checkpoint (Mapping): A raw checkpoint or a state dict (official, HF, ours, wrapped,
            or a full mmdet/mmseg checkpoint).
        prefix (str, optional): See :func:`cvt_dense.weights.unwrap_checkpoint`.

    Returns:
        dict: ``{official name: tensor}`` without the classifier-only tensors.
    """
    return convert_checkpoint(checkpoint, CVT_CHECKPOINTS, prefix).state_dict

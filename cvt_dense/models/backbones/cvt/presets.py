"""The one table of CvT architecture facts: the presets, every per-stage field with its name
in the official configs (leoxiaobin/CvT ``lib/models/cls_cvt.py``,
``experiments/imagenet/cvt/*.yaml``), and the reader of those YAML files."""
import os
from typing import Dict, Optional, Sequence, Union

from ..presets import resolve_preset

# Our per-stage arch field -> the official ``MODEL.SPEC`` field, one to one. Every field is
# a list with one entry per stage (the official ``NUM_STAGES`` is their length).
OFFICIAL_NAMES: Dict[str, str] = {
    'embed_dims': 'DIM_EMBED',
    'num_heads': 'NUM_HEADS',
    'depths': 'DEPTH',
    'patch_sizes': 'PATCH_SIZE',
    'patch_strides': 'PATCH_STRIDE',
    'patch_paddings': 'PATCH_PADDING',
    'mlp_ratios': 'MLP_RATIO',
    'qkv_biases': 'QKV_BIAS',
    'drop_rates': 'DROP_RATE',
    'attn_drop_rates': 'ATTN_DROP_RATE',
    'drop_path_rates': 'DROP_PATH_RATE',
    'cls_tokens': 'CLS_TOKEN',
    'pos_embeds': 'POS_EMBED',
    'qkv_proj_methods': 'QKV_PROJ_METHOD',
    'qkv_kernel_sizes': 'KERNEL_QKV',
    'q_strides': 'STRIDE_Q',
    'q_paddings': 'PADDING_Q',
    'kv_strides': 'STRIDE_KV',
    'kv_paddings': 'PADDING_KV',
}
REQUIRED_ARCH_KEYS = ('embed_dims', 'num_heads', 'depths')
# The values of the official experiment YAMLs (cvt-13-224x224.yaml etc.) that every preset
# shares; a custom arch dict may override them. With a number of stages other than three,
# a custom dict must give the fields whose entries differ between stages, except
# drop_path_rates (then: the last stage only, as here).
STAGE_DEFAULTS = dict(
    patch_sizes=[7, 3, 3], patch_strides=[4, 2, 2], patch_paddings=[2, 1, 1],
    mlp_ratios=[4., 4., 4.], qkv_biases=[True, True, True], drop_rates=[0., 0., 0.],
    attn_drop_rates=[0., 0., 0.], drop_path_rates=[0., 0., 0.1],
    cls_tokens=[False, False, True], pos_embeds=[False, False, False],
    qkv_proj_methods=['dw_bn', 'dw_bn', 'dw_bn'], qkv_kernel_sizes=[3, 3, 3],
    q_strides=[1, 1, 1], q_paddings=[1, 1, 1], kv_strides=[2, 2, 2], kv_paddings=[1, 1, 1])
ARCH_SETTINGS = {
    'cvt-13': dict(embed_dims=[64, 192, 384], num_heads=[1, 3, 6], depths=[1, 2, 10]),
    'cvt-21': dict(embed_dims=[64, 192, 384], num_heads=[1, 3, 6], depths=[1, 4, 16]),
    'cvt-w24': dict(embed_dims=[192, 768, 1024], num_heads=[3, 12, 16], depths=[2, 2, 20],
                    drop_path_rates=[0., 0., 0.3]),
}
QKV_PROJ_METHODS = ('dw_bn', 'avg', 'linear')
# MODEL.SPEC fields that are not per-stage lists: NUM_STAGES (checked against the lists)
# and INIT (the from-scratch initialisation; ours is the official 'trunc_norm').
OFFICIAL_SCALARS = ('NUM_STAGES', 'INIT')
# The released code builds its model without POS_EMBED (it reads the field nowhere).
OFFICIAL_OPTIONAL = ('POS_EMBED',)
YAML_SUFFIXES = ('.yaml', '.yml')


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Full per-stage settings for a preset name, an official experiment YAML or a dict.

    Args:
        arch (str | dict): ``'cvt-13'``, ``'cvt-21'``, ``'cvt-w24'``, the path of an
            official experiment YAML (see :func:`arch_from_official_yaml`), or a dict with
            ``embed_dims``, ``num_heads``, ``depths`` and optionally any other key of
            :data:`OFFICIAL_NAMES`.

    Returns:
        dict: Every key of :data:`OFFICIAL_NAMES`, one list entry per stage.
    """
    if isinstance(arch, str) and arch.lower().endswith(YAML_SUFFIXES):
        arch = arch_from_official_yaml(arch)
    settings = resolve_preset(arch, ARCH_SETTINGS, REQUIRED_ARCH_KEYS, STAGE_DEFAULTS, 'CvT')
    not_lists = sorted(key for key, value in settings.items()
                       if not isinstance(value, (list, tuple)))
    if not_lists:
        raise ValueError(f'CvT arch fields {not_lists} must be lists with one entry per stage')
    settings = {key: list(value) for key, value in settings.items()}
    given = set(arch) if isinstance(arch, dict) else set(settings)
    num_stages = len(settings['depths'])
    for key, default in STAGE_DEFAULTS.items():
        # A default that is the same in every stage fits any number of stages.
        if key not in given and len(set(default)) == 1:
            settings[key] = default[:1] * num_stages
    if 'drop_path_rates' not in given:  # the official recipe: the last stage only
        settings['drop_path_rates'] = [0.] * (num_stages - 1) + STAGE_DEFAULTS[
            'drop_path_rates'][-1:]
    lengths = {key: len(value) for key, value in settings.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f'All per-stage lists of the CvT arch must have the same length, '
                         f'got {lengths}')
    bad = [method for method in settings['qkv_proj_methods'] if method not in QKV_PROJ_METHODS]
    if bad:
        raise ValueError(f'CvT qkv_proj_methods {settings["qkv_proj_methods"]}: unknown '
                         f'{bad}; each must be one of {QKV_PROJ_METHODS}')
    return settings


def override_stages(settings: dict, drop_path_rate: Optional[float] = None,
                    kv_strides: Optional[Sequence[int]] = None, **every_stage) -> dict:
    """``settings`` with the backbone arguments that override per-stage fields applied.

    Args:
        settings (dict): From :func:`resolve_arch` (changed in place and returned).
        drop_path_rate (float, optional): The largest per-block drop-path rate: the arch's
            ``drop_path_rates`` are scaled so that their largest entry becomes this value
            (presets: ``[0, 0, 0.1]``, so 0.2 gives ``[0, 0, 0.2]``); 0 turns drop path off.
        kv_strides (Sequence[int], optional): One k/v stride per stage.
        **every_stage: Field name -> value set for every stage (``qkv_biases=False``);
            None leaves the field as the arch has it.
    """
    for key, value in every_stage.items():
        if value is not None:
            settings[key] = [value] * len(settings[key])
    if kv_strides is not None:
        if len(kv_strides) != len(settings['kv_strides']):
            raise ValueError(f'kv_strides={tuple(kv_strides)} needs one stride per stage '
                             f'({len(settings["kv_strides"])} stages)')
        settings['kv_strides'] = [int(stride) for stride in kv_strides]
    if drop_path_rate is not None:
        peak = max(settings['drop_path_rates'])
        if peak == 0 and drop_path_rate > 0:
            raise ValueError(f'drop_path_rate={drop_path_rate} scales the arch\'s '
                             f'drop_path_rates, which are all 0: set arch drop_path_rates '
                             f'(one peak rate per stage) instead')
        settings['drop_path_rates'] = [rate / peak * drop_path_rate if peak else 0.
                                       for rate in settings['drop_path_rates']]
    return settings


def arch_from_official_yaml(path: str) -> dict:
    """Our arch dict from an official CvT experiment YAML (its ``MODEL.SPEC``).

    Every per-stage field the official ``cls_cvt.py`` reads must be present (it would fail
    without it); ``POS_EMBED`` is optional. The training and data sections are ignored, and
    so is ``TRAIN.IMAGE_SIZE``: the reference grid of positional embeddings comes from the
    backbone's ``pretrain_img_size``.

    Args:
        path (str): E.g. ``experiments/imagenet/cvt/cvt-13-224x224.yaml``.

    Returns:
        dict: Keys of :data:`OFFICIAL_NAMES` with the file's values.
    """
    import yaml
    if not os.path.isfile(path):
        raise FileNotFoundError(f'CvT arch: no such official experiment YAML: {path}')
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    model = config.get('MODEL') if isinstance(config, dict) else None
    spec = model.get('SPEC') if isinstance(model, dict) else None
    if not isinstance(spec, dict):
        raise ValueError(f'{path}: no MODEL.SPEC section; not an official CvT experiment YAML')
    if model.get('NAME', 'cls_cvt') != 'cls_cvt':
        raise ValueError(f"{path}: MODEL.NAME is {model['NAME']!r}, not 'cls_cvt'")
    official = set(OFFICIAL_NAMES.values())
    unknown = sorted(set(spec) - official - set(OFFICIAL_SCALARS))
    missing = sorted(official - set(spec) - set(OFFICIAL_OPTIONAL))
    if unknown or missing:
        raise ValueError(f'{path}: MODEL.SPEC has unknown fields {unknown} and lacks '
                         f'{missing}; expected {sorted(official)} and optionally '
                         f'{list(OFFICIAL_SCALARS)}')
    if spec.get('INIT', 'trunc_norm') != 'trunc_norm':
        raise ValueError(f"{path}: INIT {spec['INIT']!r} is not supported; CvT initialises "
                         f"like the official 'trunc_norm' (weights loaded from a checkpoint "
                         f"do not depend on it)")
    not_lists = sorted(name for name in official & set(spec)
                       if not isinstance(spec[name], list))
    if not_lists:
        raise ValueError(f'{path}: MODEL.SPEC fields {not_lists} must be lists with one entry '
                         f'per stage')
    arch = {ours: spec[name] for ours, name in OFFICIAL_NAMES.items() if name in spec}
    if 'NUM_STAGES' in spec and spec['NUM_STAGES'] != len(arch['depths']):
        raise ValueError(f"{path}: NUM_STAGES is {spec['NUM_STAGES']} but DEPTH has "
                         f"{len(arch['depths'])} entries")
    return arch

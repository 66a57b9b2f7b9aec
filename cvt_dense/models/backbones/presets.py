"""Resolving a backbone's ``arch`` argument: a preset name or a custom dict."""
import copy
from typing import Mapping, Sequence, Union


def resolve_preset(arch: Union[str, dict], presets: Mapping[str, dict],
                   required: Sequence[str], defaults: Mapping[str, object],
                   backbone: str) -> dict:
    """The full settings of a preset name or a custom dict, defaults filled in.

    Args:
        arch (str | dict): A key of ``presets`` (case-insensitive) or a dict with the
            ``required`` keys and optionally keys of ``defaults``.
        presets (Mapping): Preset name -> settings.
        required (Sequence[str]): Keys a custom dict must have.
        defaults (Mapping): Settings every preset shares; a custom dict may override them.
        backbone (str): The backbone's name, for messages.

    Returns:
        dict: A deep copy of the settings.
    """
    if isinstance(arch, str):
        if arch.lower() not in presets:
            raise ValueError(f'Unknown {backbone} arch {arch!r}; valid presets are '
                             f'{sorted(presets)} or a dict with keys {tuple(required)}')
        arch = presets[arch.lower()]
    elif not isinstance(arch, dict):
        raise TypeError(f'{backbone} arch must be a preset name or a dict, got '
                        f'{type(arch).__name__}')
    missing = [k for k in required if k not in arch]
    unknown = set(arch) - set(required) - set(defaults)
    if missing or unknown:
        raise ValueError(f'Custom {backbone} arch dict: missing keys {missing}, unknown keys '
                         f'{sorted(unknown)}; expected {tuple(required)} and optionally '
                         f'{sorted(defaults)}')
    return {**copy.deepcopy(dict(defaults)), **copy.deepcopy(arch)}

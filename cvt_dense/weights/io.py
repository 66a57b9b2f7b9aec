"""Safe reading of checkpoint files: torch ``.pth``/``.bin``, ``.safetensors``, HF model dirs.

Torch files are read with ``torch.load(weights_only=True)``, which only rebuilds tensors and
plain containers. A file that needs arbitrary unpickling (e.g. it stores an
``argparse.Namespace`` next to the weights) is refused unless the caller opts in with
``allow_pickle=True``, because unpickling can execute code from the file.
"""
import json
import pickle
import re
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from .checkpoint_safety import mmengine_checkpoints_allowed
from .download import PathLike, fetch, is_remote, verify_sha256
from .errors import CheckpointError, PickleNotAllowedError

# Weight files of a Hugging Face model directory, in order of preference.
HF_WEIGHT_FILES = ('model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin',
                   'pytorch_model.bin.index.json')

_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = 0x80  # first byte of a pickle stream with protocol >= 2 (legacy torch.save)
_PICKLE_OPT_IN = ('allow_pickle=True in init_cfg (or --allow-pickle for '
                  'tools/convert_weights.py)')


def read_checkpoint(source: PathLike, map_location: Any = 'cpu', allow_pickle: bool = False,
                    sha256: Optional[str] = None,
                    cache_dir: Optional[PathLike] = None) -> Dict[str, Any]:
    """Read a checkpoint into a dict without converting its keys.

    Args:
        source (str | PathLike): A ``.pth``/``.bin`` torch file, a ``.safetensors`` file, a
            Hugging Face model directory (``model.safetensors`` is preferred over
            ``pytorch_model.bin``; sharded ``*.index.json`` checkpoints work too), an
            ``http(s)://``/``file://`` URL or an ``hf://OWNER/REPO[/FILE]`` hub id,
            downloaded once into a cache (see :mod:`cvt_dense.weights.download`).
        map_location: Where to put the tensors, as for ``torch.load``. Defaults to 'cpu'.
        allow_pickle (bool): Fall back to full unpickling (``weights_only=False``) for files
            that store Python objects besides tensors. Only for trusted files.
        sha256 (str, optional): Expected sha256 of the file (or a prefix of at least 8 hex
            digits); checked for downloads and local files alike.
        cache_dir (PathLike, optional): Download cache (default: torch's hub dir).

    Returns:
        dict: The raw content, possibly wrapped (``{'state_dict': ...}``).

    Raises:
        CheckpointError: The path is missing, empty, truncated, not a checkpoint, or a
            directory without weights, a download failed, or the sha256 differs; the message
            names the path or URL and the problem.
        PickleNotAllowedError: The file needs arbitrary unpickling and ``allow_pickle`` is
            False.
    """
    if is_remote(source):
        path = fetch(source, sha256=sha256, cache_dir=cache_dir)
    else:
        path = Path(source).expanduser()
        if sha256 is not None:  # before anything is unpickled from the file
            verify_sha256(path, sha256)
    if path.is_dir():
        return _read_hf_dir(path, map_location, allow_pickle)
    content = _read_file(path, map_location, allow_pickle)
    if not isinstance(content, dict):
        raise CheckpointError(f'{path}: expected a dict of tensors (a state dict), got a '
                              f'{type(content).__module__}.{type(content).__name__}; save '
                              f'model.state_dict() rather than the model object')
    return content


def _read_hf_dir(path: Path, map_location: Any, allow_pickle: bool) -> Dict[str, Any]:
    for name in HF_WEIGHT_FILES:
        candidate = path / name
        if not candidate.is_file():
            continue
        if not name.endswith('.index.json'):
            return _read_file(candidate, map_location, allow_pickle)
        try:
            weight_map = json.loads(candidate.read_text())['weight_map']
        except (ValueError, KeyError) as e:
            raise CheckpointError(f'{candidate}: not a valid sharded-checkpoint index '
                                  f'({type(e).__name__}: {e})') from e
        merged = {}
        for shard in sorted(set(weight_map.values())):
            merged.update(_read_file(path / shard, map_location, allow_pickle))
        return merged
    present = sorted(p.name for p in path.iterdir())[:10]
    raise CheckpointError(f'{path}: directory holds no PyTorch weights; looked for '
                          f'{", ".join(HF_WEIGHT_FILES)} and found {present or "nothing"}')


def _sniff(path: Path) -> str:
    """'safetensors', 'torch' or 'unknown' from the first bytes of the file."""
    with open(path, 'rb') as f:
        head = f.read(9)
    if head.startswith(_ZIP_MAGIC) or (head and head[0] == _PICKLE_PROTO):
        return 'torch'
    # safetensors: little-endian u64 header length, then the JSON header.
    if len(head) == 9 and head[8:9] == b'{':
        return 'safetensors'
    return 'unknown'


def _read_file(path: Path, map_location: Any, allow_pickle: bool) -> Any:
    if not path.exists():
        raise CheckpointError(f'{path}: no such file')
    if not path.is_file():
        raise CheckpointError(f'{path}: not a regular file')
    if path.stat().st_size == 0:
        raise CheckpointError(f'{path}: the file is empty')
    kind = _sniff(path)
    if kind == 'safetensors':
        return _read_safetensors(path, map_location)
    if kind == 'unknown':
        raise CheckpointError(
            f'{path}: not a checkpoint (the first bytes match neither a torch.save zip or '
            f'pickle file nor a safetensors file)')
    return _read_torch(path, map_location, allow_pickle)


def _read_safetensors(path: Path, map_location: Any) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        tensors = load_file(str(path), device='cpu')
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f'{path}: unreadable safetensors file, probably truncated or '
                              f'corrupt ({e})') from e
    if isinstance(map_location, (str, torch.device)) and torch.device(map_location).type != 'cpu':
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    return tensors


def _read_torch(path: Path, map_location: Any, allow_pickle: bool) -> Any:
    try:
        with mmengine_checkpoints_allowed():  # full mmdet/mmseg training checkpoints
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if not allow_pickle:
            raise PickleNotAllowedError(_pickle_refusal(path, str(e))) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise _corrupt(path, e) from e
    # Opted in: the caller trusts the file.
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().warning(
        f'{path}: loading with full unpickling (allow_pickle=True); only do this for files '
        f'from a trusted source')
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, AttributeError,
            ModuleNotFoundError) as e:
        raise _corrupt(path, e) from e


def _pickle_refusal(path: Path, message: str) -> str:
    found = re.search(r'GLOBAL ([\w.]+)', message)
    if found:
        what = f'the Python object {found.group(1)}'
    else:
        reason = re.search(r'WeightsUnpickler error:\s*(.+)', message)
        what = ('data that only full unpickling can read'
                + (f' ({reason.group(1).strip()})' if reason else ''))
    return (f'{path}: refusing to unpickle {what}. torch.load(weights_only=True) can only '
            f'read tensors and plain containers, and unpickling arbitrary objects can run '
            f'code from the file. If you trust the file, opt in with {_PICKLE_OPT_IN}, or '
            f're-save it without the objects, e.g. '
            f'torch.save(ckpt["state_dict"], "clean.pth").')


def _corrupt(path: Path, e: BaseException) -> CheckpointError:
    detail = str(e).split('. ')[0] or type(e).__name__
    return CheckpointError(f'{path}: unreadable torch checkpoint: truncated, corrupt or not '
                           f'written by torch.save ({type(e).__name__}: {detail})')

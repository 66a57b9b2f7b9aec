"""Remote checkpoints: URLs and Hugging Face hub ids, fetched once into a local cache.

* ``http(s)://`` and ``file://`` URLs are cached under ``<torch hub dir>/checkpoints/cvt_dense/``
  in a folder named after a hash of the *whole* URL, so two URLs with the same base name
  (every Hugging Face ``model.safetensors``) are two cached files. The download goes to a
  temporary name in that folder and is renamed only once complete (every byte the server
  announced, and the sha256 when one is given), so an interrupted download never leaves a
  file that a later run takes for complete.
* ``hf://OWNER/REPO[/FILE]`` and timm's ``hf-hub:OWNER/REPO[/FILE]`` go through
  ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE`` and token handling). Without ``FILE``
  the repository's ``model.safetensors`` is used, else its ``pytorch_model.bin``. A bare
  ``OWNER/REPO`` is read as a local path, never as a hub id.
"""
import hashlib
import os
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import IO, Optional, Union

from .errors import CheckpointError

PathLike = Union[str, os.PathLike]

URL_SCHEMES = ('http://', 'https://', 'file://')
HUB_PREFIXES = ('hf://', 'hf-hub:')
HUB_DEFAULT_FILES = ('model.safetensors', 'pytorch_model.bin')
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60  # per blocking socket operation, not for the whole file
HASH_PREFIX_MIN = 8
PARTIAL_SUFFIX = '.partial'


def is_url(source: PathLike) -> bool:
    return isinstance(source, str) and source.startswith(URL_SCHEMES)


def is_hub_id(source: PathLike) -> bool:
    return isinstance(source, str) and source.startswith(HUB_PREFIXES)


def is_remote(source: PathLike) -> bool:
    return is_url(source) or is_hub_id(source)


def cached_path(url: str, cache_dir: Optional[PathLike] = None) -> Path:
    """Where :func:`fetch` keeps ``url``: ``<cache_dir>/<hash of the URL>/<base name>``.

    Args:
        url (str): The whole URL (query included).
        cache_dir (PathLike, optional): Defaults to
            ``<torch.hub.get_dir()>/checkpoints/cvt_dense`` (``$TORCH_HOME/hub/...``).
    """
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise CheckpointError(f'{url}: the URL does not end in a file name')
    if cache_dir is None:
        import torch
        cache_dir = Path(torch.hub.get_dir()) / 'checkpoints' / 'cvt_dense'
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / digest / name


def fetch(source: str, sha256: Optional[str] = None, cache_dir: Optional[PathLike] = None,
          progress: bool = True) -> Path:
    """The local file of a URL or hub id, downloaded unless already cached.

    In a distributed run rank 0 downloads first and the other ranks wait for it (one
    download per shared cache, as mmengine does for URLs).

    Args:
        source (str): ``http(s)://`` / ``file://`` URL, ``hf://OWNER/REPO[/FILE]`` or
            ``hf-hub:OWNER/REPO[/FILE]``.
        sha256 (str, optional): Expected sha256 of the file (the full hex digest, or a
            prefix of at least 8 hex digits as in mmdet's file names).
        cache_dir (PathLike, optional): URLs: see :func:`cached_path`; hub ids:
            ``huggingface_hub``'s ``cache_dir`` (default: its own cache).
        progress (bool): Show download progress on stderr. Defaults to True.

    Returns:
        Path: The cached file.

    Raises:
        CheckpointError: The download failed or was cut short, or the file's sha256 is not
            the expected one; the message names the URL.
    """
    expected = _normalise_sha256(sha256)
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    if rank > 0:
        barrier()  # until rank 0 has the file (or has failed)
        return _fetch_once(source, expected, cache_dir, progress)
    try:
        return _fetch_once(source, expected, cache_dir, progress)
    finally:
        if world_size > 1:
            barrier()  # reached on failure too: the other ranks must not wait forever


def _fetch_once(source: str, expected: Optional[str], cache_dir: Optional[PathLike],
                progress: bool) -> Path:
    if is_hub_id(source):
        path = _hub_download(source, cache_dir)
    else:
        path = cached_path(source, cache_dir)
        if not path.is_file():
            _download(source, path, expected, progress)
            return path  # checked before it was renamed into place
    if expected is not None:
        verify_sha256(path, expected, source=source,
                      hint=f'the cached copy {path}; delete it to download again, or fix the '
                      f'sha256')
    return path


def verify_sha256(path: Path, sha256: str, source: Optional[str] = None,
                  hint: str = '') -> None:
    """Raise a CheckpointError naming ``source`` (default: ``path``) unless the file's
    sha256 starts with ``sha256``."""
    expected = _normalise_sha256(sha256)
    if not path.is_file():
        raise CheckpointError(f'{path}: sha256 given, but this is not a file')
    actual = file_sha256(path)
    if not actual.startswith(expected):
        raise CheckpointError(f'{source or path}: sha256 mismatch: expected {expected}, got '
                              f'{actual}' + (f' ({hint})' if hint else ''))


def file_sha256(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _normalise_sha256(sha256: Optional[str]) -> Optional[str]:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if len(value) < HASH_PREFIX_MIN or len(value) > 64 \
            or any(c not in '0123456789abcdef' for c in value):
        raise ValueError(f'sha256 must be a hex digest (or a prefix of at least '
                         f'{HASH_PREFIX_MIN} hex digits), got {sha256!r}')
    return value


def _download(url: str, dst: Path, expected: Optional[str], progress: bool) -> None:
    """Download ``url`` to ``dst`` through a temporary file renamed only when complete."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(f'{dst.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}')
    try:
        digest = _stream_to_file(url, partial, dst.name, progress)
        if expected is not None and not digest.startswith(expected):
            raise CheckpointError(f'{url}: sha256 mismatch: expected {expected}, got {digest}; '
                                  f'the download was discarded')
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)


def _stream_to_file(url: str, partial: Path, name: str, progress: bool) -> str:
    """Copy the response body to ``partial``; returns its sha256. Raises CheckpointError."""
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, \
                open(partial, 'wb') as out:
            length = response.headers.get('Content-Length')
            total = int(length) if length is not None else None
            meter = _Progress(url, total, name) if progress else None
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b''):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if meter:
                    meter.update(received)
            if meter:
                meter.close(received)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - every network/IO failure gets the same report
        raise CheckpointError(f'{url}: download failed after {received} bytes '
                              f'({type(e).__name__}: {e}); nothing was cached. Retry, or '
                              f'download it by hand and pass the local path') from e
    # http.client ends a body cut short by the server like a complete one: compare with
    # the announced length.
    if total is not None and received != total:
        raise CheckpointError(f'{url}: download cut short: received {received} of {total} '
                              f'bytes; nothing was cached. Retry, or download it by hand and '
                              f'pass the local path')
    return digest.hexdigest()


class _Progress:
    """Download progress on stderr: one updating line on a terminal, else a line every
    10 seconds (readable in slurm and CI logs)."""

    def __init__(self, url: str, total: Optional[int], name: str, stream: IO = None):
        self.stream = stream or sys.stderr
        self.total = total
        self.name = name
        self.on_terminal = self.stream.isatty()
        self.interval_s = 0.5 if self.on_terminal else 10.
        self.last_shown = 0.
        size = f' ({total / 1e6:.1f} MB)' if total is not None else ''
        print(f'Downloading {url}{size}', file=self.stream, flush=True)

    def _line(self, received: int) -> str:
        if self.total:
            return (f'{self.name}: {received / 1e6:.1f} / {self.total / 1e6:.1f} MB '
                    f'({100 * received // self.total}%)')
        return f'{self.name}: {received / 1e6:.1f} MB'

    def update(self, received: int) -> None:
        now = time.monotonic()
        if now - self.last_shown < self.interval_s:
            return
        self.last_shown = now
        end = '' if self.on_terminal else '\n'
        print(('\r' if self.on_terminal else '') + self._line(received), end=end,
              file=self.stream, flush=True)

    def close(self, received: int) -> None:
        print(('\r' if self.on_terminal else '') + self._line(received) + ' done',
              file=self.stream, flush=True)


def _hub_download(source: str, cache_dir: Optional[PathLike]) -> Path:
    prefix = next(p for p in HUB_PREFIXES if source.startswith(p))
    parts = source[len(prefix):].strip('/').split('/')
    if len(parts) < 2 or not all(parts):
        raise CheckpointError(f'{source}: a hub id is {prefix}OWNER/REPO or '
                              f'{prefix}OWNER/REPO/FILE')
    repo_id, filename = '/'.join(parts[:2]), '/'.join(parts[2:]) or None
    try:
        import huggingface_hub
    except ImportError as e:
        raise CheckpointError(f'{source}: hub ids need huggingface_hub (pip install '
                              f'huggingface_hub), or pass the file\'s https:// URL') from e
    candidates = (filename, ) if filename else HUB_DEFAULT_FILES
    failures = []
    for name in candidates:
        try:
            return Path(huggingface_hub.hf_hub_download(repo_id, name, cache_dir=cache_dir))
        except Exception as e:  # noqa: BLE001 - missing file/repo and offline misses reported
            failures.append(f'{name}: {type(e).__name__}: {e}')
    raise CheckpointError(f'{source}: could not get {" or ".join(candidates)} from the hub '
                          f'repository {repo_id} ({"; ".join(failures)}). Offline '
                          f'(HF_HUB_OFFLINE=1) only files already in the hub cache are found.')

"""Checkpoints by URL and hub id: the cache, partial downloads, progress, sha256.

Every URL points at a loopback HTTP server that the test starts (127.0.0.1, bounded); a
guard fails any test that opens a connection anywhere else.
"""
import hashlib
import http.server
import socket
import threading

import pytest
import torch

from cvt_dense.weights import CheckpointError, read_checkpoint
from cvt_dense.weights.download import cached_path, fetch

LOOPBACK = ('127.0.0.1', 'localhost')


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Refuse connections to anything but this machine (http.client connects through
    socket.create_connection)."""
    real_connect = socket.create_connection

    def connect(address, *args, **kwargs):
        if address[0] not in LOOPBACK:
            raise AssertionError(f'test tried to reach the network: {address}')
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, 'create_connection', connect)


class Server:
    """Files served from memory on 127.0.0.1; ``cut[path] = n`` announces the whole
    file but sends only ``n`` bytes and then closes the connection."""

    def __init__(self):
        self.files, self.cut, self.hits = {}, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10  # a stuck client cannot hold the server thread forever

            def do_GET(self):  # noqa: N802 - BaseHTTPRequestHandler's name
                server.hits.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                sent = server.cut.get(self.path, len(body))
                self.wfile.write(body[:sent])
                self.wfile.flush()
                if sent < len(body):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs=dict(poll_interval=0.05), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.httpd.server_address[1]}{path}'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server():
    served = Server()
    yield served
    served.close()


def checkpoint_bytes(tmp_path, value: float, size: int = 4096) -> bytes:
    """A torch.save file of one tensor filled with ``value`` (large enough to be streamed
    in several reads)."""
    path = tmp_path / f'w{value}.pth'
    torch.save({'weight': torch.full((size, ), value)}, path)
    return path.read_bytes()


def files_under(folder):
    return sorted(p for p in folder.rglob('*') if p.is_file())


def test_same_base_name_gives_two_cached_files(server, tmp_path):
    server.files['/microsoft/cvt-13/model.pth'] = checkpoint_bytes(tmp_path, 13.)
    server.files['/microsoft/cvt-21/model.pth'] = checkpoint_bytes(tmp_path, 21.)
    cache = tmp_path / 'cache'
    url13 = server.url('/microsoft/cvt-13/model.pth')
    url21 = server.url('/microsoft/cvt-21/model.pth')
    assert read_checkpoint(url13, cache_dir=cache)['weight'][0] == 13.
    assert read_checkpoint(url21, cache_dir=cache)['weight'][0] == 21.
    cached = files_under(cache)
    assert len(cached) == 2 and {p.name for p in cached} == {'model.pth'}
    assert cached_path(url13, cache) != cached_path(url21, cache)
    # The second read of each comes from the cache: no new request.
    assert read_checkpoint(url13, cache_dir=cache)['weight'][0] == 13.
    assert read_checkpoint(url21, cache_dir=cache)['weight'][0] == 21.
    assert len(server.hits) == 2


def test_default_cache_is_under_torch_home(server, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    server.files['/w.pth'] = checkpoint_bytes(tmp_path, 1.)
    path = fetch(server.url('/w.pth'), progress=False)
    assert path.is_relative_to(tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'cvt_dense')
    assert path.read_bytes() == server.files['/w.pth']


def test_connection_cut_mid_file_leaves_nothing_cached(server, tmp_path):
    body = checkpoint_bytes(tmp_path, 3., size=1 << 18)
    server.files['/cut.pth'] = body
    server.cut['/cut.pth'] = len(body) // 3
    cache = tmp_path / 'cache'
    url = server.url('/cut.pth')
    with pytest.raises(CheckpointError, match=rf'{url}: download cut short: received '
                       rf'{len(body) // 3} of {len(body)} bytes; nothing was cached'):
        read_checkpoint(url, cache_dir=cache)
    assert files_under(cache) == []  # neither the file nor a temporary part of it
    # The next run downloads again and gets the whole file.
    del server.cut['/cut.pth']
    assert read_checkpoint(url, cache_dir=cache)['weight'][-1] == 3.
    assert len(server.hits) == 2


def test_progress_is_printed(server, tmp_path, capsys):
    body = checkpoint_bytes(tmp_path, 2.)
    server.files['/progress.pth'] = body
    url = server.url('/progress.pth')
    fetch(url, cache_dir=tmp_path / 'cache')
    err = capsys.readouterr().err
    assert f'Downloading {url}' in err
    assert f'progress.pth: {len(body) / 1e6:.1f} / {len(body) / 1e6:.1f} MB (100%) done' in err
    fetch(url, cache_dir=tmp_path / 'cache')  # cached: nothing to show
    assert capsys.readouterr().err == ''


def test_sha256_checked(server, tmp_path):
    body = checkpoint_bytes(tmp_path, 5.)
    server.files['/hashed.pth'] = body
    url, cache = server.url('/hashed.pth'), tmp_path / 'cache'
    actual = hashlib.sha256(body).hexdigest()
    wrong = '0' * 64
    with pytest.raises(CheckpointError,
                       match=rf'{url}: sha256 mismatch: expected {wrong}, got {actual}; the '
                       rf'download was discarded'):
        read_checkpoint(url, sha256=wrong, cache_dir=cache)
    assert files_under(cache) == []
    assert read_checkpoint(url, sha256=actual, cache_dir=cache)['weight'][0] == 5.
    assert read_checkpoint(url, sha256=actual[:8].upper(), cache_dir=cache)['weight'][0] == 5.
    # A cached file is checked too, and kept (the hash may be the wrong one).
    with pytest.raises(CheckpointError, match=r'sha256 mismatch.*the cached copy .*hashed\.pth'):
        read_checkpoint(url, sha256=wrong, cache_dir=cache)
    assert len(files_under(cache)) == 1
    with pytest.raises(ValueError, match=r"sha256 must be a hex digest .* got 'abc'"):
        read_checkpoint(url, sha256='abc', cache_dir=cache)


def test_sha256_of_a_local_file(tmp_path):
    path = tmp_path / 'local.pth'
    path.write_bytes(checkpoint_bytes(tmp_path, 7.))
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_checkpoint(path, sha256=actual)['weight'][0] == 7.
    with pytest.raises(CheckpointError, match=rf'local\.pth: sha256 mismatch: expected '
                       rf'deadbeef, got {actual}'):
        read_checkpoint(path, sha256='deadbeef')


def test_sha256_from_init_cfg_reaches_the_download(server, tmp_path, monkeypatch):
    """``init_cfg=dict(type='Pretrained', checkpoint=URL, sha256=...)`` as in a config."""
    from cvt_dense.models import CvT
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    arch = dict(embed_dims=[8, 16, 16], num_heads=[1, 1, 1], depths=[1, 1, 1])
    source = CvT(arch=arch)
    saved = tmp_path / 'tiny.pth'
    torch.save(source.state_dict(), saved)
    server.files['/tiny.pth'] = saved.read_bytes()
    digest = hashlib.sha256(saved.read_bytes()).hexdigest()
    url = server.url('/tiny.pth')

    bad = CvT(arch=arch, init_cfg=dict(type='Pretrained', checkpoint=url, sha256='1' * 64))
    with pytest.raises(CheckpointError, match=rf'{url}: sha256 mismatch: expected 1{{64}}'):
        bad.init_weights()
    good = CvT(arch=arch, init_cfg=dict(type='Pretrained', checkpoint=url, sha256=digest))
    good.init_weights()
    key = 'stage2.blocks.0.attn.proj_q.weight'
    torch.testing.assert_close(good.state_dict()[key], source.state_dict()[key], rtol=0, atol=0)


def test_http_error_names_the_url(server, tmp_path):
    url = server.url('/missing/model.safetensors')
    with pytest.raises(CheckpointError, match=rf'{url}: download failed after 0 bytes '
                       r'\(HTTPError: HTTP Error 404'):
        read_checkpoint(url, cache_dir=tmp_path / 'cache')
    assert files_under(tmp_path / 'cache') == []


def test_file_url(tmp_path):
    src = tmp_path / 'served' / 'cvt_tiny.pth'
    src.parent.mkdir()
    src.write_bytes(checkpoint_bytes(tmp_path, 4.))
    cache = tmp_path / 'cache'
    assert read_checkpoint(src.as_uri(), cache_dir=cache)['weight'][0] == 4.
    src.unlink()  # the second read comes from the cache
    assert read_checkpoint(src.as_uri(), cache_dir=cache)['weight'][0] == 4.
    with pytest.raises(CheckpointError, match=r'missing\.pth: download failed'):
        read_checkpoint((tmp_path / 'missing.pth').as_uri(), cache_dir=cache)


def hub_cache_entry(cache, repo_id: str, filename: str, body: bytes) -> None:
    """A file in huggingface_hub's cache layout, as an earlier download leaves it:
    ``models--OWNER--REPO/{refs/main, snapshots/<commit>/FILE}``."""
    commit = 'a' * 40
    repo = cache / ('models--' + repo_id.replace('/', '--'))
    (repo / 'refs').mkdir(parents=True)
    (repo / 'refs' / 'main').write_text(commit)
    snapshot = repo / 'snapshots' / commit
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(body)


@pytest.fixture
def hub_offline(monkeypatch):
    hub = pytest.importorskip('huggingface_hub')
    monkeypatch.setattr(hub.constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    return hub


@pytest.mark.parametrize('source,filename', [
    ('hf://timm/convit_tiny.fb_in1k', 'model.safetensors'),
    ('hf-hub:timm/convit_tiny.fb_in1k', 'model.safetensors'),
    ('hf://microsoft/cvt-21', 'pytorch_model.bin'),  # no safetensors in the repository
    ('hf://microsoft/cvt-13/pytorch_model.bin', 'pytorch_model.bin'),
])
def test_hub_ids_read_huggingface_hubs_offline_cache(hub_offline, tmp_path, source, filename):
    from safetensors.torch import save_file
    cache = tmp_path / 'hf_cache'
    repo_id = '/'.join(source.split(':', 1)[1].lstrip('/').split('/')[:2])
    tensors = {'weight': torch.arange(3.)}
    if filename.endswith('.safetensors'):
        save_file(tensors, str(tmp_path / 'w'))
    else:
        torch.save(tensors, tmp_path / 'w')
    hub_cache_entry(cache, repo_id, filename, (tmp_path / 'w').read_bytes())
    loaded = read_checkpoint(source, cache_dir=cache)
    torch.testing.assert_close(loaded['weight'], tensors['weight'])


def test_hub_id_not_in_the_offline_cache(hub_offline, tmp_path):
    with pytest.raises(CheckpointError, match=r'hf://timm/none: could not get '
                       r'model\.safetensors or pytorch_model\.bin .*HF_HUB_OFFLINE'):
        read_checkpoint('hf://timm/none', cache_dir=tmp_path / 'hf_cache')
    with pytest.raises(CheckpointError, match=r'a hub id is hf://OWNER/REPO'):
        read_checkpoint('hf://timm', cache_dir=tmp_path / 'hf_cache')

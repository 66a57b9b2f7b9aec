"""Reading checkpoint files safely, and the errors for bad ones."""
import argparse
import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from cvt_dense.weights import CheckpointError, PickleNotAllowedError, read_checkpoint


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    return {'stage0.patch_embed.proj.weight': torch.randn(4, 3, 7, 7, generator=g),
            'stage0.patch_embed.proj.bias': torch.randn(4, generator=g)}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.parametrize('name', ['w.pth', 'w.bin', 'w.safetensors', 'safetensors_as.bin'])
def test_reads_torch_and_safetensors_files(tmp_path, tensors, name):
    path = tmp_path / name
    if 'safetensors' in name:  # format found from the content, not the extension
        save_file(tensors, str(path))
    else:
        torch.save(tensors, path)
    assert_same(read_checkpoint(path), tensors)
    assert_same(read_checkpoint(str(path)), tensors)


def test_reads_legacy_torch_serialization(tmp_path, tensors):
    path = tmp_path / 'legacy.pth'
    torch.save(tensors, path, _use_new_zipfile_serialization=False)
    assert_same(read_checkpoint(path), tensors)


def test_hf_directory_prefers_safetensors(tmp_path, tensors):
    save_file(tensors, str(tmp_path / 'model.safetensors'))
    torch.save({k: v + 1 for k, v in tensors.items()}, tmp_path / 'pytorch_model.bin')
    assert_same(read_checkpoint(tmp_path), tensors)
    (tmp_path / 'model.safetensors').unlink()
    assert_same(read_checkpoint(tmp_path), {k: v + 1 for k, v in tensors.items()})


def test_hf_directory_with_shards(tmp_path, tensors):
    (first, a), (second, b) = tensors.items()
    save_file({first: a}, str(tmp_path / 'model-00001-of-00002.safetensors'))
    save_file({second: b}, str(tmp_path / 'model-00002-of-00002.safetensors'))
    index = {'weight_map': {first: 'model-00001-of-00002.safetensors',
                            second: 'model-00002-of-00002.safetensors'}}
    (tmp_path / 'model.safetensors.index.json').write_text(json.dumps(index))
    assert_same(read_checkpoint(tmp_path), tensors)


def test_directory_without_weights(tmp_path):
    (tmp_path / 'config.json').write_text('{}')
    with pytest.raises(CheckpointError, match=r'no PyTorch weights.*config\.json'):
        read_checkpoint(tmp_path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / 'nope' / 'CvT-13-224x224-IN-1k.pth'
    with pytest.raises(CheckpointError, match=r'CvT-13-224x224-IN-1k\.pth: no such file'):
        read_checkpoint(path)


@pytest.mark.parametrize('fmt', ['zip', 'legacy', 'safetensors'])
def test_truncated_file_names_the_path(tmp_path, tensors, fmt):
    full = tmp_path / 'full'
    if fmt == 'safetensors':
        save_file(tensors, str(full))
    else:
        torch.save(tensors, full, _use_new_zipfile_serialization=fmt == 'zip')
    data = full.read_bytes()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(CheckpointError, match=r'cut\.pth: .*(truncated|corrupt)') as info:
        read_checkpoint(cut)
    assert not isinstance(info.value, PickleNotAllowedError)


def test_empty_and_non_checkpoint_files(tmp_path):
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'empty\.pth: the file is empty'):
        read_checkpoint(empty)
    text = tmp_path / 'notes.pth'
    text.write_text('these are not weights\n')
    with pytest.raises(CheckpointError, match=r'notes\.pth: not a checkpoint'):
        read_checkpoint(text)


def test_non_dict_content_is_rejected(tmp_path):
    path = tmp_path / 'tensor.pth'
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match=r'tensor\.pth: expected a dict.*Tensor'):
        read_checkpoint(path)


def test_pickled_object_is_refused_then_accepted_with_opt_in(tmp_path, tensors):
    path = tmp_path / 'with_args.pth'
    torch.save({'state_dict': tensors, 'args': argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(PickleNotAllowedError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert 'with_args.pth' in message and 'argparse.Namespace' in message
    assert 'allow_pickle=True' in message and '--allow-pickle' in message
    loaded = read_checkpoint(path, allow_pickle=True)
    assert loaded['args'].lr == 0.1
    assert_same(loaded['state_dict'], tensors)


def test_plain_pickle_is_refused_and_not_taken_for_a_checkpoint(tmp_path):
    path = tmp_path / 'plain.pkl'
    with open(path, 'wb') as f:
        pickle.dump({'a': [1, 2]}, f, protocol=4)
    with pytest.raises(PickleNotAllowedError, match='allow_pickle=True'):
        read_checkpoint(path)
    # Even unpickled it is no torch.save file (torch.load checks its magic number).
    with pytest.raises(CheckpointError, match=r'plain\.pkl: .*not written by torch\.save'):
        read_checkpoint(path, allow_pickle=True)

"""tools/convert_weights.py: run as a user would, and in-process for the error paths."""
import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cvt_dense.models.backbones.cvt.pretrained import convert_to_cvt
from cvt_dense.weights import load_pretrained
from hf_oracle import assert_stage_outputs_close, cvt_for_hf, hf_model, hf_stage_outputs

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'convert_weights.py'


def _tool():
    spec = importlib.util.spec_from_file_location('convert_weights_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return _tool()


@pytest.fixture
def hf_bin(tmp_path):
    source = hf_model(with_classifier=True, seed=11)
    path = tmp_path / 'pytorch_model.bin'
    torch.save(source.state_dict(), path)
    return source, path


def test_cli_converts_prints_and_refuses_to_overwrite(tmp_path, hf_bin, image):
    source, src = hf_bin
    dst = tmp_path / 'out' / 'cvt_tiny_backbone.pth'
    cmd = [sys.executable, str(TOOL), str(src), str(dst), '--prefix-backbone']
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert '(CvT, hf format)' in out
    n = len(cvt_for_hf().state_dict())
    assert f'mapped: {n} renamed' in out
    assert 'cvt.encoder.stages.0.embedding.convolution_embeddings.projection.weight -> ' \
        'stage0.patch_embed.proj.weight' in out
    assert 'dropped (classifier only): 4' in out
    for key in ('classifier.weight', 'classifier.bias', 'layernorm.weight', 'layernorm.bias'):
        assert f'  {key}' in out
    written = torch.load(dst)
    assert len(written) == n and all(k.startswith('backbone.') for k in written)

    # The written file is a valid init_cfg checkpoint with the source's outputs.
    model = cvt_for_hf(init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    with torch.no_grad():
        assert_stage_outputs_close(model.eval()(image), hf_stage_outputs(source.cvt, image))

    stamp = dst.stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 1
    assert 'exists' in again.stderr and '--force' in again.stderr
    assert dst.stat().st_mtime_ns == stamp


def test_force_overwrites_and_safetensors_output(tmp_path, hf_bin, tool, capsys):
    source, src = hf_bin
    dst = tmp_path / 'cvt.safetensors'
    dst.write_text('old')
    assert tool.main([str(src), str(dst), '--force', '-v']) == 0
    written = load_file(str(dst))
    expected = convert_to_cvt(source.state_dict())
    assert written.keys() == expected.keys()
    assert all(torch.equal(written[k], expected[k]) for k in expected)
    out = capsys.readouterr().out
    assert out.count(' -> stage') == len(expected)  # -v lists every renaming
    assert not any(p.name.endswith('.tmp') for p in tmp_path.iterdir())


def test_converting_a_converted_file_changes_nothing(tmp_path, hf_bin, tool, capsys):
    _, src = hf_bin
    first, second = tmp_path / 'a.pth', tmp_path / 'b.pth'
    assert tool.main([str(src), str(first)]) == 0
    assert tool.main([str(first), str(second)]) == 0
    assert 'mapped: 0 renamed' in capsys.readouterr().out
    a, b = torch.load(first), torch.load(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_check_arch_reports_a_mismatch(tmp_path, hf_bin, tool, capsys):
    _, src = hf_bin
    dst = tmp_path / 'x.pth'
    assert tool.main([str(src), str(dst), '--check-arch', 'cvt-13']) == 1
    err = capsys.readouterr().err
    assert 'stage0.patch_embed.proj.weight: checkpoint (16, 3, 7, 7) vs model (64, 3, 7, 7)' \
        in err
    assert not dst.exists()


def test_pickled_source_needs_allow_pickle(tmp_path, hf_bin, tool, capsys):
    source, _ = hf_bin
    src = tmp_path / 'train_ckpt.pth'
    torch.save({'model': source.state_dict(), 'cfg': argparse.Namespace(a=1)}, src)
    dst = tmp_path / 'clean.pth'
    assert tool.main([str(src), str(dst)]) == 1
    assert '--allow-pickle' in capsys.readouterr().err
    assert tool.main([str(src), str(dst), '--allow-pickle']) == 0
    model = cvt_for_hf()
    assert load_pretrained(model, dst).complete


def test_mmdet_checkpoint_source_selects_the_backbone(tmp_path, hf_bin, tool, capsys):
    source, _ = hf_bin
    state = {'backbone.' + k: v for k, v in convert_to_cvt(source.state_dict()).items()}
    state['neck.conv.weight'] = torch.zeros(1)
    src = tmp_path / 'epoch_12.pth'
    torch.save({'state_dict': state, 'meta': {'epoch': 12}}, src)
    dst = tmp_path / 'backbone.pth'
    assert tool.main([str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert 'dropped (not backbone): 1' in out and 'neck.conv.weight' in out
    assert set(torch.load(dst)) == set(cvt_for_hf().state_dict())


def test_convit_checkpoint_is_detected_converted_and_checked(tmp_path, tool, capsys):
    """The same tool for the second backbone: a timm ConViT file is recognised from its
    keys, loses its classifier, and --check-arch names a wrong preset."""
    from safetensors.torch import save_file

    from convit_oracle import TINY_CONVIT, timm_convit, timm_tiny_kwargs
    from cvt_dense.models import ConViT
    source = timm_convit(**timm_tiny_kwargs())
    src = tmp_path / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(src))
    dst = tmp_path / 'convit_backbone.pth'
    assert tool.main([str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert '(ConViT, official format)' in out and 'local_up_to_layer 2' in out
    assert 'dropped (classifier only): 4' in out
    written = torch.load(dst)
    assert not any(k.startswith(('head.', 'norm.')) for k in written)
    assert load_pretrained(ConViT(TINY_CONVIT), dst).complete
    assert tool.main([str(src), str(tmp_path / 'x.pth'), '--check-arch', 'convit-tiny']) == 1
    err = capsys.readouterr().err
    assert 'blocks.0.attn.proj.weight: checkpoint (32, 32) vs model (192, 192)' in err
    assert 'depth 4, local_up_to_layer 2' in err and 'model (convit-tiny)' in err
    assert tool.main([str(src), str(tmp_path / 'y.pth'), '--backbone', 'CvT']) == 1
    assert "They are a ConViT" in capsys.readouterr().err

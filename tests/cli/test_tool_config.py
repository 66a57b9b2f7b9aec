"""Options shared by tools/train.py and tools/test.py, checked on the real demo configs."""
import argparse
import os
import os.path as osp
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from cvt_dense.cli import (add_common_args, add_prediction_dump, apply_resume,
                           check_prediction_out, enable_show_dir, enable_tensorboard,
                           hold_work_dir, load_config, train_until_done)
from cvt_dense.runtime.checkpoint_storage import CheckpointWriteError
from cvt_dense.runtime.work_dir_lock import WorkDirLocked

REPO = Path(__file__).resolve().parents[2]
DET = str(REPO / 'configs/demo/maskrcnn_cvt13_shapes.py')
SEG = str(REPO / 'configs/demo/upernet_cvt13_shapes.py')


def parse(*argv):
    return add_common_args(argparse.ArgumentParser()).parse_args(list(argv))


def test_common_options_and_default_work_dir(monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '0')  # so that monkeypatch restores it afterwards
    monkeypatch.delenv('LOCAL_RANK')
    args = parse('--cfg-options', 'train_cfg.max_epochs=2', 'model.neck.in_channels=[1,2,3]',
                 '--local-rank', '3')
    cfg = load_config(DET, args)
    assert cfg.train_cfg.max_epochs == 2 and cfg.model.neck.in_channels == [1, 2, 3]
    assert cfg.work_dir == osp.join('work_dirs', 'maskrcnn_cvt13_shapes')
    assert cfg.launcher == 'none'
    assert os.environ['LOCAL_RANK'] == '3'
    assert parse('--local_rank', '1').local_rank == 1  # both spellings
    assert load_config(SEG, parse('--work-dir', '/tmp/x')).work_dir == '/tmp/x'


def test_custom_hooks_from_indexed_options():
    """custom_hooks.N.KEY=VALUE on a config without custom_hooks gives the hook list."""
    cfg = load_config(DET, parse('--cfg-options', 'custom_hooks.1.type=B',
                                 'custom_hooks.0.type=LocalityHook',
                                 'custom_hooks.0.interval=50'))
    assert cfg.custom_hooks == [dict(type='LocalityHook', interval=50), dict(type='B')]
    with pytest.raises(ValueError, match='custom_hooks.0.type=NAME'):
        load_config(DET, parse('--cfg-options', 'custom_hooks.type=LocalityHook'))


def test_bad_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        load_config(str(tmp_path / 'nope.py'), parse())
    other = tmp_path / 'cls.py'
    other.write_text("default_scope = 'mmpretrain'\n")
    with pytest.raises(ValueError, match='cls.py.*mmpretrain'):
        load_config(str(other), parse())


def test_resume_modes(tmp_path):
    cfg = Config(dict(resume=False, load_from='init.pth'))
    apply_resume(cfg, None)
    assert cfg.resume is False and cfg.load_from == 'init.pth'
    apply_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from is None
    ckpt = tmp_path / 'epoch_3.pth'
    torch.save(dict(meta=dict(epoch=3), state_dict={}), ckpt)
    apply_resume(cfg, str(ckpt))
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        apply_resume(cfg, str(tmp_path / 'missing.pth'))
    ckpt.write_bytes(b'')
    with pytest.raises(RuntimeError, match='epoch_3.pth cannot be read'):
        apply_resume(cfg, str(ckpt))


def test_auto_resume_skips_an_unreadable_latest_checkpoint(tmp_path, capsys):
    older, latest = tmp_path / 'iter_2.pth', tmp_path / 'latest.pth'
    torch.save(dict(meta=dict(iter=2), state_dict={}), older)
    latest.write_bytes(b'PK\x03\x04 cut short')
    (tmp_path / 'last_checkpoint').write_text(str(latest))
    cfg = Config(dict(work_dir=str(tmp_path)))
    apply_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from == str(older)
    torch.save(dict(meta=dict(iter=4), state_dict={}), latest)
    apply_resume(cfg, 'auto')  # readable again: mmengine's own auto-resume
    assert cfg.load_from is None


def test_show_dir_for_detection_and_segmentation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    det = Config.fromfile(DET)
    where = enable_show_dir(det, 'pics')
    hook = det.default_hooks.visualization
    assert hook.draw is True and hook.test_out_dir == str(tmp_path / 'pics') == where
    seg = Config.fromfile(SEG)
    where = enable_show_dir(seg, 'pics')
    assert seg.default_hooks.visualization.draw is True
    assert seg.default_hooks.visualization.interval == 1
    assert seg.visualizer.save_dir == str(tmp_path / 'pics')
    assert where == str(tmp_path / 'pics' / 'vis_data' / 'vis_image')
    del seg.default_hooks['visualization']
    with pytest.raises(ValueError, match='VisualizationHook'):
        enable_show_dir(seg, 'pics')


def fake_runner(*metrics):
    return SimpleNamespace(test_evaluator=SimpleNamespace(metrics=list(metrics)))


def test_prediction_dump_detection(tmp_path):
    from mmdet.evaluation import DumpDetResults
    cfg = Config.fromfile(DET)
    runner = fake_runner()
    add_prediction_dump(runner, cfg, str(tmp_path / 'p.pkl'))
    assert isinstance(runner.test_evaluator.metrics[-1], DumpDetResults)
    with pytest.raises(ValueError, match='.pkl'):
        check_prediction_out(cfg, str(tmp_path / 'folder'))
    with pytest.raises(ValueError, match='.pkl'):
        add_prediction_dump(fake_runner(), cfg, str(tmp_path / 'folder'))
    check_prediction_out(Config.fromfile(SEG), str(tmp_path / 'folder'))  # fine for mmseg


def test_prediction_dump_segmentation(tmp_path):
    from mmengine.evaluator import DumpResults
    from mmseg.evaluation import IoUMetric
    cfg = Config.fromfile(SEG)
    runner = fake_runner(IoUMetric())
    add_prediction_dump(runner, cfg, str(tmp_path / 'p.pkl'))
    assert type(runner.test_evaluator.metrics[-1]) is DumpResults
    runner = fake_runner(IoUMetric())
    add_prediction_dump(runner, cfg, str(tmp_path / 'labels'))
    assert runner.test_evaluator.metrics[0].output_dir == str(tmp_path / 'labels')
    assert (tmp_path / 'labels').is_dir()


def test_tensorboard_backend_added_once(monkeypatch):
    cfg = load_config(SEG, parse())
    enable_tensorboard(cfg)
    enable_tensorboard(cfg)
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend',
                                                                'TensorboardVisBackend']
    import importlib.util
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(ImportError, match='pip install tensorboard'):
        enable_tensorboard(cfg)


def test_rank_zero_holds_the_work_dir_lock(tmp_path, monkeypatch):
    cfg = Config(dict(work_dir=str(tmp_path / 'run')))
    monkeypatch.setenv('RANK', '1')
    with hold_work_dir(cfg):
        assert not (tmp_path / 'run').exists()  # only rank 0 locks
    monkeypatch.setenv('RANK', '0')
    with hold_work_dir(cfg):
        assert (tmp_path / 'run' / 'train.lock').is_file()
        with pytest.raises(WorkDirLocked, match='used by another training run'):
            with hold_work_dir(cfg):
                pass
    assert not (tmp_path / 'run' / 'train.lock').exists()


def test_a_checkpoint_write_error_ends_training_with_one_line():
    errors = []

    def full_disk():
        raise CheckpointWriteError('could not write checkpoint w/iter_6.pth: ...')

    runner = SimpleNamespace(train=full_disk, logger=SimpleNamespace(error=errors.append))
    assert train_until_done(runner) == 1
    assert errors == ['could not write checkpoint w/iter_6.pth: ...']
    assert train_until_done(SimpleNamespace(train=lambda: None)) == 0

"""mmengine training checkpoints load under torch.load's default weights_only=True after
``import cvt_dense.runtime``, while anything else outside the allow-list is still refused."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import cvt_dense.runtime  # noqa: F401  (applies the allow-list)
from cvt_dense.weights import allow_mmengine_checkpoints
from cvt_dense.weights.checkpoint_safety import (history_buffer_statistic,
                                                mmengine_checkpoint_globals)


class ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(torch.stack(inputs)).squeeze(1)
        if mode == 'loss':
            return dict(loss=((out - torch.stack(labels)) ** 2).mean())
        return out


def make_runner(work_dir, max_epochs, name, resume=False):
    gen = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.randn(2, generator=gen), labels=torch.tensor(1.))
            for _ in range(8)]
    return Runner(
        model=ToyModel(), work_dir=str(work_dir), experiment_name=name,
        train_dataloader=dict(dataset=data, batch_size=2, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmengine', resume=resume, randomness=dict(seed=0))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('toy_run')
    make_runner(work_dir, max_epochs=1, name='toy_first').train()
    return work_dir / 'epoch_1.pth'


@pytest.fixture
def restore_safe_globals():
    saved = torch.serialization.get_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)


def test_training_checkpoint_loads_with_weights_only_default(checkpoint):
    ckpt = torch.load(str(checkpoint))  # default weights_only=True
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 4
    loss = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer)
    assert len(loss.data[0]) == 4 and np.isfinite(loss.mean())
    assert isinstance(ckpt['message_hub']['runtime_info']['eta'], np.floating)
    state = ckpt['optimizer']['state']
    assert all(float(s['step']) == 4 for s in state.values())


def test_same_checkpoint_fails_without_the_allow_list(checkpoint, restore_safe_globals):
    torch.serialization.clear_safe_globals()
    # The checkpoint really contains what weights_only=True rejects by default, and the
    # allow-list names each of those globals.
    unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(checkpoint)))
    assert {'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.getattr'} <= unsafe
    assert unsafe <= {name for _, name in mmengine_checkpoint_globals()}
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer|getattr|numpy'):
        torch.load(str(checkpoint))
    allow_mmengine_checkpoints()
    assert torch.load(str(checkpoint))['meta']['iter'] == 4


def test_a_scoped_read_keeps_the_process_allow_list(checkpoint, tmp_path, restore_safe_globals):
    """Reading weights (the loader's scoped allow-list, as for every pretrained init_cfg)
    must not undo the process-wide one: mmengine's resume comes after init_weights. torch's
    own ``safe_globals`` context removed the shared entries on exit, and the resume failed."""
    from cvt_dense.weights import read_checkpoint
    torch.serialization.clear_safe_globals()
    allow_mmengine_checkpoints()
    torch.save({'w': torch.zeros(1)}, tmp_path / 'pretrained.pth')
    assert read_checkpoint(tmp_path / 'pretrained.pth')['w'].shape == (1, )
    assert torch.load(str(checkpoint))['meta']['epoch'] == 1  # default weights_only=True


def test_resume_continues_iteration_and_optimizer_state(checkpoint, tmp_path):
    first = torch.load(str(checkpoint))
    runner = make_runner(checkpoint.parent, max_epochs=2, name='toy_resumed', resume=True)
    runner.train()
    assert runner.iter == 8 and runner.epoch == 2
    second = torch.load(str(checkpoint.parent / 'epoch_2.pth'))
    assert all(float(s['step']) == 8 for s in second['optimizer']['state'].values())
    # The message hub kept the first run's history and appended the new iterations.
    assert len(second['message_hub']['log_scalars']['train/loss'].data[0]) == 8
    assert first['meta']['iter'] == 4


class Payload:
    """Pickles as a call to ``open(path, 'w')``: loading it would create the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, 'w')


class Opaque:
    def __init__(self):
        self.value = 3


class GetattrPayload:
    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def __reduce__(self):
        return getattr, (self.obj, self.name)


def test_arbitrary_objects_are_still_refused(tmp_path):
    marker = tmp_path / 'created_by_unpickling'
    torch.save({'state_dict': {}, 'meta': Payload(marker)}, tmp_path / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / 'evil.pth')
    assert not marker.exists()
    torch.save({'meta': Opaque()}, tmp_path / 'opaque.pth')
    with pytest.raises(pickle.UnpicklingError, match='Opaque'):
        torch.load(tmp_path / 'opaque.pth')


@pytest.mark.parametrize('obj,name', [(HistoryBuffer, 'update'), (HistoryBuffer, '__init__'),
                                      (np.ndarray, 'tofile'), (np.dtype, '__class__')])
def test_getattr_only_reaches_history_buffer_statistics(tmp_path, obj, name):
    torch.save({'x': GetattrPayload(obj, name)}, tmp_path / 'getattr.pth')
    with pytest.raises(pickle.UnpicklingError, match='not allowed|getattr'):
        torch.load(tmp_path / 'getattr.pth')


def test_getattr_of_statistics_method_loads(tmp_path):
    torch.save({'x': GetattrPayload(HistoryBuffer, 'mean')}, tmp_path / 'ok.pth')
    assert torch.load(tmp_path / 'ok.pth')['x'] is HistoryBuffer.mean
    assert history_buffer_statistic(HistoryBuffer, 'max') is HistoryBuffer.max
    with pytest.raises(pickle.UnpicklingError, match='not allowed'):
        history_buffer_statistic(Opaque, 'value')

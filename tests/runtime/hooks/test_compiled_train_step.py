"""CompiledTrainStepHook: under mmengine's ``compile`` option the optimizer update stays out
of the compiled train_step, which dynamo cannot trace with the param groups the Runner
builds."""
import logging
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.model import BaseModel
from mmengine.optim import build_optim_wrapper
from torch._dynamo.testing import CompileCounter

from cvt_dense.runtime.hooks import CompiledTrainStepHook

# As in the shipped configs: paramwise settings and gradient clipping. The Runner builds
# from a ConfigDict, so every param group is a ConfigDict too.
OPTIM_WRAPPER = ConfigDict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.1, weight_decay=0.05),
                           paramwise_cfg=dict(bias_decay_mult=0.0),
                           clip_grad=dict(max_norm=1.0))
BATCH = dict(inputs=torch.linspace(-1, 1, 12).reshape(4, 3))


def fake_runner(compile_cfg, optim_wrapper) -> SimpleNamespace:
    """What the hook reads of a Runner."""
    return SimpleNamespace(cfg=dict(compile=compile_cfg), optim_wrapper=optim_wrapper,
                           logger=logging.getLogger(__name__))


class TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 2)

    def forward(self, inputs, data_samples=None, mode='loss'):
        return dict(loss=(self.layer(inputs) - 1).square().mean())


def train(compile_cfg, compiled: bool, steps: int = 3):
    """The weights after ``steps`` train steps, and the frames dynamo compiled after each."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = TinyModel()
    wrapper = build_optim_wrapper(model, OPTIM_WRAPPER)
    CompiledTrainStepHook().before_train(
        fake_runner(compile_cfg, wrapper))
    counter = CompileCounter()
    # What mmengine's Runner does with compile=True.
    train_step = torch.compile(model.train_step, backend=counter) if compiled \
        else model.train_step
    frames = []
    for step in range(steps):
        for group in wrapper.optimizer.param_groups:  # a scheduler's change
            group['lr'] = 0.1 / (step + 1)
        train_step(BATCH, wrapper)
        frames.append(counter.frame_count)
    return [p.detach().clone() for p in model.parameters()], frames


def test_compiled_train_step_updates_as_eager():
    weights, frames = train(compile_cfg=True, compiled=True)
    eager_weights, _ = train(compile_cfg=None, compiled=False)
    for ours, expected in zip(weights, eager_weights, strict=True):
        torch.testing.assert_close(ours, expected)
    # The forward pass compiled, and no longer recompiled once the step counter is
    # dynamic (second step): the learning rate is not part of any graph.
    assert 0 < frames[0] and frames[1:] == [frames[1]] * (len(frames) - 1)


def test_without_it_dynamo_fails_in_the_optimizer_update():
    """Why the hook exists: traced, the update fails on the Runner's param groups."""
    with pytest.raises(torch._dynamo.exc.InternalTorchDynamoError, match='items'):
        train(compile_cfg=None, compiled=True, steps=1)


@pytest.mark.parametrize('compile_cfg', [None, False])
def test_does_nothing_without_compile(compile_cfg):
    wrapper = build_optim_wrapper(TinyModel(), OPTIM_WRAPPER)
    update_params = wrapper.update_params
    CompiledTrainStepHook().before_train(
        fake_runner(compile_cfg, wrapper))
    assert wrapper.update_params == update_params

"""NonFiniteGuardHook on a bare OptimWrapper: non-finite gradient norms skip the step."""
import pytest
import torch
from mmengine.optim import OptimWrapper

from cvt_dense.runtime.hooks import NonFiniteGuardHook


def guarded_model():
    model = torch.nn.Linear(3, 1)
    wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=0.1),
                           clip_grad=dict(max_norm=1.0))
    hook = NonFiniteGuardHook(max_consecutive=2)
    hook._guard(wrapper)
    return model, wrapper, hook


def snapshot(model, wrapper):
    return ([p.detach().clone() for p in model.parameters()],
            {k: {n: v.clone() for n, v in s.items()} for k, s in wrapper.optimizer.state.items()})


@pytest.mark.parametrize('bad_input', [float('nan'), float('inf')])
def test_nonfinite_gradient_norm_skips_the_step(bad_input):
    model, wrapper, hook = guarded_model()
    wrapper.update_params(model(torch.ones(1, 3)).sum())  # one good step
    weights, state = snapshot(model, wrapper)
    # Finite loss (0 * x), non-finite gradient: the weights' gradient is x = NaN/Inf.
    loss = (model(torch.full((1, 3), bad_input)) * 0).nan_to_num().sum()
    wrapper.update_params(loss)
    assert hook._skip_reason.startswith('gradient norm')
    after, after_state = snapshot(model, wrapper)
    assert all(torch.equal(a, b) for a, b in zip(weights, after))
    assert all(torch.equal(state[k][n], after_state[k][n]) for k in state for n in state[k])
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_nonfinite_loss_skips_backward():
    model, wrapper, hook = guarded_model()
    weights, _ = snapshot(model, wrapper)
    wrapper.update_params(model(torch.ones(1, 3)).sum() * float('nan'))
    assert hook._skip_reason == 'loss nan'
    assert all(torch.equal(a, b) for a, b in zip(weights, snapshot(model, wrapper)[0]))
    assert wrapper.optimizer.state == {} or all(
        float(s['step']) == 0 for s in wrapper.optimizer.state.values())

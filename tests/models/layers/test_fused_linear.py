import pytest
import torch
import torch.nn.functional as F

from cvt_dense.models.layers import linear
from cvt_dense.models.layers import fused_linear as linear_module


def reference(x, weight, bias, act):
    out = x.double() @ weight.double().t() + (0 if bias is None else bias.double())
    return (out * torch.sigmoid(out) if act == 'silu' else out).float()


@pytest.mark.parametrize('act', [None, 'silu'])
@pytest.mark.parametrize('with_bias', [True, False])
def test_inference_matches_float64_reference(act, with_bias):
    torch.manual_seed(0)
    # 3-D and channels-last-like (transposed) inputs, as the blocks pass them.
    x = torch.randn(2, 64, 37).transpose(1, 2)
    weight, bias = torch.randn(96, 64) * 0.1, torch.randn(96) if with_bias else None
    with torch.inference_mode():
        out = linear(x, weight, bias, act=act)
    assert out.shape == (2, 37, 96)
    assert torch.allclose(out, reference(x, weight, bias, act), atol=1e-5)


def test_inference_uses_the_fused_onednn_kernel(monkeypatch):
    if linear_module.ONEDNN_LINEAR is None or not torch.backends.mkldnn.is_available():
        pytest.skip('this torch has no oneDNN linear')
    calls = []
    fused = linear_module.ONEDNN_LINEAR
    monkeypatch.setattr(linear_module, 'ONEDNN_LINEAR',
                        lambda *args: calls.append(args[3]) or fused(*args))
    x, weight = torch.randn(5, 8), torch.randn(4, 8)
    with torch.no_grad():
        linear(x, weight, None, act='silu')
    assert calls == ['swish']
    linear(x, weight.requires_grad_(), None)  # needs a gradient: the autograd path
    with torch.autocast('cpu', dtype=torch.bfloat16), torch.no_grad():
        assert linear(x, weight, None).dtype == torch.bfloat16
    assert calls == ['swish']


def test_tracing_records_the_standard_linear():
    """A traced or exported model must not contain the CPU-only oneDNN op."""
    class Layer(torch.nn.Linear):
        def forward(self, x):
            return linear(x, self.weight, self.bias, act='silu')

    with torch.no_grad():
        traced = torch.jit.trace(Layer(8, 4).eval(), torch.randn(3, 8))
    graph = str(traced.graph)
    assert 'aten::linear' in graph and 'mkldnn' not in graph


def test_training_path_has_the_same_values_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(3, 10, 16, requires_grad=True)
    weight = torch.randn(32, 16, requires_grad=True)
    bias = torch.randn(32, requires_grad=True)
    out = linear(x, weight, bias, act='silu')
    out.square().sum().backward()
    grads = [t.grad.clone() for t in (x, weight, bias)]
    for t in (x, weight, bias):
        t.grad = None
    F.silu(F.linear(x, weight, bias)).square().sum().backward()
    with torch.no_grad():
        assert torch.allclose(out, linear(x, weight, bias, act='silu'), atol=1e-6)
    for got, t in zip(grads, (x, weight, bias)):
        assert torch.allclose(got, t.grad, atol=1e-5)


def test_unknown_activation_is_an_error():
    with pytest.raises(ValueError, match="act must be one of.*'gelu'"):
        linear(torch.randn(2, 3), torch.randn(4, 3), act='gelu')

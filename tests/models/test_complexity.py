"""MAC counting, including the fused CPU attention op torch's counter does not see."""
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from cvt_dense.models import CvT
from cvt_dense.models.complexity import count_macs


def test_attention_counted_like_explicit_matmuls():
    q, k, v = torch.randn(1, 2, 50, 8), torch.randn(1, 2, 13, 8), torch.randn(1, 2, 13, 8)

    class Fused(torch.nn.Module):
        def forward(self, x):
            return F.scaled_dot_product_attention(x, k, v)

    class Explicit(torch.nn.Module):
        def forward(self, x):
            return torch.softmax(x @ k.transpose(-1, -2), -1) @ v

    # Torch's own counter misses the CPU kernel; ours matches the explicit matmuls.
    with FlopCounterMode(display=False) as plain:
        Fused()(q)
    assert plain.get_total_flops() == 0
    fused, explicit = count_macs(Fused(), q), count_macs(Explicit(), q)
    assert fused['total'] == explicit['total'] == 2 * 2 * 50 * 13 * 8
    assert fused['attention'] == fused['total']


def analytic_attention_macs(arch_dims, heads, depths, size):
    """q k^T and attn v per block, from the conv arithmetic (cls token in the last stage)."""
    h, w = size
    total = 0
    for i, (dim, depth) in enumerate(zip(arch_dims, depths)):
        k, s, p = ((7, 4, 2), (3, 2, 1), (3, 2, 1))[i]
        h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        cls = int(i == 2)
        nq, nk = h * w + cls, ((h + 1) // 2) * ((w + 1) // 2) + cls
        total += depth * 2 * nq * nk * dim
    return total


@pytest.mark.parametrize('arch, gmacs', [('cvt-13', 4.5), ('cvt-21', 7.1)])
def test_published_macs_at_224(arch, gmacs):
    model = CvT(arch).eval()
    macs = count_macs(model, torch.randn(1, 3, 224, 224))
    assert abs(macs['total'] / 1e9 - gmacs) / gmacs < 0.05, macs
    s = model.arch_settings
    assert macs['attention'] == analytic_attention_macs(s['embed_dims'], s['num_heads'],
                                                        s['depths'], (224, 224))


def test_every_linear_is_counted_on_the_inference_and_training_paths():
    """The blocks' linears run through oneDNN in inference and F.linear in training: both
    must count the same MACs."""
    model = CvT('cvt-13').eval()
    x = torch.randn(1, 3, 64, 96)
    inference = count_macs(model, x)
    with FlopCounterMode(display=False) as training:
        model(x)  # grad enabled, parameters require grad: the autograd path
    # torch's own counter misses the CPU attention op: its total is the non-attention MACs.
    assert inference['other'] > 0
    assert inference['other'] == training.get_total_flops() / 2

"""Nonlocality: against the dense formula on small non-square and padded grids, against the
official ConViT code's nonlocality at 224, and bounded in memory by chunks."""
import pytest
import torch

from convit_oracle import TINY_CONVIT, randomize_convit_, true_grid_offsets
from cvt_dense.analysis.locality import measure_locality, positional_nonlocality
from cvt_dense.models import ConViT, CvT
from cvt_dense.models.layers import (AttentionLayout, PixelGeometry, TokenGrid,
                                     observe_attention, scaled_attention)
from hf_oracle import randomize_

TINY_CVT = dict(embed_dims=[16, 32, 48], num_heads=[1, 2, 3], depths=[1, 2, 1])


def dense_nonlocality(attention: torch.Tensor, query_yx: torch.Tensor,
                      key_yx: torch.Tensor) -> torch.Tensor:
    """``(1/N) sum_q sum_k A_qk ||p_k - p_q||`` with the whole (..., Nq, Nk) matrix."""
    delta = key_yx.double()[None, :, :] - query_yx.double()[:, None, :]
    distance = delta.square().sum(-1).sqrt()
    return (attention.double() * distance).sum((-1, -2)) / attention.shape[-2]


def grid_yx(rows: int, cols: int, stride: float, offset: float) -> torch.Tensor:
    """(rows * cols, 2) centres (y, x), row-major, of cells ``offset + stride * i``."""
    ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing='ij')
    return torch.stack((ys.flatten(), xs.flatten()), 1).double() * stride + offset


def captured_inputs(backbone: torch.nn.Module, x: torch.Tensor, kind: type) -> list:
    """The (tokens, hw) every ``kind`` attention module received in one forward pass."""
    calls = []
    handles = [m.register_forward_pre_hook(lambda m, args: calls.append((m, *args)))
               for m in backbone.modules() if isinstance(m, kind)]
    with torch.no_grad():
        backbone.eval()(x)
    for handle in handles:
        handle.remove()
    return calls


@pytest.fixture(scope='module')
def cvt():
    torch.manual_seed(0)
    model = CvT(TINY_CVT, drop_path_rate=0.)
    model.init_weights()
    return randomize_(model).eval()


@pytest.fixture(scope='module')
def convit():
    torch.manual_seed(0)
    return randomize_convit_(ConViT(TINY_CONVIT, out_indices=(3, ))).eval()


def test_cvt_equals_the_dense_formula_on_each_stage_grid(cvt):
    """Query grids from the conv arithmetic, key grids at stride 2 of them, cell centres at
    1.5 + stride * i input pixels (7/4/2 then 3/2/1 convs); the cls token of the last stage
    is left out of the distances and its share is the attention to it."""
    x = torch.randn(2, 3, 45, 70)
    calls = []
    with observe_attention(lambda q, k, v, scale: calls.append((q, k, scale))):
        with torch.no_grad():
            cvt(x)
    layers = measure_locality(cvt, x)
    assert [layer.name for layer in layers] == ['stage0.blocks.0.attn', 'stage1.blocks.0.attn',
                                                'stage1.blocks.1.attn', 'stage2.blocks.0.attn']
    grid, stride = (45, 70), 1
    for layer, (q, k, scale), stage in zip(layers, calls, (0, 1, 1, 2)):
        kernel, step, pad = (7, 4, 2) if stage == 0 else (3, 2, 1)
        if layer.name != 'stage1.blocks.1.attn':
            grid = tuple((side + 2 * pad - kernel) // step + 1 for side in grid)
            stride *= step
        key_grid = tuple((side + 1) // 2 for side in grid)
        prefix = int(stage == 2)
        attention = torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1)[:, :, prefix:]
        expected = dense_nonlocality(attention[..., prefix:], grid_yx(*grid, stride, 1.5),
                                     grid_yx(*key_grid, 2 * stride, 1.5)).mean(0)
        torch.testing.assert_close(layer.content, expected, rtol=1e-5, atol=0)
        assert layer.query_stride == stride and layer.images == 2
        share = attention[..., :prefix].sum((-1, -2)).mean(0) / attention.shape[2]
        torch.testing.assert_close(layer.prefix_share, share.double(), rtol=1e-5, atol=1e-12)
        assert (layer.prefix_share > 0.01).all() == bool(prefix)
        assert layer.positional is None and layer.gate is None
        torch.testing.assert_close(layer.nonlocality, layer.content)


@pytest.mark.parametrize('size, grid', [((75, 101), (5, 7)), ((48, 16), (3, 1))])
def test_convit_branches_and_mix_equal_the_dense_gpsa_on_the_padded_grid(convit, size, grid):
    """Inputs padded to multiples of 16; content, positional (dense softmax over the true
    grid's offsets) and the gated mix, in pixels (16 per patch) and patches."""
    from cvt_dense.models.backbones.convit.blocks import GPSA, MHSA
    x = torch.randn(2, 3, *size)
    inputs = captured_inputs(convit, x, (GPSA, MHSA))
    layers = measure_locality(convit, x)
    assert [layer.name for layer in layers] == [f'blocks.{i}.attn' for i in range(4)]
    patches = grid_yx(*grid, 16., 8.)
    for layer, (attn, tokens, hw) in zip(layers, inputs):
        assert hw == grid and layer.query_stride == 16
        heads, width = attn.num_heads, tokens.shape[-1] // attn.num_heads
        with torch.no_grad():
            if isinstance(attn, GPSA):
                q, k = attn.qk(tokens).unflatten(-1, (2, heads, width)).permute(2, 0, 3, 1, 4)
                prefix = 0
            else:
                q, k, _ = attn.qkv(tokens).unflatten(-1, (3, heads, width)).permute(
                    2, 0, 3, 1, 4)
                prefix = 1
            content = torch.softmax(q @ k.transpose(-1, -2) * width ** -0.5, -1)
        expected = dense_nonlocality(content[:, :, prefix:, prefix:], patches, patches).mean(0)
        torch.testing.assert_close(layer.content, expected, rtol=1e-5, atol=0)
        if isinstance(attn, MHSA):
            assert layer.positional is None and layer.gate is None
            continue
        with torch.no_grad():
            positional = attn.pos_proj(true_grid_offsets(*grid))[0].permute(2, 0, 1).softmax(-1)
            gate = torch.sigmoid(attn.gating_param)
            mixed = (1 - gate.view(-1, 1, 1)) * content + gate.view(-1, 1, 1) * positional
        torch.testing.assert_close(layer.positional,
                                   dense_nonlocality(positional, patches, patches),
                                   rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(layer.gate, gate.double())
        expected_mix = dense_nonlocality(mixed, patches, patches).mean(0)
        torch.testing.assert_close(layer.nonlocality, expected_mix, rtol=1e-5, atol=0)
        torch.testing.assert_close(layer.in_cells(layer.nonlocality), expected_mix / 16)


def official_gpsa_nonlocality(attn, tokens: torch.Tensor) -> torch.Tensor:
    """facebookresearch/convit ``GPSA.get_attention_map``, from its math: the gated,
    renormalised attention over the square grid sqrt(N) x sqrt(N) (offsets ``rel_indices``:
    dx, dy, dx^2 + dy^2), averaged over the batch, times the offset norm, summed, / N."""
    batch, n, channels = tokens.shape
    heads, side = attn.num_heads, int(n ** .5)
    offsets = torch.arange(side).view(1, -1) - torch.arange(side).view(-1, 1)
    dx = offsets.repeat(side, side).float()
    dy = offsets.repeat_interleave(side, 0).repeat_interleave(side, 1).float()
    rel = torch.stack((dx, dy, dx ** 2 + dy ** 2), -1)
    q, k = attn.qk(tokens).reshape(batch, n, 2, heads, -1).permute(2, 0, 3, 1, 4)
    patch = (q @ k.transpose(-2, -1) * (channels // heads) ** -0.5).softmax(-1)
    pos = attn.pos_proj(rel).permute(2, 0, 1).softmax(-1)
    gate = torch.sigmoid(attn.gating_param).view(1, -1, 1, 1)
    mixed = (1 - gate) * patch + gate * pos
    mixed = (mixed / mixed.sum(-1, keepdim=True)).mean(0)
    return torch.einsum('nm,hnm->h', (dx ** 2 + dy ** 2) ** .5, mixed) / n


def official_mhsa_nonlocality(attn, tokens: torch.Tensor) -> torch.Tensor:
    """facebookresearch/convit ``MHSA.get_attention_map``, from its math, on the patch
    tokens: the official code builds its distances for int(sqrt(N)) ** 2 tokens, which
    with the cls token (N = 197) do not match the 197 x 197 attention; here the softmax is
    over all 197 keys (as the model attends) and the cls row and column are left out."""
    batch, n, channels = tokens.shape
    heads, side = attn.num_heads, int((n - 1) ** .5)
    q, k, _ = attn.qkv(tokens).reshape(batch, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    attention = (q @ k.transpose(-2, -1) * (channels // heads) ** -0.5).softmax(-1).mean(0)
    offsets = torch.arange(side).view(1, -1) - torch.arange(side).view(-1, 1)
    dx = offsets.repeat(side, side).float()
    dy = offsets.repeat_interleave(side, 0).repeat_interleave(side, 1).float()
    distances = (dx ** 2 + dy ** 2) ** .5
    return torch.einsum('nm,hnm->h', distances, attention[:, 1:, 1:]) / (n - 1)


def test_matches_the_official_convit_nonlocality_at_224():
    """ConViT-Tiny (random, gates and positional projections too) at 224: the paper's
    number for every block, in patches; GPSA also against timm's port of the official
    ``get_attention_map``."""
    from timm.models.convit import GPSA as TimmGPSA

    from cvt_dense.models.backbones.convit.blocks import GPSA, MHSA
    torch.manual_seed(0)
    model = randomize_convit_(ConViT('convit-tiny')).eval()
    x = torch.randn(2, 3, 224, 224)
    inputs = captured_inputs(model, x, (GPSA, MHSA))
    layers = measure_locality(model, x)
    assert len(layers) == 12
    for layer, (attn, tokens, hw) in zip(layers, inputs):
        ours = layer.in_cells(layer.nonlocality).float()
        with torch.no_grad():
            if isinstance(attn, GPSA):
                expected = official_gpsa_nonlocality(attn, tokens)
                timm_gpsa = TimmGPSA(192, num_heads=4)
                timm_gpsa.load_state_dict(attn.state_dict())
                timm_gpsa.rel_indices = timm_gpsa.get_rel_indices(196)
                torch.testing.assert_close(ours, timm_gpsa.get_attention_map(tokens),
                                           rtol=1e-5, atol=0)
            else:
                expected = official_mhsa_nonlocality(attn, tokens)
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=0)


def test_positional_factors_on_different_query_and_key_grids():
    """The offset-mass computation against kron(P_y, P_x) written out, with query and key
    grids of different sizes, strides and offsets, in small chunks too."""
    g = torch.Generator().manual_seed(0)
    p_y = torch.rand(2, 3, 5, generator=g).softmax(-1)
    p_x = torch.rand(2, 4, 6, generator=g).softmax(-1)
    queries = TokenGrid((3, 4), PixelGeometry(8., 4.5))
    keys = TokenGrid((5, 6), PixelGeometry(4., 2.5))
    layout = AttentionLayout(torch.nn.Identity(), queries, keys, positional=(p_y, p_x))
    dense = torch.einsum('hab,hcd->hacbd', p_y, p_x).reshape(2, 12, 30)
    expected = dense_nonlocality(dense, grid_yx(3, 4, 8., 4.5), grid_yx(5, 6, 4., 2.5))
    torch.testing.assert_close(positional_nonlocality(layout), expected)
    torch.testing.assert_close(positional_nonlocality(layout, max_chunk_elements=1), expected)


def test_chunks_change_nothing(cvt, convit):
    """One query row at a time (and one offset row) gives the one-chunk result."""
    for model, x in ((cvt, torch.randn(1, 3, 40, 52)), (convit, torch.randn(1, 3, 50, 40))):
        whole, chunked = (measure_locality(model, x, max_chunk_elements=budget)
                          for budget in (1 << 30, 1))
        for a, b in zip(whole, chunked):
            torch.testing.assert_close(a.nonlocality, b.nonlocality, rtol=1e-6, atol=0)
            torch.testing.assert_close(a.prefix_share, b.prefix_share, rtol=1e-6, atol=1e-12)


def test_batches_of_different_sizes_average_per_image(convit):
    a, b = torch.randn(1, 3, 48, 64), torch.randn(2, 3, 80, 32)
    together = measure_locality(convit, [a, b])
    alone = [measure_locality(convit, a), measure_locality(convit, b)]
    for layer, one, two in zip(together, *alone):
        assert layer.images == 3
        torch.testing.assert_close(layer.nonlocality, (one.nonlocality + 2 * two.nonlocality) / 3)
        if layer.positional is not None:  # depends on the grid: the two sizes differ
            assert not torch.allclose(one.positional, two.positional)


def test_training_mode_and_batchnorm_statistics_are_kept(cvt):
    model = CvT(TINY_CVT).train()
    before = {n: b.clone() for n, b in model.named_buffers()}
    measure_locality(model, torch.randn(2, 3, 32, 32))
    assert model.training and all(m.training for m in model.modules())
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, before[name]), name


def test_unsupported_backbones_are_named():
    class NoLayout(torch.nn.Module):
        def forward(self, x):
            q = x.flatten(2).transpose(1, 2)[:, None]
            return scaled_attention(q, q, q, scale=1.)

    class NoAttention(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(NotImplementedError, match='NoLayout: an attention layer passes no'):
        measure_locality(NoLayout(), torch.randn(1, 3, 4, 4))
    with pytest.raises(NotImplementedError, match='NoAttention: it makes no scaled_attention'):
        measure_locality(NoAttention(), torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        measure_locality(NoAttention(), torch.randn(3, 4, 4))

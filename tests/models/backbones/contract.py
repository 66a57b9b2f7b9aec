"""The contract every registered backbone keeps.

:class:`BackboneContract` holds the tests; a test class that derives from it and provides a
``backbone`` fixture (a :class:`~cvt_dense.models.backbones.BackboneInfo`) runs all of them.
``test_contract.py`` does so for every registered backbone, so a new backbone is covered by
being registered; ``test_third_backbone.py`` does it for one written inside the test.
"""
import contextlib
import inspect
import math

import pytest
import torch
from torch._dynamo.testing import CompileCounter
from torch.export import Dim

from cvt_dense.models.backbones import BackboneInfo

# Odd, non-square and different from each other: a graph that baked in a size, a padding
# or a grid would recompile on, or disagree at, the next one.
COMPILE_SIZES = [(64, 96), (75, 101), (97, 61)]


def inference_unless(train: bool):
    """``torch.no_grad()`` for eval-mode runs (inference, where the fused CPU paths apply)."""
    return contextlib.nullcontext() if train else torch.no_grad()


def build(info: BackboneInfo, **overrides):
    torch.manual_seed(0)
    model = info.cls(**dict(info.small, **overrides))
    model.init_weights()
    return model


class BackboneContract:
    """Tests of one backbone, given by the ``backbone`` fixture of the deriving class."""

    @pytest.mark.parametrize('size', [(32, 32), (45, 77), (97, 31)])
    def test_any_size_gives_the_declared_channels_and_strides(self, backbone, size):
        model = build(backbone).eval()
        with torch.no_grad():
            outs = model(torch.randn(2, 3, *size))
        assert len(outs) == len(model.out_indices) == len(model.out_strides)
        for out, channels, stride in zip(outs, model.out_channels, model.out_strides):
            assert out.shape[:2] == (2, channels)
            for side, pixels in zip(out.shape[2:], size):
                assert math.floor(pixels / stride) <= side <= math.ceil(pixels / stride)

    @pytest.mark.parametrize('shape, match', [((3, 64, 64), '4D'),
                                              ((1, 4, 64, 64), 'in_channels=3')])
    def test_bad_input_is_named(self, backbone, shape, match):
        with pytest.raises(ValueError, match=match):
            build(backbone)(torch.randn(*shape))

    def test_bad_out_indices_name_the_levels(self, backbone):
        with pytest.raises(ValueError, match='out_indices'):
            build(backbone, out_indices=(99, ))

    def test_frozen_stages_stop_gradients_and_stay_in_eval(self, backbone):
        model = build(backbone, frozen_stages=1).train()
        frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        assert frozen and trainable
        x = torch.randn(1, 3, 48, 64)
        sum(o.sum() for o in model(x)).backward()
        params = dict(model.named_parameters())
        assert all(params[n].grad is None for n in frozen)
        assert any(params[n].grad is not None for n in trainable)
        frozen_modules = [m for m in model.modules() if m is not model
                          and any(not p.requires_grad for p in m.parameters(recurse=False))]
        assert frozen_modules and all(not m.training for m in frozen_modules)
        assert all(p.requires_grad for p in build(backbone).parameters())

    def test_frozen_stages_follow_swins_rule(self, backbone):
        """-1 freezes nothing; 0 exactly the stem (the parameters of layer group 0); k >= 1
        the stem and levels 0..k-1 whole: their maps need no gradient, level k's does; a
        value beyond the levels is refused."""
        num_levels = build(backbone).num_levels
        levels = tuple(range(num_levels))
        x = torch.randn(1, 3, 48, 64)
        for frozen_stages in range(-1, num_levels + 1):
            model = build(backbone, frozen_stages=frozen_stages, out_indices=levels).train()
            frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
            stem = {n for n, _ in model.named_parameters() if model.get_layer_depth(n)[0] == 0}
            assert stem, 'layer group 0 holds the stem'
            if frozen_stages == -1:
                assert not frozen
            elif frozen_stages == 0:
                assert frozen == stem
            else:
                assert stem < frozen
            trains = [i >= frozen_stages for i in levels]
            maps = model._levels(x, num_levels - 1)  # without the output norms
            assert [level.requires_grad for level in maps] == trains
            assert [out.requires_grad for out in model(x)] == trains
        for bad in (-2, num_levels + 1):
            with pytest.raises(ValueError, match=f'frozen_stages={bad}'):
                build(backbone, frozen_stages=bad)

    def test_norm_eval_keeps_batchnorms_in_eval(self, backbone):
        model = build(backbone, norm_eval=True).train()
        bns = [m for m in model.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert all(not m.training for m in bns)
        assert model.training
        assert all(m.training for m in build(backbone).train().modules())

    def test_with_cp_gives_identical_outputs_and_gradients(self, backbone):
        x = torch.randn(2, 3, 48, 40)
        results = []
        for with_cp in (False, True):
            model = build(backbone, with_cp=with_cp).train()
            outs = model(x)
            sum(o.square().mean() for o in outs).backward()
            results.append((outs, {n: p.grad for n, p in model.named_parameters()}))
        (outs_a, grads_a), (outs_b, grads_b) = results
        for a, b in zip(outs_a, outs_b):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
        assert grads_a.keys() == grads_b.keys()
        for name in grads_a:
            torch.testing.assert_close(grads_a[name], grads_b[name], atol=1e-5, rtol=1e-4)

    @pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmengine'])
    def test_builds_from_every_registry_scope(self, backbone, scope):
        import cvt_dense  # noqa: F401  (the registries follow every registration)
        from mmdet.registry import MODELS
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(dict(type=backbone.cls.__name__, **backbone.small))
        assert type(model) is backbone.cls

    def test_init_cfg_loads_our_own_checkpoint_with_a_report(self, backbone, tmp_path):
        """A backbone-only file written from one model loads into another through init_cfg:
        every tensor, the same outputs, and a report that says so."""
        from cvt_dense.weights import load_pretrained
        source = build(backbone).eval()
        path = tmp_path / 'backbone.pth'
        state = {k: v for k, v in source.state_dict().items() if not k.startswith('out_norm')}
        torch.save(state, path)
        model = backbone.cls(**backbone.small,
                             init_cfg=dict(type='Pretrained', checkpoint=str(path)))
        model.init_weights()
        report = load_pretrained(backbone.cls(**backbone.small), str(path))
        assert report.source_format == 'cvt_dense' and report.complete
        assert set(report.loaded) == set(state)
        assert report.newly_initialised and all(k.startswith('out_norm')
                                                for k in report.newly_initialised)
        model.load_state_dict({k: v for k, v in source.state_dict().items()
                               if k.startswith('out_norm')}, strict=False)
        x = torch.randn(1, 3, 40, 56)
        with torch.no_grad():
            for a, b in zip(model.eval()(x), source(x)):
                torch.testing.assert_close(a, b)

    def test_bf16_autocast_stays_close_to_fp32(self, backbone):
        model = build(backbone).eval()
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            ref = model(x)
            with torch.autocast('cpu', dtype=torch.bfloat16):
                low = model(x)
        for a, b in zip(ref, low):
            assert (a - b.float()).abs().max() < 0.1 * a.abs().max()

    def test_layer_ids_rise_with_depth_and_leave_no_parameter_out(self, backbone):
        """Every parameter of the blocks and embeddings gets an id below the top one (which
        the neck, heads and output norms share), and a block's id grows with its depth."""
        model = build(backbone)
        ids = {name: model.get_layer_depth(name) for name, _ in model.named_parameters()}
        num_layers = {count for _, count in ids.values()}
        assert len(num_layers) == 1 and num_layers.pop() == len(model.layer_groups()) + 1
        top = len(model.layer_groups())
        assert all(ids[name][0] < top for name in ids if not name.startswith('out_norm'))
        used = sorted({layer_id for layer_id, _ in ids.values() if layer_id < top})
        assert used == list(range(top)), 'every declared layer group holds parameters'
        assert model.get_layer_depth('neck.conv.weight', 'backbone.') == (top, top + 1)

    def test_attention_pictures_find_every_layer(self, backbone):
        from cvt_dense.analysis.attention_maps import query_attention
        model = build(backbone).eval()
        layers = query_attention(model, torch.randn(1, 3, 45, 61), point=(30, 20))
        assert layers
        for layer in layers:
            assert torch.allclose(layer.row_sums, torch.ones_like(layer.row_sums), atol=1e-5)

    def test_locality_measures_every_attention_layer(self, backbone):
        """One record per attention call, whose content nonlocality is the dense formula on
        the call's own grids: the mean pixel distance, under softmax(q k^T * scale), between
        the spatial queries and keys (cell i of a grid centred at offset + stride * i)."""
        from cvt_dense.analysis.locality import measure_locality
        from cvt_dense.models.layers import observe_attention
        model = build(backbone).eval()
        x = torch.randn(2, 3, 45, 61)
        calls = []
        with torch.no_grad(), observe_attention(
                lambda q, k, v, scale, layout: calls.append((q, k, scale, layout)),
                with_layout=True):
            model(x)
        layers = measure_locality(model, x)
        assert calls and len(layers) == len(calls)

        def centres(grid):
            ys, xs = torch.meshgrid(*(torch.arange(side) for side in grid.size),
                                    indexing='ij')
            yx = torch.stack((ys.flatten(), xs.flatten()), 1).double()
            return grid.geometry.offset + grid.geometry.stride * yx

        for layer, (q, k, scale, layout) in zip(layers, calls):
            query_prefix, key_prefix = layout.queries.prefix_tokens, layout.keys.prefix_tokens
            attention = torch.softmax(q @ k.transpose(-1, -2) * scale, -1)
            spatial = attention[:, :, query_prefix:, key_prefix:].double()
            distance = torch.cdist(centres(layout.queries), centres(layout.keys))
            expected = (spatial * distance).sum((-1, -2)).mean(0) / spatial.shape[2]
            torch.testing.assert_close(layer.content, expected, rtol=1e-5, atol=0)
            assert torch.isfinite(layer.nonlocality).all() and (layer.nonlocality > 0).all()

    @pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
    @pytest.mark.parametrize('bf16', [False, True], ids=['fp32', 'bf16'])
    def test_dynamo_sees_one_graph_without_breaks(self, backbone, train, bf16):
        """torch.compile and torch.export need the whole forward as one graph: a graph
        break (an untraceable call) splits it, and every piece compiles on its own."""
        torch._dynamo.reset()
        model = build(backbone).train(train)
        autocast = (torch.autocast('cpu', dtype=torch.bfloat16) if bf16
                    else contextlib.nullcontext())
        with autocast, inference_unless(train):
            explanation = torch._dynamo.explain(model)(torch.randn(2, 3, *COMPILE_SIZES[0]))
        assert explanation.graph_break_count == 0, explanation.break_reasons
        assert explanation.graph_count == 1

    @pytest.mark.parametrize('train', [False, True], ids=['eval', 'train'])
    def test_dynamic_compile_serves_every_size_without_recompiling(self, backbone, train):
        """With dynamic H and W one compiled graph runs all sizes (strided convs, padding,
        resampled position embeddings and positional factors traced symbolically), and
        its outputs and gradients are eager's."""
        torch._dynamo.reset()
        # Stochastic depth where the backbone has it: each block then has its own rate,
        # which must be a constant of the one graph, not a reason to recompile per block.
        overrides = ({'drop_path_rate': 0.1} if train and 'drop_path_rate'
                     in inspect.signature(backbone.cls).parameters else {})
        model = build(backbone, **overrides).train(train)
        params = [p for p in model.parameters() if p.requires_grad]
        counter = CompileCounter()
        compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
        for size in COMPILE_SIZES:
            x = torch.randn(2, 3, *size)
            results = []
            for run in (compiled, model):
                torch.manual_seed(1)  # the same dropout / drop-path draws in both runs
                with inference_unless(train):
                    outs = run(x)
                grads = (torch.autograd.grad(sum(o.square().mean() for o in outs), params,
                                             allow_unused=True) if train else ())
                results.append((outs, grads))
            (outs, grads), (expected, expected_grads) = results
            for out, ref in zip(outs, expected, strict=True):
                # Eager inference may take the fused oneDNN linear, compiled F.linear.
                torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
            for grad, ref in zip(grads, expected_grads, strict=True):
                torch.testing.assert_close(grad, ref)
        assert counter.frame_count == 1, f'{counter.frame_count} compilations for 3 sizes'

    def test_export_with_dynamic_sizes_matches_eager(self, backbone):
        """torch.export with dynamic batch, H and W: one program that agrees with eager at
        other sizes, a single odd non-square image among them."""
        model = build(backbone).eval()
        example = torch.randn(2, 3, *COMPILE_SIZES[0])
        dynamic = {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}
        program = torch.export.export(model, (example,), dynamic_shapes=(dynamic,)).module()
        for batch, size in zip((1, 3), COMPILE_SIZES[1:]):
            x = torch.randn(batch, 3, *size)
            with torch.no_grad():
                for out, ref in zip(program(x), model(x), strict=True):
                    assert out.shape == ref.shape
                    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)

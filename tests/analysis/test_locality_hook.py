"""LocalityHook's scalars, arguments and registration (its training run is in
tests/tools/test_locality_tools.py)."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from cvt_dense.analysis.locality import LayerLocality
from cvt_dense.analysis.locality_hook import LocalityHook, locality_scalars


def test_scalars_means_heads_and_gates():
    """The gated mix per head (30 = (40 + 20) / 2, 47.5 = 0.75 * 60 + 0.25 * 10), its mean,
    the gates; no gate for a layer without a positional branch."""
    gpsa = LayerLocality('blocks.0.attn', 16., content=torch.tensor([40., 60.]),
                         prefix_share=torch.zeros(2), positional=torch.tensor([20., 10.]),
                         gate=torch.tensor([0.5, 0.25]))
    mhsa = LayerLocality('blocks.1.attn', 16., content=torch.tensor([30., 50.]),
                         prefix_share=torch.tensor([.1, .2]))
    scalars = locality_scalars([gpsa, mhsa])
    assert scalars == {
        'nonlocality/blocks.0.attn': 38.75, 'nonlocality/blocks.0.attn/head0': 30.,
        'nonlocality/blocks.0.attn/head1': 47.5, 'gate/blocks.0.attn': 0.375,
        'gate/blocks.0.attn/head0': 0.5, 'gate/blocks.0.attn/head1': 0.25,
        'nonlocality/blocks.1.attn': 40., 'nonlocality/blocks.1.attn/head0': 30.,
        'nonlocality/blocks.1.attn/head1': 50.}
    assert set(locality_scalars([gpsa, mhsa], per_head=False)) == {
        'nonlocality/blocks.0.attn', 'gate/blocks.0.attn', 'nonlocality/blocks.1.attn'}


def test_built_by_name_after_import_cvt_dense():
    import cvt_dense  # noqa: F401  (what custom_imports does)
    from mmengine.registry import HOOKS
    hook = HOOKS.build(dict(type='LocalityHook', interval=5, num_images=3))
    assert type(hook).__module__ == 'cvt_dense.analysis.locality_hook'
    assert (hook.interval, hook.num_images) == (5, 3)


def test_bad_arguments_and_no_probe_images_are_named():
    with pytest.raises(ValueError, match='interval >= 1'):
        LocalityHook(interval=0)
    runner = SimpleNamespace(cfg=Config(dict(val_dataloader=None)),
                             model=SimpleNamespace(backbone=None))
    with pytest.raises(ValueError, match='give the hook a dataloader'):
        LocalityHook().before_train(runner)

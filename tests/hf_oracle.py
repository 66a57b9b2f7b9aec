"""Tiny random Hugging Face CvT models: the oracle of the backbone and weight tests."""
import itertools

import torch

# Small enough to build and run in milliseconds; three stages like the real models.
# transformers' CvtStage indexes its per-block drop-path list by the stage index, so its
# config needs depth[i] > i.
TINY_ARCH = dict(embed_dims=[16, 32, 48], num_heads=[1, 2, 3], depths=[1, 2, 3])
IMAGE_SHAPE = (2, 3, 64, 48)  # non-square catches H/W mix-ups


def tiny_hf_config(**overrides):
    from transformers import CvtConfig
    cfg = dict(embed_dim=TINY_ARCH['embed_dims'], num_heads=TINY_ARCH['num_heads'],
               depth=TINY_ARCH['depths'], drop_path_rate=[0.0, 0.0, 0.0])
    cfg.update(overrides)
    return CvtConfig(**cfg)


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every float parameter and buffer so that no tensor is at its default.

    Default init leaves norms at identity and BN statistics at (0, 1); with those, swapping
    two norms in the name table would go unnoticed by an output comparison.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in itertools.chain(module.named_parameters(), module.named_buffers()):
            if not t.dtype.is_floating_point:
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.add_(torch.randn(t.shape, generator=g) * 0.05)
    return module


def hf_model(with_classifier: bool = False, seed: int = 0, **config):
    """A random, eval-mode ``CvtModel`` or ``CvtForImageClassification``."""
    from transformers import CvtForImageClassification, CvtModel
    torch.manual_seed(seed)
    cls = CvtForImageClassification if with_classifier else CvtModel
    return randomize_(cls(tiny_hf_config(**config)), seed).eval()


def hf_stage_outputs(model, x):
    """Per-stage (B, C, H, W) maps of a Hugging Face CvT model."""
    with torch.no_grad():
        out = model(pixel_values=x, output_hidden_states=True, return_dict=True)
    return out.hidden_states


def cvt_for_hf(arch=TINY_ARCH, **kwargs):
    """Our CvT configured like transformers' CvT: exact GELU, no output norm or drop path."""
    from cvt_dense.models import CvT
    cfg = dict(arch=arch, act_cfg=dict(type='GELU'), out_norm=False, drop_path_rate=0.)
    cfg.update(kwargs)
    return CvT(**cfg)


def assert_stage_outputs_close(ours, reference, atol=1e-4):
    assert len(ours) == len(reference)
    for i, (a, b) in enumerate(zip(ours, reference)):
        assert a.shape == b.shape, f'stage {i}: {tuple(a.shape)} vs {tuple(b.shape)}'
        err = (a - b).abs().max().item()
        assert err < atol, f'stage {i}: max abs difference {err:.3g}'


def official_shapes(embed_dims, num_heads, depths, drop_path_rates=None):
    """Official-named state dict of meta tensors (shapes only) for any size, built by
    transformers on the meta device and renamed with our table; costs no memory.
    ``drop_path_rates`` (of a preset such as W24's) changes no shape and is ignored."""
    from transformers import CvtModel

    from cvt_dense.models.backbones.cvt.pretrained import hf_to_official_key
    with torch.device('meta'):
        model = CvtModel(tiny_hf_config(embed_dim=embed_dims, num_heads=num_heads, depth=depths,
                                        drop_path_rate=[0.0] * len(depths)))
    return {hf_to_official_key(k): v for k, v in model.state_dict().items()}

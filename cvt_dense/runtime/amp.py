"""Mixed precision for ``tools/train.py --amp`` on GPUs and CPUs.

On a GPU ``--amp`` selects mmengine's ``AmpOptimWrapper`` (fp16 autocast, dynamic loss
scaling), as mmdet's and mmseg's tools do. ``AmpOptimWrapper`` refuses to run without a GPU,
so on a CPU ``--amp`` selects :class:`CPUBF16OptimWrapper`: bfloat16 autocast around the
backbone only (where nearly all the compute of a CvT detector or segmenter is), with its
outputs cast back to fp32 for the neck and heads. The heads stay fp32 because mmcv's CPU
kernels (``nms``, ``RoIAlign``) accept only fp32. Weights and optimizer state stay fp32;
bfloat16 has fp32's exponent range, so no loss scaling is needed.
"""
from contextlib import contextmanager
from typing import Optional, Sequence

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


def _to_fp32(outputs):
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.dtype == torch.bfloat16 else outputs
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_to_fp32(o) for o in outputs)
    if isinstance(outputs, dict):
        return {k: _to_fp32(v) for k, v in outputs.items()}
    return outputs


def bf16_autocast_hooks(module: torch.nn.Module) -> list:
    """Run ``module``'s forward under CPU bf16 autocast and return fp32 outputs.

    Args:
        module (nn.Module): The module to autocast.

    Returns:
        list: The hook handles; ``remove()`` each to undo.
    """
    contexts = []

    def enter(mod, args):
        ctx = torch.autocast('cpu', dtype=torch.bfloat16)
        ctx.__enter__()
        contexts.append(ctx)

    def leave(mod, args, outputs):
        if contexts:
            contexts.pop().__exit__(None, None, None)
        return _to_fp32(outputs)

    return [module.register_forward_pre_hook(enter),
            module.register_forward_hook(leave, always_call=True)]


@OPTIM_WRAPPERS.register_module(force=True)
class CPUBF16OptimWrapper(OptimWrapper):
    """Optimizer wrapper that runs chosen submodules under CPU bfloat16 autocast.

    Args:
        autocast_modules (Sequence[str], optional): Names of the model's submodules to run
            in bfloat16 (e.g. ``('backbone',)``); None autocasts the whole forward pass,
            which fails for models whose heads use mmcv's fp32-only CPU ops (Mask R-CNN).
            Defaults to ``('backbone',)``.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, autocast_modules: Optional[Sequence[str]] = ('backbone',), **kwargs):
        super().__init__(**kwargs)
        self.autocast_modules = None if autocast_modules is None else tuple(autocast_modules)

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model):
            if self.autocast_modules is None:
                with torch.autocast('cpu', dtype=torch.bfloat16):
                    yield
                return
            net = getattr(model, 'module', model)  # unwrap DDP
            handles = []
            for name in self.autocast_modules:
                try:
                    submodule = net.get_submodule(name)
                except AttributeError as err:
                    raise AttributeError(f'CPUBF16OptimWrapper: the model has no submodule '
                                         f'{name!r} to autocast') from err
                handles += bf16_autocast_hooks(submodule)
            try:
                yield
            finally:
                for handle in handles:
                    handle.remove()


def enable_amp(cfg) -> str:
    """Switch ``cfg.optim_wrapper`` to mixed precision for the device at hand.

    Args:
        cfg (mmengine.Config): Run config, changed in place.

    Returns:
        str: The optimizer-wrapper type chosen.
    """
    wrapper = cfg.optim_wrapper
    current = wrapper.get('type', 'OptimWrapper')
    if current not in ('OptimWrapper', 'AmpOptimWrapper', 'CPUBF16OptimWrapper'):
        raise ValueError(f'--amp replaces optim_wrapper.type, but this config uses '
                         f'{current!r}; set mixed precision in the config instead')
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
        wrapper.pop('autocast_modules', None)
    else:
        print('--amp without a CUDA device: the backbone runs under bfloat16 autocast on '
              'the CPU (CPUBF16OptimWrapper); neck and heads stay fp32.')
        wrapper.type = 'CPUBF16OptimWrapper'
        wrapper.pop('loss_scale', None)
        wrapper.pop('dtype', None)
    return wrapper.type

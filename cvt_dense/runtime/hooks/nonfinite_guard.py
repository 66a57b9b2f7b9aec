"""``NonFiniteGuardHook``: a NaN/Inf loss or gradient norm never reaches the weights."""
import math
from typing import List

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import HOOKS

from ..mmengine_internals import count_skipped_backward
from .resumable_checkpoint import NONFINITE_STREAK


class NonFiniteTrainingError(RuntimeError):
    """Too many consecutive training steps had a non-finite loss or gradient norm."""


def _all_finite(value: torch.Tensor) -> bool:
    """Whether ``value`` is finite on every rank (the ranks must skip together)."""
    finite = torch.isfinite(value.detach()).all().to(torch.int32).cpu()
    if get_world_size() > 1:
        all_reduce(finite, op='min')
    return bool(finite.item())


def _grad_norm(params: List[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())


@HOOKS.register_module(force=True)
class NonFiniteGuardHook(Hook):
    """Skip optimizer updates whose loss or gradient norm is NaN or Inf.

    The run's ``OptimWrapper`` is wrapped so that a step with a non-finite total loss
    skips backward and step, and a step with a non-finite gradient norm skips the
    optimizer step; in both cases the gradients are zeroed and the buffers the forward pass
    updated (BatchNorm running statistics) are put back, so weights, buffers and optimizer
    state stay exactly as they were. The iteration still counts (learning-rate schedules
    advance). Each skipped step is logged with its iteration and the loss terms that were
    not finite; ``max_consecutive`` skipped steps in a row stop the run with
    :class:`NonFiniteTrainingError`, before any checkpoint of that iteration is written,
    so the latest checkpoint holds the last good weights. With ``AmpOptimWrapper`` only
    the loss is checked: fp16 loss scaling already skips steps with overflowing gradients.

    Args:
        max_consecutive (int): Non-finite steps in a row that stop the run. Defaults to 5.
        check_grad_norm (bool): Also check the gradient norm. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'  # before the checkpoint hook in after_train_iter

    def __init__(self, max_consecutive: int = 5, check_grad_norm: bool = True):
        if max_consecutive < 1:
            raise ValueError(f'max_consecutive must be >= 1, got {max_consecutive}')
        self.max_consecutive = max_consecutive
        self.check_grad_norm = check_grad_norm
        self._streak = 0
        self._skip_reason = None
        self._buffers = []

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, OptimWrapper):
            raise TypeError(f'NonFiniteGuardHook supports one OptimWrapper, got '
                            f'{type(wrapper).__name__}')
        self._guard(wrapper)

    def _guard(self, wrapper: OptimWrapper) -> None:
        update_params, step = wrapper.update_params, wrapper.step
        params = [p for group in wrapper.optimizer.param_groups for p in group['params']]
        check_grads = self.check_grad_norm and not isinstance(wrapper, AmpOptimWrapper)

        def guarded_update_params(loss, step_kwargs=None, zero_kwargs=None):
            if not _all_finite(loss):
                self._skip_reason = f'loss {float(loss.detach())}'
                count_skipped_backward(wrapper)
                wrapper.zero_grad(**(zero_kwargs or {}))
                return
            update_params(loss, step_kwargs, zero_kwargs)

        def guarded_step(**kwargs):
            if check_grads:
                norm = _grad_norm(params)
                if not _all_finite(norm):
                    self._skip_reason = f'gradient norm {float(norm)}'
                    return  # update_params zeroes the gradients next
            step(**kwargs)

        wrapper.update_params = guarded_update_params
        wrapper.step = guarded_step

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = getattr(runner.model, 'module', runner.model)
        self._buffers = [(b, b.detach().clone()) for b in model.buffers()]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        reason, self._skip_reason = self._skip_reason, None
        buffers, self._buffers = self._buffers, []
        if reason is None:
            if self._streak:
                runner.logger.info(f'finite loss again after {self._streak} skipped steps')
            self._streak = 0
            runner.message_hub.update_info(NONFINITE_STREAK, 0)
            return
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        self._streak += 1
        runner.message_hub.update_info(NONFINITE_STREAK, self._streak)
        terms = {k: float(v) for k, v in (outputs or {}).items()
                 if 'loss' in k and not math.isfinite(float(v))}
        detail = ', '.join(f'{k}={v}' for k, v in terms.items()) or 'all terms finite'
        message = (f'iteration {runner.iter + 1}: non-finite {reason} ({detail}); update '
                   f'skipped, weights unchanged ({self._streak} in a row)')
        runner.logger.warning(message)
        if self._streak >= self.max_consecutive:
            first = runner.iter + 2 - self._streak
            raise NonFiniteTrainingError(
                f'{self._streak} consecutive non-finite training steps (iterations '
                f'{first}-{runner.iter + 1}), last: {reason} ({detail}). Stopped; the last '
                f'good weights are in the latest checkpoint ({runner.work_dir}/'
                f'last_checkpoint). Lower the learning rate, check the data, or raise '
                f'NonFiniteGuardHook.max_consecutive.')

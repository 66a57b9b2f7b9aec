"""``CompiledTrainStepHook``: mmengine's ``compile`` option compiles the model, not the
optimizer update."""
import torch
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from mmengine.registry import HOOKS


def keep_update_eager(optim_wrapper: OptimWrapper) -> None:
    """Make ``optim_wrapper.update_params`` run eagerly inside a compiled ``train_step``.

    Args:
        optim_wrapper (OptimWrapper): The run's optimizer wrapper.
    """
    optim_wrapper.update_params = torch.compiler.disable(optim_wrapper.update_params)


@HOOKS.register_module(force=True)
class CompiledTrainStepHook(Hook):
    """With ``compile`` set in the config, run the optimizer update outside the compiled
    ``train_step``.

    mmengine's ``compile`` option wraps the whole ``model.train_step`` in
    ``torch.compile``, the optimizer wrapper's ``update_params`` (backward, gradient
    clipping, step, zero_grad) included. Dynamo (torch 2.13) cannot trace that update with
    the param groups the Runner builds from a config with ``paramwise_cfg`` (every shipped
    config): they are ``ConfigDict`` objects, and tracing stops with an internal error
    (``'UserDefinedDictVariable' object has no attribute 'items'``). Traced, it would also
    be one more graph over every parameter (``paramwise_cfg`` makes one group per
    parameter) to compile. Run eagerly, the update still runs the compiled backward of the
    compiled forward pass. Does nothing without ``compile``.

    Runs last in ``before_train`` (``LOWEST``), so it also covers what other hooks wrapped
    around ``update_params`` then (``NonFiniteGuardHook``'s check).
    """

    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        if runner.cfg.get('compile'):
            keep_update_eager(runner.optim_wrapper)
            runner.logger.info('compile: the optimizer update runs eagerly, outside the '
                               'compiled train_step (CompiledTrainStepHook)')

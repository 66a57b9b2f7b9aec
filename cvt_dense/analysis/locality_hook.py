"""``LocalityHook``: the nonlocality of every attention layer, followed during training."""
import time
from typing import Dict, List, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from ..runtime.mmengine_internals import built_loop
from .builder import dataset_batches, first_batches
from .locality import DEFAULT_CHUNK_ELEMENTS, LayerLocality, measure_locality


def locality_scalars(layers: List[LayerLocality], per_head: bool = True) -> Dict[str, float]:
    """``nonlocality/<layer>`` (pixels, mean over heads) and ``gate/<layer>`` (layers with a
    positional branch), with ``/head<i>`` entries per head when ``per_head``."""
    scalars = {}
    for layer in layers:
        for kind, values in (('nonlocality', layer.nonlocality), ('gate', layer.gate)):
            if values is None:
                continue
            scalars[f'{kind}/{layer.name}'] = values.mean().item()
            if per_head:
                scalars.update({f'{kind}/{layer.name}/head{head}': value
                                for head, value in enumerate(values.tolist())})
    return scalars


@HOOKS.register_module(force=True)
class LocalityHook(Hook):
    """Measure how local each attention head is on a fixed probe of validation images.

    Before training and every ``interval`` training iterations, the backbone (in eval
    mode, without gradients; its training mode is restored) runs on the first
    ``num_images`` images of the validation dataset, each at its own size, and
    :func:`~cvt_dense.analysis.locality.measure_locality` gives each attention layer's
    nonlocality (the ConViT paper's mean attention distance, in input pixels) and gates.
    They go to the visualizer as scalars of that iteration (``scalars.json``, TensorBoard),
    next to the losses, so ``tools/analysis/plot_curves.py`` draws them:
    ``nonlocality/<layer>`` and ``gate/<layer>`` (means over heads), ``.../head<i>``, and
    the hook's own cost, ``locality/seconds`` and ``locality/cost`` (its time as a
    fraction of the wall time of the iterations since the previous measurement). Only the
    main process measures.

    Off unless a config names it, e.g.
    ``custom_hooks = [dict(type='LocalityHook', interval=100)]``.

    Args:
        interval (int): Training iterations between measurements. Defaults to 100.
        num_images (int): Validation images in the probe. Defaults to 2.
        dataloader (dict, optional): Dataloader config whose dataset gives the probe
            images. Defaults to the run's ``val_dataloader``.
        per_head (bool): Log every head, not only the means. Defaults to True.
        max_chunk_elements (int): Attention scores computed at once (memory bound).
    """

    priority = 'BELOW_NORMAL'

    def __init__(self, interval: int = 100, num_images: int = 2,
                 dataloader: Optional[dict] = None, per_head: bool = True,
                 max_chunk_elements: int = DEFAULT_CHUNK_ELEMENTS):
        if interval < 1 or num_images < 1:
            raise ValueError(f'LocalityHook needs interval >= 1 and num_images >= 1, got '
                             f'{interval} and {num_images}')
        self.interval = interval
        self.num_images = num_images
        self.dataloader = dataloader
        self.per_head = per_head
        self.max_chunk_elements = max_chunk_elements
        self._probe: List[torch.Tensor] = []
        self._since = None

    @staticmethod
    def _model(runner) -> torch.nn.Module:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'backbone'):
            raise TypeError(f'LocalityHook needs a model with a backbone, got '
                            f'{type(model).__name__}')
        return model

    def before_train(self, runner) -> None:
        if not is_main_process():
            return
        model = self._model(runner)
        val_loop = built_loop(runner, 'val')
        if self.dataloader is None and val_loop is not None:
            batches = first_batches(val_loop.dataloader, self.num_images)
        else:
            loader_cfg = self.dataloader or runner.cfg.get('val_dataloader')
            if not loader_cfg:
                raise ValueError('LocalityHook takes its probe images from the '
                                 'val_dataloader, which this config does not have: give the '
                                 'hook a dataloader=dict(...)')
            batches = dataset_batches(loader_cfg, self.num_images)
        with torch.no_grad():
            self._probe = [model.data_preprocessor(batch, False)['inputs'] for batch in batches]
        self._measure(runner, runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if is_main_process() and self.every_n_train_iters(runner, self.interval):
            self._measure(runner, runner.iter + 1)

    def _measure(self, runner, step: int) -> None:
        start = time.perf_counter()
        layers = measure_locality(self._model(runner).backbone, self._probe,
                                  self.max_chunk_elements)
        scalars = locality_scalars(layers, self.per_head)
        seconds = time.perf_counter() - start
        scalars['locality/seconds'] = seconds
        cost = ''
        if self._since is not None:
            scalars['locality/cost'] = seconds / (start - self._since)
            cost = (f' ({100 * scalars["locality/cost"]:.1f}% of the '
                    f'{start - self._since:.1f} s since the last one)')
        # Logged as a training record of this iteration (plot_curves places it by 'iter').
        runner.visualizer.add_scalars(dict(scalars, iter=step), step=step)
        runner.logger.info(
            f'Locality at iter {step}, mean attention distance in pixels: '
            + ', '.join(f'{layer.name} {layer.nonlocality.mean():.1f}'
                        + ('' if layer.gate is None else f' (gate {layer.gate.mean():.2f})')
                        for layer in layers)
            + f'; measured on {len(self._probe)} images in {seconds:.2f} s{cost}')
        self._since = time.perf_counter()

"""Models and synthetic inputs for the analysis tools, built from a config alone.

mmdet's and mmseg's own ``get_flops.py`` read a batch from the real validation dataset;
here a batch of the chosen size is made up (random pixels plus the metadata the model's
``test_step`` reads), so no dataset has to exist on disk.
"""
import argparse
import importlib
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction

from ..config_files import task_of

# Used when the test pipeline fixes no size (the demo configs keep each image's own size).
FALLBACK_SHAPE = (224, 224)


def add_model_args(parser: argparse.ArgumentParser, shape_help: Optional[str] = None):
    """Add the analysis tools' shared options: ``--cfg-options`` and, with ``shape_help``,
    ``--shape H W``."""
    if shape_help:
        parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'), help=shape_help)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries (as in tools/train.py)')
    return parser


def read_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read an mmdet or mmseg config and apply ``--cfg-options``.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): Overrides, as from ``DictAction``.

    Returns:
        Config: The config (its ``default_scope`` checked to be mmdet or mmseg).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    task_of(cfg)
    return cfg


def build_model(cfg: Config, checkpoint: Optional[str] = None,
                device: str = 'cpu') -> torch.nn.Module:
    """The config's model in eval mode, randomly initialised or from ``checkpoint``.

    Pretrained backbone weights named in ``init_cfg`` are not loaded (``init_weights`` is
    not called), so configs whose ImageNet checkpoint is not on disk work too.

    Args:
        cfg (Config): An mmdet or mmseg config.
        checkpoint (str, optional): An mmengine checkpoint of the whole model.
        device (str): Torch device.

    Returns:
        nn.Module: The model, on ``device``, in eval mode.
    """
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.default_scope)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    model = registry.MODELS.build(cfg.model)
    if checkpoint is not None:
        load_model_checkpoint(model, checkpoint)
    return model.to(device).eval()


def load_model_checkpoint(model: torch.nn.Module, checkpoint: str) -> dict:
    """Load an mmengine checkpoint of the whole model into ``model`` (strictly).

    Args:
        model (nn.Module): The model the checkpoint was saved from.
        checkpoint (str): The checkpoint file.

    Returns:
        dict: The checkpoint's ``meta`` (``epoch``, ``iter``, ...; empty if it has none).
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
    from mmengine.runner import load_checkpoint

    from ..weights import allow_mmengine_checkpoints
    allow_mmengine_checkpoints()  # an mmengine training checkpoint, under weights_only
    loaded = load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return dict(loaded.get('meta') or {})


def dataset_batches(dataloader_cfg: dict, num_images: int) -> List[dict]:
    """The first ``num_images`` samples of a dataloader config's dataset, one batch each.

    The same images whatever the sampler and the process's rank (e.g. a fixed probe).
    Needs the config's default scope (mmdet or mmseg) to be set.

    Args:
        dataloader_cfg (dict): A dataloader config (``dataset``, ``sampler``, ...), e.g. the
            ``val_dataloader`` of an mmdet or mmseg config.
        num_images (int): How many samples.

    Returns:
        list[dict]: ``test_step`` batches of one sample, made by the loader's collate
        function.
    """
    from mmengine.runner import Runner
    return first_batches(Runner.build_dataloader(
        dict(dataloader_cfg, batch_size=1, num_workers=0, persistent_workers=False)),
        num_images)


def first_batches(loader, num_images: int) -> List[dict]:
    """The first ``num_images`` samples of a built dataloader's dataset, one batch each
    (see :func:`dataset_batches`)."""
    if not 1 <= num_images <= len(loader.dataset):
        raise ValueError(f'asked for {num_images} images of a dataset of '
                         f'{len(loader.dataset)} ({type(loader.dataset).__name__})')
    return [loader.collate_fn([loader.dataset[i]]) for i in range(num_images)]


def config_test_shape(cfg: Config) -> Tuple[Tuple[int, int], str]:
    """The (H, W) a config tests at, and where that came from.

    The ``scale`` of the test pipeline's ``Resize`` (``(w, h)``, as mmcv writes it: COCO's
    (1333, 800) gives 800x1333, ADE20K's (2048, 512) gives 512x2048, the sizes papers
    quote FLOPs at); an mmseg ``slide`` test uses its crop size instead.
    """
    test_cfg = cfg.model.get('test_cfg') or {}
    if test_cfg.get('mode') == 'slide':
        return tuple(test_cfg['crop_size']), 'model.test_cfg.crop_size (slide inference)'
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', [])
    for step in pipeline:
        if step.get('type') == 'Resize' and isinstance(step.get('scale'), (tuple, list)):
            w, h = step['scale']
            return (h, w), f'the test pipeline\'s Resize scale={tuple(step["scale"])}'
    return FALLBACK_SHAPE, 'default: the test pipeline fixes no size'


def make_batch(cfg: Config, images: Sequence[torch.Tensor]) -> dict:
    """A ``test_step`` batch of (3, H, W) uint8 images (channel order as read by mmcv).

    Each image gets the metadata mmdet's and mmseg's predict paths read (its size as
    original and resized shape, scale factor 1).

    Args:
        cfg (Config): The model's config (for the task).
        images (Sequence[Tensor]): The images.

    Returns:
        dict: ``inputs`` (the images) and ``data_samples``.
    """
    if task_of(cfg) == 'det':
        from mmdet.structures import DetDataSample as DataSample
    else:
        from mmseg.structures import SegDataSample as DataSample
    samples = []
    for image in images:
        h, w = image.shape[-2:]
        samples.append(DataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1., 1.), img_id=0,
            img_path='synthetic.png')))
    return dict(inputs=list(images), data_samples=samples)


def synthetic_batch(cfg: Config, shape: Sequence[int], batch_size: int = 1,
                    seed: int = 0) -> dict:
    """A ``test_step`` batch of random uint8 images of size ``shape`` (see :func:`make_batch`).

    Args:
        cfg (Config): The model's config (for the task).
        shape (Sequence[int]): (H, W) of each image.
        batch_size (int): Number of images.
        seed (int): Seed of the pixels.

    Returns:
        dict: ``inputs`` (list of (3, H, W) uint8 tensors) and ``data_samples``.
    """
    h, w = (int(v) for v in shape)
    if min(h, w) < 1 or batch_size < 1:
        raise ValueError(f'need a positive image shape and batch size, got {tuple(shape)} '
                         f'and {batch_size}')
    generator = torch.Generator().manual_seed(seed)
    return make_batch(cfg, [torch.randint(0, 256, (3, h, w), dtype=torch.uint8,
                                          generator=generator) for _ in range(batch_size)])

"""Command-line options and config edits shared by ``tools/train.py`` and ``tools/test.py``.

The tools follow mmdet's and mmseg's own ``tools/train.py`` / ``tools/test.py`` so that
their users find the same options, and work for configs of either library.
"""
import argparse
import contextlib
import logging
import os
import os.path as osp

import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.logging import print_log

from ..config_files import task_of
from ..runtime.checkpoint_finder import (checkpoint_problem, find_resumable_checkpoint,
                                         pointed_checkpoint)
from ..runtime.checkpoint_storage import CheckpointWriteError
from ..runtime.distributed import LAUNCHERS, setup_cpu_distributed
from ..runtime.work_dir_lock import work_dir_lock


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--work-dir``, ``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    parser.add_argument('--work-dir', help='folder for logs and checkpoints (default: '
                        'work_dirs/<config name>)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
        help='override config entries, e.g. train_cfg.max_epochs=1 '
        'model.backbone.drop_path_rate=0.2; lists as key="[a,b]" (no spaces)')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none',
                        help='job launcher: none (one process), pytorch (torchrun) or slurm')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser


def load_config(config: str, args: argparse.Namespace) -> Config:
    """Load ``config`` and apply the common options (launcher, overrides, work dir).

    Also sets ``LOCAL_RANK`` when the launcher did not, checks that the config is an mmdet
    or mmseg one, and prepares a gloo process group for distributed runs without a GPU.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
        _hooks_from_indexed_options(cfg)
    task_of(cfg)
    cfg.launcher = args.launcher
    # Priority: command line > work_dir in the config > config file name.
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(config))[0])
    setup_cpu_distributed(cfg, args.launcher)
    return cfg


def _hooks_from_indexed_options(cfg: Config) -> None:
    """Turn the ``custom_hooks`` that ``--cfg-options custom_hooks.0.type=NAME
    custom_hooks.0.KEY=VALUE ...`` spells into the list it means.

    mmengine's option syntax (``KEY.INDEX.SUB=VALUE``) edits an existing list; on a config
    without ``custom_hooks`` it makes a dict keyed ``'0'``, ``'1'``, ... instead, which the
    Runner cannot register. (A dict cannot be written as one ``--cfg-options`` value.)

    Args:
        cfg (Config): Run config, changed in place.

    Raises:
        ValueError: ``custom_hooks`` is a dict whose keys are not 0, 1, ... in some order.
    """
    hooks = cfg.get('custom_hooks')
    if not isinstance(hooks, dict):
        return
    indices = sorted(int(key) for key in hooks if str(key).isdigit())
    if indices != list(range(len(hooks))):
        raise ValueError(f'custom_hooks must be a list of hook configs; with --cfg-options '
                         f'write custom_hooks.0.type=NAME custom_hooks.0.KEY=VALUE ... '
                         f'(indices 0, 1, ...), got {hooks.to_dict()}')
    cfg.custom_hooks = [hooks[str(index)] for index in indices]


def build_runner(cfg: Config):
    """The config's runner: ``runner_type`` from the registry if set, else mmengine's Runner."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def global_rank() -> int:
    """This process's rank, before the runner sets up the process group (torchrun's
    ``RANK``, slurm's ``SLURM_PROCID``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get('RANK', os.environ.get('SLURM_PROCID', 0)))


def hold_work_dir(cfg: Config, force: bool = False):
    """A context holding the lock of the run's work dir (rank 0; see
    :mod:`cvt_dense.runtime.work_dir_lock`): a second run in the same work dir refuses to
    start. ``force`` (``--force``) takes over a lock that cannot be checked."""
    if global_rank() != 0:
        return contextlib.nullcontext()
    return work_dir_lock(cfg.work_dir, force)


def train_until_done(runner) -> int:
    """``runner.train()``; return the exit status: 0, or 1 when a checkpoint could not be
    written (the run stops with one line saying which file, why, the free and needed
    space and the checkpoint kept; see ``ResumableCheckpointHook``)."""
    try:
        runner.train()
    except CheckpointWriteError as err:
        if is_main_process():
            runner.logger.error(str(err))
        return 1
    return 0


def enable_tensorboard(cfg: Config) -> None:
    """``--tensorboard``: add mmengine's ``TensorboardVisBackend`` to the visualizer.

    Scalars (losses, learning rate, metrics) then also go to TensorBoard event files in
    ``<work_dir>/<timestamp>/vis_data/``, next to ``scalars.json``.

    Args:
        cfg (Config): Run config, changed in place.
    """
    import importlib.util
    if importlib.util.find_spec('tensorboard') is None:
        raise ImportError('--tensorboard needs the tensorboard package: pip install tensorboard')
    visualizer = cfg.get('visualizer')
    if visualizer is None:
        raise ValueError('--tensorboard needs a visualizer in the config (mmdet/mmseg '
                         'default_runtime configs have one)')
    backends = list(visualizer.get('vis_backends') or [])
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    visualizer['vis_backends'] = backends


def apply_resume(cfg: Config, resume) -> None:
    """``--resume``: ``'auto'`` resumes from the work dir's newest readable checkpoint, a
    path from that checkpoint.

    With ``'auto'``, ``last_checkpoint``'s target is used when it can be read (mmengine's
    own auto-resume); otherwise the newest readable ``*.pth`` of the work dir, with a
    warning naming each unreadable one (see :func:`find_resumable_checkpoint`).

    Args:
        cfg (Config): Run config, changed in place.
        resume (str | None): None (no resume), ``'auto'`` or a checkpoint path.

    Raises:
        FileNotFoundError: ``resume`` is a path that does not exist.
        RuntimeError: ``resume`` is a checkpoint that cannot be read, or with ``'auto'``
            none of the work dir's checkpoints can.
    """
    if resume is None:
        return
    cfg.resume = True
    if resume == 'auto':
        cfg.load_from = None
        work_dir = cfg.get('work_dir')
        found = find_resumable_checkpoint(work_dir) if work_dir and osp.isdir(work_dir) else None
        if found is not None and found != pointed_checkpoint(work_dir):
            cfg.load_from = found
            print_log(f'Resuming from {found}, the newest readable checkpoint',
                      logger='current', level=logging.WARNING)
        return
    if not osp.isfile(resume):
        raise FileNotFoundError(f'--resume checkpoint not found: {resume}')
    problem = checkpoint_problem(resume)
    if problem is not None:
        raise RuntimeError(f'--resume checkpoint {resume} cannot be read: {problem}')
    cfg.load_from = resume


def enable_show_dir(cfg: Config, show_dir: str) -> str:
    """Turn on the config's visualization hook so that testing writes pictures.

    mmdet's ``DetVisualizationHook`` writes ``<show_dir>/<image name>``; mmseg's
    ``SegVisualizationHook`` writes through the visualizer's backend into
    ``<show_dir>/vis_data/vis_image/``. ``show_dir`` is made absolute so that it does not
    land inside the run's timestamped log folder.

    Returns:
        str: The folder where the pictures will be.
    """
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise ValueError('--show-dir needs a visualization hook in the config: '
                         "default_hooks.visualization=dict(type='DetVisualizationHook') "
                         "(mmdet) or dict(type='SegVisualizationHook') (mmseg)")
    show_dir = osp.abspath(show_dir)
    hook = hooks['visualization']
    hook['draw'] = True
    if task_of(cfg) == 'det':
        hook['test_out_dir'] = show_dir
        return show_dir
    hook['interval'] = 1  # mmseg draws every `interval`-th image (default 50)
    cfg.visualizer['save_dir'] = show_dir
    return osp.join(show_dir, 'vis_data', 'vis_image')


def check_prediction_out(cfg: Config, out: str) -> None:
    """Refuse an ``--out`` path the task cannot write (before the runner is built)."""
    if task_of(cfg) == 'det' and not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out for detection must be a .pkl file, got {out!r}')


def add_prediction_dump(runner, cfg: Config, out: str) -> None:
    """``--out``: save the test predictions.

    For mmdet, ``out`` must be a ``.pkl`` file (masks RLE-encoded, mmdet's
    ``DumpDetResults``). For mmseg, a ``.pkl`` file gets the raw predictions (mmengine's
    ``DumpResults``); any other path is a folder of label PNGs (``IoUMetric(output_dir)``,
    mmseg's convention).

    Args:
        runner (mmengine.runner.Runner): The built runner (its test evaluator is extended).
        cfg (Config): The run's config (for the task).
        out (str): Output path.
    """
    check_prediction_out(cfg, out)
    is_pickle = out.endswith(('.pkl', '.pickle'))
    if task_of(cfg) == 'det':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=out))
    elif is_pickle:
        from mmengine.evaluator import DumpResults
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    else:
        from mmengine.utils import mkdir_or_exist
        iou_metrics = [m for m in runner.test_evaluator.metrics if hasattr(m, 'output_dir')]
        if not iou_metrics:
            raise ValueError('--out DIR needs an IoUMetric test evaluator; use --out FILE.pkl')
        mkdir_or_exist(out)
        for metric in iou_metrics:
            metric.output_dir = out

"""Find the train/val/test datasets of an mmdet or mmseg config and check each one."""
import os
import os.path as osp
from typing import Iterator, List, NamedTuple

from ...config_files import task_of
from .coco import check_coco
from .drawing import draw_coco, draw_semantic
from .report import Problem
from .semantic import check_semantic

WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset', 'MultiImageMixDataset')


class ScanResult(NamedTuple):
    """The check of one dataset of a config."""
    name: str
    num_samples: int
    problems: List[Problem]
    draw: object  # draw(count, folder) -> list of written files


def config_datasets(cfg) -> Iterator[tuple]:
    """(name, dataset config) for the train, val and test datasets, wrappers unwrapped and
    the test set skipped when it is the val set."""
    seen = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        stack = [(split, loader['dataset'])]
        while stack:
            name, dataset = stack.pop(0)
            if dataset.get('type') in WRAPPERS:
                stack.append((name, dataset['dataset']))
            elif 'datasets' in dataset:
                stack += [(f'{name}.{i}', d) for i, d in enumerate(dataset['datasets'])]
            elif dataset not in seen:
                seen.append(dataset)
                yield name, dataset


def _join(root, path):
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _picture(folder: str, name: str, path: str) -> str:
    return osp.join(folder, f'{name}_{osp.splitext(osp.basename(path))[0]}.png')


def scan_coco(name: str, dataset: dict) -> ScanResult:
    root = dataset.get('data_root', '')
    img_dir = _join(root, dataset.get('data_prefix', {}).get('img', ''))
    classes = (dataset.get('metainfo') or {}).get('classes')
    label = f'{name} {dataset.get("type", "CocoDataset")}'
    count, problems, samples, names = check_coco(_join(root, dataset['ann_file']),
                                                 img_dir, classes, label)

    def draw(number: int, folder: str) -> list:
        written = []
        for path, anns in list(samples.values())[:number]:
            out = _picture(folder, name, path)
            if draw_coco(path, anns, names, out):
                written.append(out)
        return written

    return ScanResult(label, count, problems, draw)


def scan_semantic(name: str, dataset_cfg: dict) -> ScanResult:
    from mmseg.registry import DATASETS
    label = f'{name} {dataset_cfg.get("type")}'
    try:
        dataset = DATASETS.build(dict(dataset_cfg, pipeline=[], lazy_init=False))
    except Exception as err:  # e.g. a missing folder: report it with the rest
        problem = Problem('unreadable dataset', label, f'{type(err).__name__}: {err}')
        return ScanResult(label, 0, [problem], lambda number, folder: [])
    meta = dataset.metainfo
    data_list = [dataset.get_data_info(i) for i in range(len(dataset))]
    problems = check_semantic(data_list, len(meta['classes']),
                              getattr(dataset, 'reduce_zero_label', False), label)

    def draw(number: int, folder: str) -> list:
        written = []
        for info in data_list[:number]:
            out = _picture(folder, name, info['img_path'])
            if draw_semantic(info['img_path'], info['seg_map_path'], meta.get('palette'),
                             out):
                written.append(out)
        return written

    return ScanResult(label, len(data_list), problems, draw)


def scan_config(cfg) -> List[ScanResult]:
    """Check every dataset of ``cfg`` (COCO-format for mmdet, mmseg datasets for mmseg)."""
    task = task_of(cfg)
    if task == 'seg':
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    results = []
    for name, dataset in config_datasets(cfg):
        if task == 'det':
            if not str(dataset.get('ann_file', '')).endswith('.json'):
                raise ValueError(f'{name} dataset: only COCO-format (.json) annotations '
                                 f'can be checked, got ann_file={dataset.get("ann_file")!r}')
            result = scan_coco(name, dataset)
        else:
            result = scan_semantic(name, dataset)
        if not result.num_samples and not result.problems:
            result.problems.append(Problem('empty dataset', result.name, 'no samples found'))
        results.append(result)
    return results


def show_samples(results: List[ScanResult], number: int, folder: str) -> list:
    """Write ``number`` pictures per dataset into ``folder``; return their paths."""
    os.makedirs(folder, exist_ok=True)
    return [path for result in results for path in result.draw(number, folder)]

"""Training curves from mmengine's ``vis_data/scalars.json`` logs.

mmengine's ``LocalVisBackend`` writes one JSON object per line: training records carry
``iter`` (and ``epoch`` in epoch-based runs) with the losses and learning rate; validation
records carry the metrics, with ``step`` = the epoch (epoch-based runs, the default
``log_metric_by_epoch=True``) or the iteration. Each run of a work dir (a resumed training
adds one) has its own ``<timestamp>/vis_data/scalars.json``; they are read in order.
"""
import json
import os.path as osp
from glob import glob
from typing import Dict, List, Sequence, Tuple

X_AXES = ('iter', 'epoch')


def scalar_files(path: str) -> List[str]:
    """The ``scalars.json`` files of a work dir (oldest run first), or ``path`` itself."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'no such work dir or scalars.json: {path}')
    files = sorted(glob(osp.join(path, 'vis_data', 'scalars.json'))
                   + glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'{path} has no vis_data/scalars.json (mmengine writes it '
                                f'with the LocalVisBackend of the config\'s visualizer)')
    return files


def load_scalars(path: str) -> List[dict]:
    """All records of a work dir's ``scalars.json`` files, in order.

    Args:
        path (str): A work dir, one run's timestamped folder, or a ``scalars.json`` file.

    Returns:
        list[dict]: The records.
    """
    records = []
    for file in scalar_files(path):
        with open(file) as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise ValueError(f'{file}:{number} is not JSON: {err}') from err
    return records


def _is_train(record: dict) -> bool:
    return 'iter' in record


def curve(records: Sequence[dict], key: str, x: str = 'iter') -> Tuple[list, list]:
    """The (x, value) points of ``key``, x in iterations or (fractional) epochs.

    Validation metrics of epoch-based runs are placed at the last iteration of their
    epoch; with ``x='epoch'`` training records are at ``iter / iterations per epoch``.
    A later record for the same x (a resumed run) replaces an earlier one.

    Args:
        records (Sequence[dict]): From :func:`load_scalars`.
        key (str): A logged scalar, e.g. ``loss`` or ``coco/bbox_mAP``.
        x (str): ``'iter'`` or ``'epoch'``.

    Returns:
        tuple[list, list]: x values (sorted) and the scalar's values; empty if never logged.
    """
    if x not in X_AXES:
        raise ValueError(f'x must be one of {X_AXES}, got {x!r}')
    train = [r for r in records if _is_train(r)]
    # Last iteration of each epoch: places epoch-stamped validation on the iteration axis.
    epoch_end = {}
    for r in train:
        if 'epoch' in r:
            epoch_end[r['epoch']] = max(epoch_end.get(r['epoch'], 0), r['iter'])
    if x == 'epoch' and not epoch_end:
        raise ValueError('these logs come from an iteration-based run (no epoch in the '
                         'training records): plot them with x = iter')
    iters_per_epoch = max(epoch_end.values()) / max(epoch_end) if epoch_end else None
    points = {}
    for r in records:
        if key not in r:
            continue
        if _is_train(r):
            pos = r['iter'] if x == 'iter' else r['iter'] / iters_per_epoch
        elif epoch_end:  # validation of an epoch-based run: step is the epoch
            pos = r['step'] if x == 'epoch' else epoch_end.get(r['step'],
                                                              r['step'] * iters_per_epoch)
        else:
            pos = r['step']
        points[pos] = r[key]
    xs = sorted(points)
    return xs, [points[p] for p in xs]


def available_keys(records: Sequence[dict]) -> List[str]:
    """Scalar keys present in the records (without the bookkeeping ones)."""
    skip = {'step', 'iter', 'epoch'}
    return sorted({k for r in records for k, v in r.items()
                   if k not in skip and isinstance(v, (int, float))})


def plot_curves(runs: Dict[str, Sequence[dict]], keys: Sequence[str], out_file: str,
                x: str = 'iter') -> str:
    """Draw one panel per key with every run overlaid; write a PNG.

    Args:
        runs (dict): Run label -> records (from :func:`load_scalars`).
        keys (Sequence[str]): Scalars to plot.
        out_file (str): Output PNG.
        x (str): ``'iter'`` or ``'epoch'``.

    Returns:
        str: ``out_file``.

    Raises:
        KeyError: A key no run logged (the message lists the keys that exist).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if not keys:
        raise ValueError('no keys to plot')
    curves = {key: {label: curve(records, key, x) for label, records in runs.items()}
              for key in keys}
    for key, by_run in curves.items():
        if not any(xs for xs, _ in by_run.values()):
            present = sorted({k for records in runs.values() for k in available_keys(records)})
            raise KeyError(f'no run logged {key!r}; logged keys: {present}')
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis('off')
    for ax, (key, by_run) in zip(axes.flat, curves.items()):
        for label, (xs, ys) in by_run.items():
            if xs:
                ax.plot(xs, ys, label=label, marker='o' if len(xs) < 30 else None,
                        markersize=3)
        ax.set_title(key)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file

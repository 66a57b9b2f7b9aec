"""The locality analysis of a run's checkpoints as a CSV and pictures (the ConViT paper's):
layer x head heatmaps of nonlocality and gates per checkpoint, and their evolution."""
import csv
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .locality import LayerLocality

UNITS = ('px', 'cells')
CSV_COLUMNS = ('checkpoint', 'iter', 'layer', 'head', 'nonlocality_px', 'nonlocality_cells',
               'content_px', 'positional_px', 'gate', 'prefix_share', 'images')


@dataclass
class CheckpointLocality:
    """The locality of every attention layer of one checkpoint.

    Args:
        label (str): Its name in the pictures and the CSV (the file's stem).
        iteration (int, optional): The training iteration it was saved at.
        layers (list[LayerLocality]): From :func:`~.locality.measure_locality`.
    """

    label: str
    iteration: Optional[int]
    layers: List[LayerLocality]


def _value(tensor, head: int):
    return '' if tensor is None else float(tensor[head])


def write_csv(results: Sequence[CheckpointLocality], out_file: str) -> str:
    """One row per checkpoint, layer and head (:data:`CSV_COLUMNS`; empty where a layer has
    no positional branch); floats written in full (``repr``), as the library gives them."""
    with open(out_file, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for result in results:
            for layer in result.layers:
                cells = layer.in_cells(layer.nonlocality)
                for head in range(len(layer.content)):
                    writer.writerow([
                        result.label, '' if result.iteration is None else result.iteration,
                        layer.name, head, float(layer.nonlocality[head]), float(cells[head]),
                        float(layer.content[head]), _value(layer.positional, head),
                        _value(layer.gate, head), float(layer.prefix_share[head]),
                        layer.images])
    return out_file


def _matrix(layers: Sequence[LayerLocality], values) -> np.ndarray:
    """(layers, most heads) array of ``values(layer)``, NaN where a layer has fewer heads."""
    rows = [values(layer).numpy() for layer in layers]
    matrix = np.full((len(rows), max(len(row) for row in rows)), np.nan)
    for i, row in enumerate(rows):
        matrix[i, :len(row)] = row
    return matrix


def _heatmap(fig, ax, matrix: np.ndarray, names: Sequence[str], title: str, cmap: str,
             fmt: str, vmin=None, vmax=None) -> None:
    import matplotlib
    colours = matplotlib.colormaps[cmap].with_extremes(bad='lightgrey')  # absent heads
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=colours, aspect='auto', vmin=vmin,
                      vmax=vmax)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xticks(range(matrix.shape[1]), [str(h) for h in range(matrix.shape[1])],
                  fontsize=7)
    ax.set_xlabel('head', fontsize=8)
    ax.set_title(title, fontsize=9)
    if matrix.size <= 240:  # numbers stay legible
        middle = np.nanmean(matrix)
        for (row, col), value in np.ndenumerate(matrix):
            if not np.isnan(value):
                ax.text(col, row, format(value, fmt), ha='center', va='center', fontsize=6,
                        color='black' if value > middle else 'white')
    fig.colorbar(image, ax=ax, fraction=0.05)


def _in_unit(layer: LayerLocality, unit: str):
    return layer.nonlocality if unit == 'px' else layer.in_cells(layer.nonlocality)


def _unit_label(unit: str) -> str:
    return 'input pixels' if unit == 'px' else 'query-grid cells'


def draw_heatmaps(result: CheckpointLocality, out_file: str, unit: str = 'px') -> str:
    """Layer x head heatmaps of one checkpoint: nonlocality, and the gates of the layers
    that have them. Writes a PNG and returns its path."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    layers = result.layers
    gated = [layer for layer in layers if layer.gate is not None]
    fig, axes = plt.subplots(1, 2 if gated else 1, squeeze=False,
                             figsize=(4.2 * (2 if gated else 1) + 1, 0.32 * len(layers) + 1.6))
    step = '' if result.iteration is None else f', iter {result.iteration}'
    _heatmap(fig, axes[0, 0], _matrix(layers, lambda layer: _in_unit(layer, unit)),
             [layer.name for layer in layers],
             f'{result.label}{step}: nonlocality ({_unit_label(unit)})', 'viridis',
             '.1f' if unit == 'px' else '.2f')
    if gated:
        _heatmap(fig, axes[0, 1], _matrix(gated, lambda layer: layer.gate),
                 [layer.name for layer in gated], 'gate sigmoid(g): weight of the positional '
                 'attention', 'magma', '.2f', vmin=0., vmax=1.)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file


def draw_evolution(results: Sequence[CheckpointLocality], out_file: str,
                   unit: str = 'px') -> str:
    """Each layer's nonlocality (mean over heads) and gate across the checkpoints, at
    their iterations (or in the given order when one has none). Writes a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    by_iteration = all(result.iteration is not None for result in results)
    xs = [result.iteration if by_iteration else i for i, result in enumerate(results)]
    names = [layer.name for layer in results[0].layers]
    gated = [i for i, layer in enumerate(results[0].layers) if layer.gate is not None]
    panels = [('nonlocality', f'mean over heads ({_unit_label(unit)})',
               lambda layer: _in_unit(layer, unit), range(len(names)))]
    if gated:
        panels.append(('gate sigmoid(g)', 'mean over heads', lambda layer: layer.gate, gated))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    colours = matplotlib.colormaps['viridis']
    for ax, (title, ylabel, values, indices) in zip(axes[0], panels):
        for i in indices:
            ax.plot(xs, [float(values(result.layers[i]).mean()) for result in results],
                    marker='o', markersize=3, color=colours(i / max(len(names) - 1, 1)),
                    label=names[i])
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_xlabel('iteration' if by_iteration else 'checkpoint', fontsize=8)
        if not by_iteration:
            ax.set_xticks(xs, [result.label for result in results], fontsize=7)
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file

"""Parameters and MACs of a whole mmdet / mmseg model, split by component.

The model runs once in ``mode='tensor'`` (what mmdet's and mmseg's ``get_flops.py`` run:
backbone, neck, heads, and for two-stage detectors the RoI heads on the RPN's proposals)
under :func:`cvt_dense.models.complexity.mac_counter`, so fused attention kernels are
counted too. Convolutions, matrix products and attention are counted; pooling,
interpolation, normalisation, RoIAlign and NMS are not (as in fvcore and mmengine).
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch

from ..models.complexity import attention_flops, mac_counter


@dataclass
class Cost:
    """Parameters and MACs of one component (or of the whole model).

    Args:
        name (str): Component name (``backbone``, ``neck``, ``rpn_head``, ... or ``total``).
        params (int): Parameter count.
        macs (float): Multiply-accumulates of one forward pass.
        attention_macs (float): The part of ``macs`` in attention (q k^T and attn v).
    """
    name: str
    params: int
    macs: float
    attention_macs: float


def _outermost(counts: Dict[str, dict], prefix: str) -> List[dict]:
    """Per-op counts of the outermost modules recorded under ``prefix``.

    A module that was entered through ``__call__`` records everything run inside it, its
    submodules included; submodules of a module whose method was called directly (mmdet's
    ``roi_head.forward``) record only their own work. Summing the outermost recorded
    modules counts each op once.
    """
    names = [n for n in counts if n == prefix or n.startswith(prefix + '.')]
    return [counts[n] for n in names
            if not any(n.startswith(other + '.') for other in names)]


def _cost(name: str, params: int, per_op_dicts: List[dict]) -> Cost:
    flops = sum(sum(d.values()) for d in per_op_dicts)
    attention = sum(attention_flops(d) for d in per_op_dicts)
    return Cost(name, params, flops / 2, attention / 2)


@torch.no_grad()
def model_complexity(model: torch.nn.Module, batch: dict) -> Tuple[List[Cost], tuple]:
    """Parameters and MACs of ``model`` on ``batch``, per top-level component and in total.

    Args:
        model (nn.Module): An mmdet or mmseg model (``BaseDetector`` / ``BaseSegmentor``).
        batch (dict): A ``test_step`` batch (``inputs`` and ``data_samples``), e.g. from
            :func:`cvt_dense.analysis.builder.synthetic_batch`.

    Returns:
        tuple: The list of :class:`Cost` (components in the model's order, then
        ``other`` if some work ran outside them, then ``total``) and the (N, C, H, W)
        shape of the preprocessed (padded) input.
    """
    data = model.data_preprocessor(batch, False)
    counter = mac_counter()
    with counter:
        model(data['inputs'], data['data_samples'], mode='tensor')
    counts = counter.get_flop_counts()
    root = type(model).__name__
    rows = [_cost(name, sum(p.numel() for p in child.parameters()),
                  _outermost(counts, f'{root}.{name}'))
            for name, child in model.named_children() if name != 'data_preprocessor']
    total = _cost('total', sum(p.numel() for p in model.parameters()), [counts['Global']])
    rest = total.macs - sum(r.macs for r in rows)
    if rest > 0:
        rest_attention = total.attention_macs - sum(r.attention_macs for r in rows)
        rows.append(Cost('other', 0, rest, rest_attention))
    return rows + [total], tuple(data['inputs'].shape)


def format_table(rows: List[Cost]) -> str:
    """A Markdown table of :func:`model_complexity` rows (M parameters, GMACs)."""
    lines = ['| component | params (M) | GMACs | attention GMACs | attention share |',
             '|---|---|---|---|---|']
    for r in rows:
        share = f'{r.attention_macs / r.macs:.0%}' if r.macs else '-'
        lines.append(f'| {r.name} | {r.params / 1e6:.2f} | {r.macs / 1e9:.2f} | '
                     f'{r.attention_macs / 1e9:.2f} | {share} |')
    return '\n'.join(lines)

"""Scanning the datasets of a config before a run (``tools/check_dataset.py``)."""
from .coco import check_coco
from .report import Problem, format_report
from .semantic import check_semantic

__all__ = ['Problem', 'check_coco', 'check_semantic', 'format_report']

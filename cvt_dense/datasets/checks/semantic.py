"""Checks of a semantic segmentation dataset: image/label pairs as mmseg lists them."""
from typing import List, Sequence

import numpy as np
from PIL import Image

from ..image_io import ImageReadError, read_image_rgb
from .report import Problem

IGNORE_INDEX = 255


def check_semantic(data_list: Sequence[dict], num_classes: int,
                   reduce_zero_label: bool = False, name: str = 'dataset') -> List[Problem]:
    """Check each image and its label PNG.

    Args:
        data_list (Sequence[dict]): mmseg's ``dataset.data_list`` (``img_path``,
            ``seg_map_path``).
        num_classes (int): Number of classes; label values must be below it (or, with
            ``reduce_zero_label``, at most it), 255 (ignore) excepted.
        reduce_zero_label (bool): Whether label 0 is dropped and the rest shifted.
        name (str): Dataset name used in the messages.

    Returns:
        list[Problem]: What is wrong.
    """
    problems = []
    seen = {}
    top = num_classes if reduce_zero_label else num_classes - 1
    for index, info in enumerate(data_list):
        img_path, seg_path = info.get('img_path'), info.get('seg_map_path')
        where = f'{name}[{index}] ({img_path})'
        if img_path in seen:
            problems.append(Problem('duplicate image', where, f'also {name}[{seen[img_path]}]'))
        seen.setdefault(img_path, index)
        try:
            size = read_image_rgb(img_path).shape[:2]
        except ImageReadError as err:
            problems.append(Problem('unreadable image', where, str(err).split(': ', 1)[1]))
            size = None
        if seg_path is None:
            continue
        try:
            with Image.open(seg_path) as label_image:
                label = np.asarray(label_image)
        except Exception as err:
            problems.append(Problem('unreadable label', where,
                                    f'{seg_path}: {type(err).__name__}: {err}'))
            continue
        if size is not None and label.shape[:2] != size:
            problems.append(Problem('size mismatch', where, f'image {size[1]}x{size[0]}, label '
                                    f'{seg_path} {label.shape[1]}x{label.shape[0]}'))
        values = np.unique(label)
        bad = [int(v) for v in values if v > top and v != IGNORE_INDEX]
        if bad:
            problems.append(Problem('label outside the classes', where,
                                    f'{seg_path} has values {bad[:10]} (classes 0..{top}, '
                                    f'ignore {IGNORE_INDEX})'))
    return problems

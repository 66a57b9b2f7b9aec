"""Checks of a COCO-format instance dataset, on the raw annotation file (mmdet's
``CocoDataset`` silently drops degenerate boxes and unknown categories)."""
import json
import os.path as osp
from collections import Counter
from typing import List, Optional, Sequence

from ..image_io import ImageReadError, read_image_rgb
from .report import Problem

BOX_TOLERANCE = 1.0  # pixels a box may stick out of the image (rounding)


def _duplicates(ids) -> List:
    return [i for i, n in Counter(ids).items() if n > 1]


def check_coco(ann_file: str, img_dir: str, classes: Optional[Sequence[str]] = None,
               name: str = 'CocoDataset') -> tuple:
    """Check a COCO instances file and its images.

    Args:
        ann_file (str): The annotation JSON.
        img_dir (str): Folder the ``file_name`` of each image is relative to.
        classes (Sequence[str], optional): Class names the config trains; annotations of
            other categories are reported. None: every category of the file.
        name (str): Dataset name used in the messages.

    Returns:
        tuple: (number of images, list of :class:`Problem`, {image id: (path, list of
        annotations)} and {category id: name} for drawing).
    """
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (OSError, ValueError) as err:
        return 0, [Problem('unreadable annotation file', f'{name} ({ann_file})',
                           f'{type(err).__name__}: {err}')], {}, {}
    problems = []
    images, annotations = coco.get('images', []), coco.get('annotations', [])
    known = {c['id'] for c in coco.get('categories', [])
             if classes is None or c['name'] in classes}
    for image_id in _duplicates(im['id'] for im in images):
        problems.append(Problem('duplicate image id', f'{name} image id {image_id}',
                                'listed more than once'))
    for ann_id in _duplicates(a['id'] for a in annotations if 'id' in a):
        problems.append(Problem('duplicate annotation id', f'{name} annotation {ann_id}',
                                'used more than once'))
    by_image = {im['id']: [] for im in images}
    for ann in annotations:
        if ann.get('image_id') not in by_image:
            problems.append(Problem('annotation of unknown image', f'{name} annotation '
                                    f'{ann.get("id")}', f'image id {ann.get("image_id")}'))
            continue
        by_image[ann['image_id']].append(ann)

    samples = {}
    for index, image in enumerate(images):
        path = osp.join(img_dir, image['file_name'])
        where = f'{name}[{index}] (id {image["id"]}, {path})'
        samples[image['id']] = (path, by_image[image['id']])
        try:
            height, width = read_image_rgb(path).shape[:2]
        except ImageReadError as err:
            problems.append(Problem('unreadable image', where, str(err).split(': ', 1)[1]))
            height, width = image.get('height'), image.get('width')
        else:
            if (image.get('width'), image.get('height')) != (width, height):
                problems.append(Problem(
                    'size mismatch', where, f'annotation says {image.get("width")}x'
                    f'{image.get("height")}, the file is {width}x{height}'))
        for ann in by_image[image['id']]:
            problems += _check_annotation(ann, where, width, height, known)
    names = {c['id']: c['name'] for c in coco.get('categories', [])}
    return len(images), problems, samples, names


def _check_annotation(ann: dict, where: str, width, height, known: set) -> List[Problem]:
    problems = []
    label = f'{where} annotation {ann.get("id")}'
    if ann.get('category_id') not in known:
        problems.append(Problem('unknown category id', label,
                                f'category_id {ann.get("category_id")}'))
    x, y, w, h = ann.get('bbox', (0, 0, 0, 0))
    if w <= 0 or h <= 0:
        problems.append(Problem('degenerate box', label, f'bbox {[x, y, w, h]}'))
    elif width and height and (x < -BOX_TOLERANCE or y < -BOX_TOLERANCE
                                or x + w > width + BOX_TOLERANCE
                                or y + h > height + BOX_TOLERANCE):
        problems.append(Problem('out-of-image box', label,
                                f'bbox {[x, y, w, h]} in a {width}x{height} image'))
    segmentation = ann.get('segmentation')
    if isinstance(segmentation, list) and (
            not segmentation or any(len(poly) < 6 for poly in segmentation)):
        problems.append(Problem('empty polygon', label,
                                'segmentation has a polygon of fewer than 3 points'))
    return problems

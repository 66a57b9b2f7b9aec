"""Pictures of samples with their annotations drawn (``check_dataset.py --show``)."""
import colorsys

import numpy as np
from PIL import Image, ImageDraw

from ..image_io import ImageReadError, read_image_rgb


def _colour(i: int) -> tuple:
    r, g, b = colorsys.hsv_to_rgb((i * 0.618) % 1.0, 0.9, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_coco(path: str, annotations: list, names: dict, out_file: str) -> bool:
    """Draw boxes, polygons and category names over the image; False if unreadable."""
    try:
        image = Image.fromarray(read_image_rgb(path))
    except ImageReadError:
        return False
    draw = ImageDraw.Draw(image)
    for ann in annotations:
        colour = _colour(ann.get('category_id', 0))
        x, y, w, h = ann.get('bbox', (0, 0, 0, 0))
        draw.rectangle([x, y, x + max(w, 0), y + max(h, 0)], outline=colour)
        for poly in ann.get('segmentation') or []:
            if isinstance(poly, list) and len(poly) >= 6:
                draw.polygon(poly, outline=colour)
        draw.text((x + 2, y + 1), str(names.get(ann.get('category_id'), '?')), fill=colour)
    image.save(out_file)
    return True


def draw_semantic(img_path: str, seg_path: str, palette, out_file: str) -> bool:
    """Blend the colour-coded label map over the image; False if either is unreadable."""
    try:
        image = read_image_rgb(img_path).astype(np.float32)
        label = np.asarray(Image.open(seg_path))
    except Exception:
        return False
    if label.shape[:2] != image.shape[:2]:
        return False
    colours = np.zeros((256, 3), np.float32)
    for value, colour in enumerate(palette or []):
        colours[value] = colour
    blended = np.where((label == 255)[..., None], image,
                       0.5 * image + 0.5 * colours[label.astype(np.uint8)])
    Image.fromarray(blended.astype(np.uint8)).save(out_file)
    return True

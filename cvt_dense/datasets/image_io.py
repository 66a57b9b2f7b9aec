"""Reading any common image file as the upright 8-bit RGB array models and visualizers expect.

``mmcv.imread`` returns None for a corrupt file (so the error surfaces later as
``cv2.error ... !_src.empty()``), ignores EXIF orientation, and passes 16-bit images on
unscaled. :func:`read_image_rgb` handles grayscale, palette, RGBA/LA (alpha dropped),
CMYK, 16-bit and float images and EXIF-rotated photos, and raises
:class:`ImageReadError` naming the file when it is missing, empty or not decodable.
"""
import os.path as osp

import numpy as np
from PIL import Image, ImageOps


class ImageReadError(OSError):
    """An image file that is missing, empty or cannot be decoded; the message names it."""


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a 16-bit, 32-bit or float image to 0..255."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        top = 1.0 if array.max(initial=0) <= 1.0 else 255.0
        return (np.clip(array / top, 0, 1) * 255 + 0.5).astype(np.uint8)
    top = 65535 if array.max(initial=0) > 255 else 255  # 16-bit data (also in 'I' mode)
    return (array.astype(np.float64) * (255 / top) + 0.5).astype(np.uint8)


def read_image_rgb(path: str) -> np.ndarray:
    """Read ``path`` as an ``(H, W, 3)`` uint8 RGB array, upright per its EXIF orientation.

    Raises:
        ImageReadError: The file is missing, empty or cannot be decoded.
    """
    if not osp.isfile(path):
        raise ImageReadError(f'{path}: image file not found')
    if osp.getsize(path) == 0:
        raise ImageReadError(f'{path}: image file is empty (0 bytes)')
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
    except Exception as err:  # PIL raises many types for corrupt data
        raise ImageReadError(f'{path}: not a readable image ({type(err).__name__}: '
                             f'{err})') from err
    if image.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'F'):
        gray = _to_uint8(np.asarray(image))
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert('RGB'))


"""Datasets shipped with the toolkit: the built-in shapes demo data, reading odd image
files, and the dataset checks of ``tools/check_dataset.py``.

Names are imported lazily so that ``python -m cvt_dense.datasets.shapes`` runs the module
once, as ``__main__``, without a second copy imported by this package.
"""
import importlib

_EXPORTS = {
    'image_io': ('ImageReadError', 'read_image_rgb'),
    'shapes': ('SEMANTIC_CLASSES', 'SEMANTIC_PALETTE', 'SHAPE_CLASSES', 'ShapesSpec',
               'generate_shapes', 'is_complete', 'render_scene'),
}
__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name):
    for module, names in _EXPORTS.items():
        if name in names:
            return getattr(importlib.import_module(f'.{module}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

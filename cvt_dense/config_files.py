"""The configs that come with cvt_dense, from an installed copy or a source checkout.

A wheel (``pip install .``, or a built ``.whl``) carries the repository's ``configs/`` in
OpenMMLab's ``.mim`` layout, ``<site-packages>/cvt_dense/.mim/configs/``; a source checkout
or an editable install uses the repository's ``configs/`` itself. From a shell::

    python -m cvt_dense.config_files                        # every runnable config
    python -m cvt_dense.config_files maskrcnn_cvt13_coco    # the path of one

:func:`task_of` tells which library a config belongs to (its ``default_scope``).
"""
import argparse
from pathlib import Path
from typing import List, Mapping

PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED_CONFIG_DIR = PACKAGE_DIR / '.mim' / 'configs'
SOURCE_CONFIG_DIR = PACKAGE_DIR.parent / 'configs'


def config_dir() -> Path:
    """The folder of the shipped configs: the installed copy's, else the source tree's.

    Raises:
        FileNotFoundError: Neither exists (a copy of the package without its configs).
    """
    for folder in (INSTALLED_CONFIG_DIR, SOURCE_CONFIG_DIR):
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f'cvt_dense configs not found: neither {INSTALLED_CONFIG_DIR} (installed wheel) nor '
        f'{SOURCE_CONFIG_DIR} (source checkout) exists; reinstall cvt_dense from a wheel or '
        f'the repository')


def list_configs() -> List[str]:
    """Names of the runnable configs, relative to :func:`config_dir`, without ``.py``.

    The ``_base_`` fragments are left out: they are parts of the others, not runnable.
    """
    root = config_dir()
    return sorted(path.relative_to(root).with_suffix('').as_posix()
                  for path in root.rglob('*.py')
                  if '_base_' not in path.relative_to(root).parts)


def config_path(name: str) -> str:
    """Absolute path of a shipped config, for ``mmengine.Config.fromfile`` or a tool.

    Args:
        name (str): The config relative to the configs folder, with or without ``.py``,
            e.g. ``'maskrcnn_cvt13_coco'`` or ``'demo/upernet_cvt13_shapes.py'``.

    Returns:
        str: The path; its ``_base_`` files are next to it.

    Raises:
        FileNotFoundError: No shipped config has that name; the message lists them.
    """
    root = config_dir()
    relative = name if name.endswith('.py') else f'{name}.py'
    path = root / relative
    if not path.is_file():
        raise FileNotFoundError(f'cvt_dense has no config {name!r} in {root}; the configs '
                                f'are: {", ".join(list_configs())}')
    return str(path)

# default_scope -> task name used by the tools.
SCOPE_TASKS = {'mmdet': 'det', 'mmseg': 'seg'}


def task_of(cfg: Mapping) -> str:
    """Task of a config: ``'det'`` for mmdet (``default_scope='mmdet'``), ``'seg'`` for mmseg.

    Args:
        cfg (Mapping): A loaded config (``mmengine.Config`` or a dict).

    Returns:
        str: ``'det'`` or ``'seg'``.

    Raises:
        ValueError: The config has no ``default_scope`` or one the tools do not support.
    """
    scope = cfg.get('default_scope')
    if scope not in SCOPE_TASKS:
        name = getattr(cfg, 'filename', None) or 'the config'
        raise ValueError(
            f'{name} has default_scope={scope!r}; cvt_dense tools need '
            f"default_scope='mmdet' (detection / instance segmentation) or "
            f"default_scope='mmseg' (semantic segmentation)")
    return SCOPE_TASKS[scope]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog='python -m cvt_dense.config_files',
        description='Print the path of a config shipped with cvt_dense, or list them all')
    parser.add_argument('name', nargs='?', help='e.g. maskrcnn_cvt13_coco or '
                        'demo/upernet_cvt13_shapes; without it, list every config')
    args = parser.parse_args(argv)
    if args.name is None:
        print(f'# {config_dir()}')
        print('\n'.join(list_configs()))
        return
    try:
        print(config_path(args.name))
    except FileNotFoundError as err:
        parser.error(str(err))


if __name__ == '__main__':
    main()

"""Built-in demo data: a small, deterministic dataset of coloured, textured shapes.

The same images serve instance segmentation (COCO format, for Mask R-CNN) and semantic
segmentation (per-pixel class index PNGs, for UperNet). Layout under ``out_dir``::

    annotations/instances_train.json   COCO instances; masks as compressed RLE
    annotations/instances_val.json
    train/000001.png ...               RGB images of varied, non-square sizes
    val/000001.png ...
    semantic/train/000001.png ...      palette PNGs: 0 = background, k = SHAPE_CLASSES[k-1]
    semantic/val/000001.png ...
    shapes_meta.json                   generation parameters; written last, marks completion

Shapes are painted one after another, so later shapes hide parts of earlier ones; every
annotation holds the *visible* mask only (visible masks never overlap), and a placement is
retried when it would hide too much of a shape already there. Image ``i`` of a split is drawn
from its own random stream seeded by ``(seed, split, i)``, so a dataset is reproduced exactly
from its parameters, and a larger one starts with the images of a smaller one.

Command line::

    python -m cvt_dense.datasets.shapes --out data/shapes --num-train 500 --num-val 100 --seed 0
"""
import argparse
import colorsys
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

SHAPE_CLASSES = ('circle', 'square', 'triangle', 'star')
# Semantic label 0 is the background; shape k (0-based) is label k + 1.
SEMANTIC_CLASSES = ('background',) + SHAPE_CLASSES
SEMANTIC_PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25))
TEXTURES = ('solid', 'stripes', 'checker', 'noise', 'gradient')
SPLITS = ('train', 'val')
META_FILE = 'shapes_meta.json'
# Bump when the drawing changes, so datasets made by an older version are regenerated.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class ShapesSpec:
    """Parameters that fully determine a generated dataset.

    Args:
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        seed (int): Base random seed.
        min_side (int): Smallest image side (height and width are drawn independently).
        max_side (int): Largest image side.
        max_objects (int): Most shapes in one image (at least one is always present).
        min_radius (float): Smallest shape radius, as a fraction of the shorter image side.
        max_radius (float): Largest shape radius, as a fraction of the shorter image side.
        min_visible (float): Fraction of its own area that must stay visible for every
            shape when later shapes overlap it.
    """
    num_train: int = 500
    num_val: int = 100
    seed: int = 0
    min_side: int = 96
    max_side: int = 160
    max_objects: int = 4
    min_radius: float = 0.12
    max_radius: float = 0.3
    min_visible: float = 0.4

    def __post_init__(self):
        problems = []
        if self.num_train < 0 or self.num_val < 0:
            problems.append(f'image counts must be >= 0 (num_train={self.num_train}, '
                            f'num_val={self.num_val})')
        if not 32 <= self.min_side <= self.max_side:
            problems.append(f'need 32 <= min_side <= max_side, got {self.min_side}, '
                            f'{self.max_side}')
        if self.max_objects < 1:
            problems.append(f'max_objects must be >= 1, got {self.max_objects}')
        if not 0 < self.min_radius <= self.max_radius <= 0.5:
            problems.append(f'need 0 < min_radius <= max_radius <= 0.5, got '
                            f'{self.min_radius}, {self.max_radius}')
        if not 0 <= self.min_visible <= 1:
            problems.append(f'min_visible must be in [0, 1], got {self.min_visible}')
        if problems:
            raise ValueError('Invalid shapes dataset parameters: ' + '; '.join(problems))

    def num_images(self, split: str) -> int:
        return {'train': self.num_train, 'val': self.num_val}[split]

    def to_meta(self) -> dict:
        return dict(generator_version=GENERATOR_VERSION, classes=list(SHAPE_CLASSES),
                    **asdict(self))


# --- geometry ---------------------------------------------------------------------------

def shape_outline(name: str, cx: float, cy: float, r: float, angle: float) -> List[tuple]:
    """Polygon vertices of a shape with circumradius ``r`` rotated by ``angle`` (radians).

    Circles are returned as their bounding box ``[(x0, y0), (x1, y1)]``.
    """
    if name == 'circle':
        return [(cx - r, cy - r), (cx + r, cy + r)]
    if name == 'square':
        angles, radii = angle + np.arange(4) * np.pi / 2, np.full(4, r)
    elif name == 'triangle':
        angles, radii = angle + np.arange(3) * 2 * np.pi / 3, np.full(3, r)
    elif name == 'star':
        angles = angle + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
    else:
        raise ValueError(f'Unknown shape {name!r}; known shapes are {SHAPE_CLASSES}')
    return [(cx + rr * np.cos(a), cy + rr * np.sin(a)) for a, rr in zip(angles, radii)]


def rasterize(name: str, cx: float, cy: float, r: float, angle: float,
              size: Tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of a shape on an image of ``size = (H, W)``."""
    h, w = size
    canvas = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    outline = shape_outline(name, cx, cy, r, angle)
    if name == 'circle':
        draw.ellipse(outline, fill=1)
    else:
        draw.polygon(outline, fill=1)
    return np.asarray(canvas, dtype=bool)


# --- appearance -------------------------------------------------------------------------

def random_colour(rng: np.random.Generator, sat: Tuple[float, float],
                  val: Tuple[float, float]) -> np.ndarray:
    """RGB colour in [0, 255] with a uniform hue and saturation/value in the given ranges."""
    rgb = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*sat), rng.uniform(*val))
    return np.array(rgb) * 255.


def texture(kind: str, colour: np.ndarray, size: Tuple[int, int],
            rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float image filled with ``colour`` in pattern ``kind``."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    theta = rng.uniform(0, np.pi)
    along = xx * np.cos(theta) + yy * np.sin(theta)
    shade = colour * rng.uniform(0.55, 0.75)
    if kind == 'solid':
        weight = np.zeros((h, w))
    elif kind == 'stripes':
        weight = (np.floor(along / rng.uniform(3, 8)) % 2)
    elif kind == 'checker':
        cell = rng.uniform(4, 10)
        weight = (np.floor(xx / cell) + np.floor(yy / cell)) % 2
    elif kind == 'noise':
        return colour + rng.normal(0, 18, (h, w, 3))
    elif kind == 'gradient':
        weight = (along - along.min()) / max(np.ptp(along), 1.)
    else:
        raise ValueError(f'Unknown texture {kind!r}; known textures are {TEXTURES}')
    weight = weight[..., None]
    return colour * (1 - weight) + shade * weight


def background(size: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Dark, low-saturation background with a soft gradient and mild noise."""
    h, w = size
    c0 = random_colour(rng, (0., 0.35), (0.05, 0.3))
    c1 = random_colour(rng, (0., 0.35), (0.05, 0.3))
    yy, xx = np.mgrid[0:h, 0:w]
    theta = rng.uniform(0, 2 * np.pi)
    along = xx * np.cos(theta) + yy * np.sin(theta)
    t = ((along - along.min()) / max(np.ptp(along), 1.))[..., None]
    return c0 * (1 - t) + c1 * t + rng.normal(0, 6, (h, w, 3))


# --- scenes -----------------------------------------------------------------------------

def render_scene(spec: ShapesSpec, rng: np.random.Generator
                 ) -> Tuple[np.ndarray, List[Dict]]:
    """Draw one image.

    Returns:
        tuple: ``(image, objects)``: a (H, W, 3) uint8 RGB image and, in painting order, a
        list of ``dict(label=int, mask=bool (H, W) visible mask, full_area=int)`` with
        ``label`` the 0-based index into ``SHAPE_CLASSES`` and ``full_area`` the pixel count
        of the whole shape before later shapes covered parts of it.
    """
    h, w = (int(v) for v in rng.integers(spec.min_side, spec.max_side + 1, size=2))
    image = background((h, w), rng)
    short = min(h, w)
    objects: List[Dict] = []
    target = int(rng.integers(1, spec.max_objects + 1))
    for _ in range(target * 10):  # placement attempts
        if len(objects) == target:
            break
        label = int(rng.integers(len(SHAPE_CLASSES)))
        r = rng.uniform(spec.min_radius, spec.max_radius) * short
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        mask = rasterize(SHAPE_CLASSES[label], cx, cy, r, rng.uniform(0, 2 * np.pi), (h, w))
        kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
        fill = texture(kind, random_colour(rng, (0.55, 1.), (0.75, 1.)), (h, w), rng)
        remaining = [o['mask'] & ~mask for o in objects]
        if any(rem.sum() < spec.min_visible * obj['full_area']
               for obj, rem in zip(objects, remaining)):
            continue
        for obj, rem in zip(objects, remaining):
            obj['mask'] = rem
        objects.append(dict(label=label, mask=mask, full_area=int(mask.sum())))
        image[mask] = fill[mask]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), objects


def semantic_map(objects: List[Dict], size: Tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 class map: 0 background, ``label + 1`` where a shape is visible."""
    seg = np.zeros(size, dtype=np.uint8)
    for obj in objects:
        seg[obj['mask']] = obj['label'] + 1
    return seg


def coco_annotation(obj: Dict, ann_id: int, image_id: int) -> dict:
    """COCO instance annotation of one visible mask (compressed RLE, tight bbox)."""
    from pycocotools import mask as mask_utils
    mask = obj['mask']
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]
    return dict(id=ann_id, image_id=image_id, category_id=obj['label'] + 1,
                segmentation=rle, area=float(mask.sum()), bbox=bbox, iscrowd=0)


# --- writing ----------------------------------------------------------------------------

def _palette_png(seg: np.ndarray) -> Image.Image:
    img = Image.fromarray(seg)  # mode 'L'; putpalette turns it into 'P'
    flat = [c for rgb in SEMANTIC_PALETTE for c in rgb]
    img.putpalette(flat + [0] * (768 - len(flat)))
    return img


def write_split(out_dir: Path, spec: ShapesSpec, split: str) -> dict:
    """Render and write all images of ``split``; returns its COCO dict (also written)."""
    split_id = SPLITS.index(split)
    img_dir, sem_dir = out_dir / split, out_dir / 'semantic' / split
    img_dir.mkdir(parents=True, exist_ok=True)
    sem_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(spec.num_images(split)):
        rng = np.random.default_rng([spec.seed, split_id, i])
        image, objects = render_scene(spec, rng)
        image_id, name = i + 1, f'{i + 1:06d}.png'
        Image.fromarray(image).save(img_dir / name)
        _palette_png(semantic_map(objects, image.shape[:2])).save(sem_dir / name)
        images.append(dict(id=image_id, file_name=name, height=image.shape[0],
                           width=image.shape[1]))
        for obj in objects:
            annotations.append(coco_annotation(obj, len(annotations) + 1, image_id))
    coco = dict(
        info=dict(description='cvt_dense built-in shapes demo dataset', **spec.to_meta()),
        images=images, annotations=annotations,
        categories=[dict(id=k + 1, name=n, supercategory='shape')
                    for k, n in enumerate(SHAPE_CLASSES)])
    ann_dir = out_dir / 'annotations'
    ann_dir.mkdir(parents=True, exist_ok=True)
    (ann_dir / f'instances_{split}.json').write_text(json.dumps(coco))
    return coco


def is_complete(out_dir, spec: ShapesSpec) -> bool:
    """Whether ``out_dir`` already holds a finished dataset made with exactly ``spec``."""
    meta = Path(out_dir) / META_FILE
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()) == spec.to_meta()
    except json.JSONDecodeError:
        return False


def generate_shapes(out_dir='data/shapes', num_train: int = 500, num_val: int = 100,
                    seed: int = 0, force: bool = False, verbose: bool = True,
                    **kwargs) -> Path:
    """Make the shapes dataset in ``out_dir`` unless an identical one is already there.

    Args:
        out_dir (str | Path): Output folder. Defaults to ``data/shapes``.
        num_train (int): Training images. Defaults to 500.
        num_val (int): Validation images. Defaults to 100.
        seed (int): Random seed. Defaults to 0.
        force (bool): Regenerate even when a complete dataset with the same parameters
            exists. Defaults to False.
        verbose (bool): Print what was done. Defaults to True.
        **kwargs: Further :class:`ShapesSpec` fields (``min_side``, ``max_objects``, ...).

    Returns:
        Path: ``out_dir``.
    """
    out_dir = Path(out_dir)
    spec = ShapesSpec(num_train=num_train, num_val=num_val, seed=seed, **kwargs)
    if not force and is_complete(out_dir, spec):
        if verbose:
            print(f'Shapes dataset already complete in {out_dir} (seed {seed}, '
                  f'{num_train} train / {num_val} val images); nothing to do.')
        return out_dir
    start = time.time()
    # Remove only what this generator writes, never other files in out_dir.
    (out_dir / META_FILE).unlink(missing_ok=True)
    for sub in SPLITS + ('semantic', 'annotations'):
        if (out_dir / sub).is_dir():
            shutil.rmtree(out_dir / sub)
    counts = {split: len(write_split(out_dir, spec, split)['annotations']) for split in SPLITS}
    (out_dir / META_FILE).write_text(json.dumps(spec.to_meta(), indent=2))
    if verbose:
        print(f'Generated shapes dataset in {out_dir} in {time.time() - start:.1f} s: '
              f'{num_train} train images ({counts["train"]} shapes), {num_val} val images '
              f'({counts["val"]} shapes), classes {", ".join(SHAPE_CLASSES)}.')
    return out_dir


def parse_args(argv=None):
    defaults = ShapesSpec()
    p = argparse.ArgumentParser(description='Generate the built-in shapes demo dataset '
                                '(COCO instances + semantic masks).')
    p.add_argument('--out', default='data/shapes', help='output folder (default data/shapes)')
    p.add_argument('--num-train', type=int, default=defaults.num_train)
    p.add_argument('--num-val', type=int, default=defaults.num_val)
    p.add_argument('--seed', type=int, default=defaults.seed)
    p.add_argument('--min-side', type=int, default=defaults.min_side)
    p.add_argument('--max-side', type=int, default=defaults.max_side)
    p.add_argument('--max-objects', type=int, default=defaults.max_objects)
    p.add_argument('--force', action='store_true', help='regenerate even if complete')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    generate_shapes(args.out, num_train=args.num_train, num_val=args.num_val, seed=args.seed,
                    force=args.force, min_side=args.min_side, max_side=args.max_side,
                    max_objects=args.max_objects)


if __name__ == '__main__':
    main()

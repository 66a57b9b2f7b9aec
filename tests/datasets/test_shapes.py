"""The built-in shapes dataset: determinism, COCO validity, occlusion, semantic masks."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from cvt_dense.datasets import shapes
from cvt_dense.datasets.shapes import ShapesSpec, generate_shapes, render_scene

# A handful of tiny images: enough objects to exercise occlusion, fast to generate.
TINY = dict(num_train=6, num_val=3, seed=3, min_side=48, max_side=80, max_objects=4)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return generate_shapes(tmp_path_factory.mktemp('shapes') / 'data', verbose=False, **TINY)


def split_files(root: Path):
    return sorted(p.relative_to(root) for p in root.rglob('*') if p.is_file())


def instance_masks(coco: COCO, image_id: int):
    anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
    return anns, [coco.annToMask(a).astype(bool) for a in anns]


def test_layout_and_counts(dataset):
    for split, n in (('train', TINY['num_train']), ('val', TINY['num_val'])):
        coco = json.loads((dataset / 'annotations' / f'instances_{split}.json').read_text())
        assert len(coco['images']) == n
        assert [c['name'] for c in coco['categories']] == list(shapes.SHAPE_CLASSES)
        for img in coco['images']:
            assert (dataset / split / img['file_name']).is_file()
            assert (dataset / 'semantic' / split / img['file_name']).is_file()


def test_same_seed_gives_identical_files(dataset, tmp_path):
    again = generate_shapes(tmp_path / 'again', verbose=False, **TINY)
    files = split_files(dataset)
    assert files == split_files(again)
    for rel in files:
        assert (dataset / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_other_seed_gives_other_images(dataset, tmp_path):
    other = generate_shapes(tmp_path / 'other', verbose=False, **dict(TINY, seed=4))
    name = Path('train') / '000001.png'
    assert (dataset / name).read_bytes() != (other / name).read_bytes()


def test_images_are_prefix_stable(dataset, tmp_path):
    # Image i depends only on (seed, split, i): a smaller dataset is a prefix of a larger.
    small = generate_shapes(tmp_path / 'small', verbose=False, **dict(TINY, num_train=2))
    for name in ('000001.png', '000002.png'):
        assert (small / 'train' / name).read_bytes() == (dataset / 'train' / name).read_bytes()


def test_coco_annotations_match_masks(dataset):
    for split in ('train', 'val'):
        coco = COCO(str(dataset / 'annotations' / f'instances_{split}.json'))
        num_anns = 0
        for image_id, info in coco.imgs.items():
            anns, masks = instance_masks(coco, image_id)
            assert anns, f'{split} image {image_id} has no shapes'
            for ann, mask in zip(anns, masks):
                num_anns += 1
                assert mask.shape == (info['height'], info['width'])
                assert ann['iscrowd'] == 0
                assert 1 <= ann['category_id'] <= len(shapes.SHAPE_CLASSES)
                assert ann['area'] == mask.sum() > 0
                assert ann['area'] == mask_utils.area(ann['segmentation'])
                ys, xs = np.nonzero(mask)
                x, y, w, h = ann['bbox']
                # Tight box: encloses every mask pixel and touches the mask on each side.
                assert (x, y) == (xs.min(), ys.min())
                assert (x + w - 1, y + h - 1) == (xs.max(), ys.max())
        assert num_anns == len(coco.anns) and len(set(coco.anns)) == num_anns
        assert min(coco.anns) >= 1  # COCOeval treats annotation id 0 as "unmatched"


def test_visible_masks_are_disjoint_and_match_semantic_map(dataset):
    coco = COCO(str(dataset / 'annotations' / 'instances_train.json'))
    for image_id, info in coco.imgs.items():
        anns, masks = instance_masks(coco, image_id)
        stacked = np.stack(masks)
        assert stacked.sum(0).max() <= 1, f'visible masks overlap in image {image_id}'
        expected = np.zeros(stacked.shape[1:], dtype=np.uint8)
        for ann, mask in zip(anns, masks):
            expected[mask] = ann['category_id']
        semantic = np.array(Image.open(dataset / 'semantic' / 'train' / info['file_name']))
        np.testing.assert_array_equal(semantic, expected)


def test_images_are_rgb_and_not_square(dataset):
    sizes = set()
    for split in ('train', 'val'):
        coco = json.loads((dataset / 'annotations' / f'instances_{split}.json').read_text())
        for img in coco['images']:
            with Image.open(dataset / split / img['file_name']) as im:
                assert im.mode == 'RGB'
                assert im.size == (img['width'], img['height'])
            assert TINY['min_side'] <= min(im.size) <= max(im.size) <= TINY['max_side']
            sizes.add(im.size)
    assert any(w != h for w, h in sizes)
    assert len(sizes) > 1


def test_render_scene_occludes_but_keeps_the_visible_fraction():
    spec = ShapesSpec(min_side=64, max_side=64, max_objects=6, min_visible=0.5)
    occluded = 0
    for i in range(20):
        image, objects = render_scene(spec, np.random.default_rng([0, 0, i]))
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert 1 <= len(objects) <= spec.max_objects
        assert sum(o['mask'].astype(int) for o in objects).max() <= 1
        for obj in objects:
            assert obj['mask'].sum() >= spec.min_visible * obj['full_area']
        occluded += sum(o['mask'].sum() < o['full_area'] for o in objects)
        # The last shape painted is never covered.
        assert objects[-1]['mask'].sum() == objects[-1]['full_area']
    assert occluded > 0, 'no shape was partly hidden in 20 crowded scenes'


def test_second_run_is_skipped_and_changed_parameters_regenerate(dataset, tmp_path):
    out = generate_shapes(tmp_path / 'd', verbose=False, **dict(TINY, num_train=2, num_val=1))
    marker = out / shapes.META_FILE
    stamp = marker.stat().st_mtime_ns
    (out / 'train' / 'extra.txt').write_text('left alone when nothing changes')
    generate_shapes(out, verbose=False, **dict(TINY, num_train=2, num_val=1))
    assert marker.stat().st_mtime_ns == stamp
    assert (out / 'train' / 'extra.txt').exists()
    generate_shapes(out, verbose=False, **dict(TINY, num_train=3, num_val=1))
    assert len(list((out / 'train').glob('*.png'))) == 3
    assert json.loads(marker.read_text())['num_train'] == 3


def test_incomplete_dataset_is_regenerated(tmp_path):
    out = generate_shapes(tmp_path / 'd', verbose=False, **dict(TINY, num_train=2, num_val=1))
    (out / shapes.META_FILE).unlink()  # as if interrupted before the marker was written
    (out / 'train' / '000002.png').unlink()
    assert not shapes.is_complete(out, ShapesSpec(**dict(TINY, num_train=2, num_val=1)))
    generate_shapes(out, verbose=False, **dict(TINY, num_train=2, num_val=1))
    assert (out / 'train' / '000002.png').is_file()


@pytest.mark.parametrize('bad', [dict(num_train=-1), dict(min_side=10),
                                 dict(min_side=100, max_side=90), dict(max_objects=0),
                                 dict(min_radius=0.4, max_radius=0.2), dict(min_visible=2)])
def test_bad_parameters_raise(bad):
    with pytest.raises(ValueError, match='Invalid shapes dataset parameters'):
        ShapesSpec(**bad)


def test_cli_writes_dataset(tmp_path, capsys):
    shapes.main(['--out', str(tmp_path / 'cli'), '--num-train', '2', '--num-val', '1',
                 '--seed', '1', '--min-side', '48', '--max-side', '64'])
    assert 'Generated shapes dataset' in capsys.readouterr().out
    meta = json.loads((tmp_path / 'cli' / shapes.META_FILE).read_text())
    assert (meta['num_train'], meta['num_val'], meta['seed']) == (2, 1, 1)


REPO = Path(__file__).resolve().parents[2]


def demo_dataset_cfg(config: str, root: Path, split: str):
    from mmengine.config import Config
    cfg = Config.fromfile(REPO / 'configs' / 'demo' / config)
    loader = cfg.train_dataloader if split == 'train' else cfg.test_dataloader
    return cfg, dict(loader.dataset, data_root=str(root))


def test_mmdet_reads_it_through_the_demo_config(dataset):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg, ds_cfg = demo_dataset_cfg('maskrcnn_cvt13_shapes.py', dataset, 'train')
    assert tuple(cfg.classes) == shapes.SHAPE_CLASSES
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == TINY['num_train']
    coco = COCO(str(dataset / 'annotations' / 'instances_train.json'))
    item = ds[0]
    sample = item['data_samples']
    _, masks = instance_masks(coco, sample.img_id)
    gt_masks = sample.gt_instances.masks.to_ndarray().astype(bool)
    if sample.flip:  # RandomFlip may have mirrored the sample horizontally
        gt_masks = gt_masks[:, :, ::-1]
    np.testing.assert_array_equal(gt_masks, np.stack(masks))
    assert item['inputs'].shape[1:] == masks[0].shape


def test_mmseg_reads_it_through_the_demo_config(dataset):
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg, ds_cfg = demo_dataset_cfg('upernet_cvt13_shapes.py', dataset, 'val')
    assert tuple(cfg.classes) == shapes.SEMANTIC_CLASSES
    assert [tuple(c) for c in cfg.palette] == list(shapes.SEMANTIC_PALETTE)
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == TINY['num_val']
    sample = ds[0]['data_samples']
    semantic = np.array(Image.open(dataset / 'semantic' / 'val' / '000001.png'))
    np.testing.assert_array_equal(sample.gt_sem_seg.data[0].numpy(), semantic)

"""Curves from mmengine's scalars.json: x axes, resumed runs, errors, the PNG."""
import json

import pytest
from PIL import Image

from cvt_dense.analysis.curves import curve, load_scalars, plot_curves

# An epoch-based run, 3 iterations per epoch, validated after epochs 1 and 2 (mmengine
# stamps those records with step = epoch).
EPOCH_RUN = [
    *[dict(epoch=1, iter=i, step=i, loss=1.0 / i, lr=0.1) for i in (1, 2, 3)],
    {'coco/bbox_mAP': 0.1, 'step': 1},
    *[dict(epoch=2, iter=i, step=i, loss=1.0 / i, lr=0.1) for i in (4, 5, 6)],
    {'coco/bbox_mAP': 0.3, 'step': 2},
]
ITER_RUN = [dict(iter=i, step=i, loss=2.0 / i) for i in (1, 2, 3, 4)] + [{'mIoU': 40., 'step': 4}]


def write_run(folder, timestamp, records):
    path = folder / timestamp / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    return path


def test_epoch_run_on_both_axes():
    assert curve(EPOCH_RUN, 'coco/bbox_mAP', 'iter') == ([3, 6], [0.1, 0.3])
    assert curve(EPOCH_RUN, 'coco/bbox_mAP', 'epoch') == ([1, 2], [0.1, 0.3])
    xs, ys = curve(EPOCH_RUN, 'loss', 'epoch')
    assert xs == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])
    assert ys[-1] == pytest.approx(1 / 6)


def test_iteration_run():
    assert curve(ITER_RUN, 'mIoU') == ([4], [40.])
    with pytest.raises(ValueError, match='iteration-based'):
        curve(ITER_RUN, 'loss', 'epoch')


def test_resumed_run_is_joined_in_order(tmp_path):
    write_run(tmp_path, '20260101_000000', EPOCH_RUN[:4])
    write_run(tmp_path, '20260101_010000', EPOCH_RUN[4:])
    records = load_scalars(str(tmp_path))
    assert curve(records, 'loss')[0] == [1, 2, 3, 4, 5, 6]


def test_plot_writes_a_png_and_names_missing_keys(tmp_path):
    runs = {'a': EPOCH_RUN, 'b': [dict(r, loss=r.get('loss', 0) * 2) for r in EPOCH_RUN]}
    out = plot_curves(runs, ['loss', 'coco/bbox_mAP'], str(tmp_path / 'c.png'), x='epoch')
    with Image.open(out) as image:
        assert image.size[0] > 600 and image.size[1] > 200
    with pytest.raises(KeyError, match=r"'mAP'.*coco/bbox_mAP"):
        plot_curves(runs, ['mAP'], str(tmp_path / 'd.png'))


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='no vis_data/scalars.json'):
        load_scalars(str(tmp_path))
    bad = write_run(tmp_path, 'x', [])
    bad.write_text('{"loss": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r'scalars.json:2 is not JSON'):
        load_scalars(str(tmp_path))

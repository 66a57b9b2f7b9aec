"""mmdet's DetInferencer and mmseg's MMSegInferencer with our configs and checkpoints.

Tiny models of the demo configs, their state dicts saved as a checkpoint (as a training
run writes it, with the classes). Each inferencer's prediction must be the one of a model
that we load with the same weights ourselves and run through the library's classic API
(``inference_detector`` / ``inference_model``): a wrong or missing weight load changes it.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from cvt_dense.datasets import generate_shapes

REPO = Path(__file__).resolve().parents[2]
TINY_CVT = dict(_delete_=True, embed_dims=[16, 32, 64], num_heads=[1, 1, 2], depths=[1, 1, 1])
TASKS = {
    'det': dict(config='configs/demo/maskrcnn_cvt13_shapes.py',
                tiny={'model.backbone.arch': TINY_CVT, 'model.neck.in_channels': [16, 32, 64]}),
    'seg': dict(config='configs/demo/upernet_cvt13_shapes.py',
                tiny={'model.backbone.arch': TINY_CVT,
                      'model.decode_head.in_channels': [16, 32, 64],
                      'model.decode_head.channels': 16, 'model.auxiliary_head.in_channels': 64,
                      'model.auxiliary_head.channels': 16}),
}


@pytest.fixture(scope='module')
def image(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(root, num_train=1, num_val=1, seed=0, verbose=False)
    return str(next((root / 'val').glob('*.png')))


def tiny_config(task: str) -> Config:
    cfg = Config.fromfile(str(REPO / TASKS[task]['config']))
    cfg.merge_from_dict(TASKS[task]['tiny'])
    return cfg


def model_and_checkpoint(cfg: Config, path: Path):
    """A randomly initialised model and a checkpoint of its weights, as mmengine saves it."""
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmseg.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    meta = dict(classes=cfg.metainfo['classes'], palette=cfg.metainfo.get('palette'))
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=meta)), path)
    model.cfg = cfg  # what the classic APIs read the test pipeline from
    model.dataset_meta = meta
    return model.eval(), str(path)


def test_det_inferencer(image, tmp_path):
    from mmdet.apis import DetInferencer, inference_detector
    cfg = tiny_config('det')
    model, checkpoint = model_and_checkpoint(cfg, tmp_path / 'det.pth')
    inferencer = DetInferencer(model=cfg, weights=checkpoint, device='cpu')
    result = inferencer(image, return_datasamples=True, out_dir=str(tmp_path / 'out'),
                        pred_score_thr=0.)
    predicted = result['predictions'][0].pred_instances
    expected = inference_detector(model, image).pred_instances
    assert len(expected) > 0
    torch.testing.assert_close(predicted.bboxes, expected.bboxes)
    torch.testing.assert_close(predicted.scores, expected.scores)
    assert torch.equal(predicted.masks, expected.masks)
    assert inferencer.model.dataset_meta['classes'] == cfg.metainfo['classes']
    assert (tmp_path / 'out' / 'vis' / Path(image).name).is_file()


def test_mmseg_inferencer(image, tmp_path):
    from mmseg.apis import MMSegInferencer, inference_model
    cfg = tiny_config('seg')
    model, checkpoint = model_and_checkpoint(cfg, tmp_path / 'seg.pth')
    inferencer = MMSegInferencer(model=cfg, weights=checkpoint, device='cpu')
    result = inferencer(image, return_datasamples=True, out_dir=str(tmp_path / 'out'))
    expected = inference_model(model, image)
    torch.testing.assert_close(result.seg_logits.data, expected.seg_logits.data)
    assert torch.equal(result.pred_sem_seg.data, expected.pred_sem_seg.data)
    assert inferencer.model.dataset_meta['classes'] == cfg.metainfo['classes']
    assert (tmp_path / 'out' / 'vis' / Path(image).name).is_file()

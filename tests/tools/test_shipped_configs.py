"""Every full-size config added for the published recipes trains 2 iterations and tests,
with tools/train.py and tools/test.py, on the tiny shapes data.

Each config keeps its own model (heads, necks, cascade stages), optimizer (layer decay,
mixed precision through ``--amp``, which on a CPU is bfloat16 autocast) and schedule; only
the backbone is shrunk (``--cfg-options``, as the other tool tests do), the data,
evaluators and data preprocessor are the demo configs' (COCO/ADE20K are not here, and
1024x1024 LSJ padding would cost minutes on a CPU), and the heads' ``num_classes`` follow
the data; detectors sample the demo's few proposals and RoIs (Cascade's three 4conv
heads on mmdet's 512 RoIs per image took 100 s). The tools run in this process: a
subprocess per run would double the time.
"""
import importlib.util
import re

import pytest
import torch
from mmengine.config import Config
from tools_e2e import (CONVIT_DET_TINY, CONVIT_SEG_TINY, DET_CONFIG, DET_TINY, REPO,
                       SEG_CONFIG, SEG_TINY, TOOLS, TRAIN_ONLY)

CONFIG_DIR = REPO / 'configs'
CONVIT_SEG_SLIM = [*CONVIT_SEG_TINY, 'model.neck.out_channels=32',
                   'model.decode_head.in_channels=[32,32,32,32]', 'model.decode_head.channels=32',
                   'model.auxiliary_head.in_channels=32', 'model.auxiliary_head.channels=16']
# config -> (demo config of its task, tiny backbone overrides, needs --amp)
CONFIGS = {
    'maskrcnn_cvt21_coco_3x': (DET_CONFIG, DET_TINY, False),
    'cascade_maskrcnn_cvt13_coco_3x': (DET_CONFIG, DET_TINY, True),
    'maskrcnn_cvtw24_coco': (DET_CONFIG, DET_TINY, False),
    'maskrcnn_convit_tiny_coco': (DET_CONFIG, CONVIT_DET_TINY, False),
    'maskrcnn_convit_base_coco': (DET_CONFIG, CONVIT_DET_TINY, False),
    'maskrcnn_convit_small_simplefpn_lsj-100e_coco': (DET_CONFIG, CONVIT_DET_TINY, True),
    'upernet_cvtw24_ade20k': (SEG_CONFIG, SEG_TINY, False),
    'upernet_convit_tiny_ade20k': (SEG_CONFIG, CONVIT_SEG_SLIM, False),
    'upernet_convit_small_ade20k': (SEG_CONFIG, CONVIT_SEG_SLIM, False),
    'upernet_convit_base_ade20k': (SEG_CONFIG, CONVIT_SEG_SLIM, False),
}
DEMO_PARTS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
              'test_evaluator')


def tool(name: str):
    spec = importlib.util.spec_from_file_location(f'cvt_dense_tool_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def set_num_classes(node, num_classes: int) -> int:
    """Set every ``num_classes`` under ``node`` (heads, cascade stages); returns how many."""
    found = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'num_classes':
                node[key] = num_classes
                found += 1
            else:
                found += set_num_classes(value, num_classes)
    elif isinstance(node, list):
        found += sum(set_num_classes(item, num_classes) for item in node)
    return found


def few_proposals_and_rois(model: dict) -> None:
    """The demo's proposal and RoI counts, in every stage of a (cascade) detector."""
    train, test = model.train_cfg, model.test_cfg
    train.rpn_proposal.update(nms_pre=1000, max_per_img=100)
    for stage in train.rcnn if isinstance(train.rcnn, list) else [train.rcnn]:
        stage.sampler.num = 32
    test.rpn.update(nms_pre=500, max_per_img=100)
    test.rcnn.max_per_img = 20


def on_demo_data(name: str, demo_config: str, folder) -> str:
    cfg = Config.fromfile(str(CONFIG_DIR / f'{name}.py'))
    demo = Config.fromfile(demo_config)
    for key in DEMO_PARTS:
        cfg[key] = demo[key]
    cfg.model.data_preprocessor = demo.model.data_preprocessor
    if cfg.default_scope == 'mmdet':
        few_proposals_and_rois(cfg.model)
    cfg.model.backbone.init_cfg = None  # no ImageNet download
    assert set_num_classes(cfg.model, demo.num_classes) >= 2  # decode/box head and aux/mask
    path = folder / f'{name}_on_shapes.py'
    cfg.dump(str(path))
    return str(path)


@pytest.fixture
def in_process(monkeypatch, workspace):
    """Run the tools here, from the workspace (the demo data's relative root)."""
    monkeypatch.chdir(workspace)
    monkeypatch.delenv('LOCAL_RANK', raising=False)  # tools/train.py sets it
    torch.set_num_threads(1)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_trains_two_iterations_and_tests(name, in_process, workspace, capsys):
    demo_config, tiny, amp = CONFIGS[name]
    config = on_demo_data(name, demo_config, workspace)
    work_dir = workspace / f'shipped_{name}'
    iter_based = Config.fromfile(config).train_cfg.type == 'IterBasedTrainLoop'
    schedule = (['train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2'] if iter_based
                else ['train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1'])
    tool('train')([config, '--work-dir', str(work_dir), *(['--amp'] if amp else []),
                   '--cfg-options', *tiny, *TRAIN_ONLY, *schedule])
    checkpoint = work_dir / ('iter_2.pth' if iter_based else 'epoch_1.pth')
    saved = torch.load(checkpoint)
    assert saved['meta']['iter'] == 2
    assert {float(s['step']) for s in saved['optimizer']['state'].values()} == {2.}
    capsys.readouterr()
    tool('test')([config, str(checkpoint), '--work-dir', str(workspace / f'{name}_test'),
                  '--cfg-options', *tiny])
    metrics = re.search(r'^metrics: (.*)$', capsys.readouterr().out, flags=re.M)
    assert metrics and ('coco/segm_mAP' in metrics[1] or 'mIoU' in metrics[1])

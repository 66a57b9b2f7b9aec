"""LocalityHook in a short demo training (tools/train.py), and tools/analysis/locality.py on
its checkpoints: scalars next to the losses that change with training, pictures, and a CSV
equal to the library's values."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from tools_e2e import (CONVIT_DET_CONFIG, CONVIT_DET_TINY, SEG_CONFIG, SEG_TINY, assert_png,
                       python_tool, run_tool, tool)

GPSA_LAYERS = ['blocks.0.attn', 'blocks.1.attn']
LAYERS = GPSA_LAYERS + ['blocks.2.attn', 'blocks.3.attn']
HOOK = ['custom_hooks.0.type=LocalityHook', 'custom_hooks.0.interval=2']


@pytest.fixture(scope='module')
def locality_run(workspace):
    """4 iterations (2 epochs of 2) of the tiny ConViT Mask R-CNN demo, LocalityHook every
    2 iterations, a checkpoint per epoch; a high learning rate so that 4 steps show."""
    work_dir = workspace / 'locality_run'
    run_tool(python_tool('train.py', CONVIT_DET_CONFIG, '--work-dir', work_dir,
                         '--cfg-options', *CONVIT_DET_TINY, *HOOK,
                         'train_dataloader.batch_size=2', 'train_cfg.max_epochs=2',
                         'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=1',
                         'default_hooks.checkpoint.max_keep_ckpts=5',
                         'optim_wrapper.optimizer.lr=0.05'),
             cwd=workspace)
    return work_dir


def hook_records(work_dir):
    (scalars, ) = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    return {r['iter']: r for r in records if 'nonlocality/blocks.0.attn' in r}, records


def test_hook_scalars_land_next_to_the_losses_and_change_with_training(locality_run):
    measured, records = hook_records(locality_run)
    assert sorted(measured) == [0, 2, 4]  # before training, then every 2 iterations
    assert any('loss' in r and r['iter'] == 2 for r in records)  # the losses' own records
    first, last = measured[0], measured[4]
    for layer in LAYERS:
        heads = [first[f'nonlocality/{layer}/head{h}'] for h in range(4)]
        assert first[f'nonlocality/{layer}'] == pytest.approx(np.mean(heads))
        assert 0 < first[f'nonlocality/{layer}'] < 200  # pixels, in a <= 160 px image
        assert last[f'nonlocality/{layer}'] != first[f'nonlocality/{layer}']
        assert (f'gate/{layer}' in first) == (layer in GPSA_LAYERS)
    for layer in GPSA_LAYERS:
        assert first[f'gate/{layer}'] == pytest.approx(torch.sigmoid(torch.tensor(1.)).item())
        assert last[f'gate/{layer}'] != first[f'gate/{layer}']
    assert 'locality/cost' not in first and 0 < last['locality/cost'] < 1
    assert last['locality/seconds'] > 0
    log = next(locality_run.glob('*/*.log')).read_text()
    assert 'Locality at iter 4, mean attention distance in pixels: blocks.0.attn' in log


def test_plot_curves_draws_the_hook_scalars(locality_run, tmp_path):
    out = tmp_path / 'curves.png'
    tool('analysis/plot_curves.py').main([str(locality_run), '--keys', 'loss',
                                          'nonlocality/blocks.3.attn', 'gate/blocks.0.attn',
                                          '--out', str(out)])
    assert_png(out)


def assert_picture(path):
    """A PNG with something drawn: many distinct colours."""
    assert_png(path)
    with Image.open(path) as image:
        assert len(np.unique(np.asarray(image.convert('RGB')).reshape(-1, 3), axis=0)) > 50


def tiny_config(config, tiny):
    """The config with the tiny overrides, parsed as the tools parse --cfg-options."""
    from cvt_dense.analysis.builder import read_config
    return read_config(config, tool('analysis/locality.py').parse_args(
        [config, 'x.pth', '--cfg-options', *tiny]).cfg_options)


def library_values(config, checkpoint, tiny, num_images=2):
    from cvt_dense.analysis.builder import build_model, dataset_batches
    from cvt_dense.analysis.locality import measure_locality
    cfg = tiny_config(config, tiny)
    model = build_model(cfg, checkpoint)
    with torch.no_grad():
        images = [model.data_preprocessor(batch, False)['inputs']
                  for batch in dataset_batches(cfg.val_dataloader, num_images)]
    return measure_locality(model.backbone, images)


def test_tool_pictures_and_csv_equal_the_library_and_the_hook(locality_run, workspace,
                                                              tmp_path, monkeypatch):
    monkeypatch.chdir(workspace)  # the demo config's data_root is relative
    checkpoints = [str(locality_run / f'epoch_{i}.pth') for i in (1, 2)]
    results, files = tool('analysis/locality.py').main(
        [CONVIT_DET_CONFIG, *checkpoints, '--out-dir', str(tmp_path), '--cfg-options',
         *CONVIT_DET_TINY])
    assert [r.iteration for r in results] == [2, 4]
    for name in ('locality_epoch_1.png', 'locality_epoch_2.png', 'locality_evolution.png'):
        assert_picture(tmp_path / name)
    with open(tmp_path / 'locality.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 4 * 4  # checkpoints x layers x heads
    rows = {(r['iter'], r['layer'], int(r['head'])): r for r in rows}
    for layer in library_values(CONVIT_DET_CONFIG, checkpoints[-1], CONVIT_DET_TINY):
        for head in range(4):
            row = rows['4', layer.name, head]
            assert float(row['nonlocality_px']) == pytest.approx(
                float(layer.nonlocality[head]), rel=1e-12)
            assert float(row['nonlocality_cells']) == pytest.approx(
                float(layer.nonlocality[head]) / 16, rel=1e-12)
            assert float(row['content_px']) == pytest.approx(float(layer.content[head]),
                                                              rel=1e-12)
            assert (row['gate'] == '') == (layer.gate is None)
            if layer.gate is not None:
                assert float(row['gate']) == pytest.approx(float(layer.gate[head]), rel=1e-12)
                assert float(row['positional_px']) == pytest.approx(
                    float(layer.positional[head]), rel=1e-12)
    # The hook measured the same probe with the same weights during training.
    measured, _ = hook_records(locality_run)
    for (iteration, layer, head), row in rows.items():
        assert measured[int(iteration)][f'nonlocality/{layer}/head{head}'] == pytest.approx(
            float(row['nonlocality_px']), rel=1e-5)


def test_tool_on_cvt_with_heads_per_stage(workspace, tmp_path, monkeypatch):
    """CvT: 1, 1 and 2 heads per stage (missing heads greyed), no gates, in cells."""
    from cvt_dense.analysis.builder import build_model
    monkeypatch.chdir(workspace)
    cfg = tiny_config(SEG_CONFIG, SEG_TINY)
    checkpoint = tmp_path / 'iter_0.pth'
    torch.save(dict(state_dict=build_model(cfg).state_dict(), meta=dict(iter=0)), checkpoint)
    results, _ = tool('analysis/locality.py').main(
        [SEG_CONFIG, str(checkpoint), '--unit', 'cells', '--num-images', '1', '--out-dir',
         str(tmp_path), '--cfg-options', *SEG_TINY])
    assert [layer.name for layer in results[0].layers] == [
        'stage0.blocks.0.attn', 'stage1.blocks.0.attn', 'stage2.blocks.0.attn']
    assert [layer.query_stride for layer in results[0].layers] == [4, 8, 16]
    assert_picture(tmp_path / 'locality_iter_0.png')
    with open(tmp_path / 'locality.csv') as f:
        rows = list(csv.DictReader(f))
    assert [(r['layer'], r['head']) for r in rows] == [
        ('stage0.blocks.0.attn', '0'), ('stage1.blocks.0.attn', '0'),
        ('stage2.blocks.0.attn', '0'), ('stage2.blocks.0.attn', '1')]
    assert all(r['gate'] == '' and r['images'] == '1' for r in rows)
    assert float(rows[-1]['prefix_share']) > 0  # the cls token of the last stage

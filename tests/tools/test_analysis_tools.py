"""tools/analysis/* and tools/deploy/export_onnx.py on the demo configs (tiny CvT, CPU).

The tools run in this process (their ``main(argv)``) except training, which runs like a
user's command line."""
import re

import pytest
from tools_e2e import (DET_CONFIG, DET_TINY, SEG_CONFIG, SEG_TINY, assert_png, python_tool,
                       run_tool, tool)


def test_get_flops_prints_components_and_total(capsys):
    rows = tool('analysis/get_flops.py').main([DET_CONFIG, '--shape', '64', '96'])
    out = capsys.readouterr().out
    assert 'image 64x96 (--shape), model input 64x96 after padding' in out
    for name in ('backbone', 'neck', 'rpn_head', 'roi_head', 'total'):
        assert re.search(rf'^\| {name} \| [\d.]+ \| [\d.]+ \|', out, re.M), name
    assert rows[-1].name == 'total' and rows[-1].attention_macs > 0


def test_train_step_applies_cfg_options(capsys):
    """One timed step of the tiny Mask R-CNN with the k/v-stride knob (the cost table's
    command at a tiny size)."""
    times = tool('analysis/train_step.py').main(
        [DET_CONFIG, '--shape', '64', '96', '--steps', '1', '--cfg-options', *DET_TINY,
         'model.backbone.kv_strides=(4,2,2)'])
    out = capsys.readouterr().out
    assert re.search(r'model\.backbone\.kv_strides=\(4, 2, 2\): 1 x 64x96, eager, \d+ threads: '
                     r'train step [\d.]+ s \(median; steps [\d.]+ s\), peak RSS [\d.]+ GB',
                     out), out
    assert len(times) == 1 and times[0] > 0


@pytest.mark.parametrize('config, tiny', [(DET_CONFIG, DET_TINY), (SEG_CONFIG, SEG_TINY)],
                         ids=['det', 'seg'])
def test_benchmark_prints_latency_throughput_memory(config, tiny, capsys):
    result = tool('analysis/benchmark.py').main(
        [config, '--shape', '64', '80', '--repeats', '3', '--warmup', '1',
         '--cfg-options', *tiny])
    out = capsys.readouterr().out
    match = re.search(r'latency ([\d.]+) ms .*, ([\d.]+) images/s, peak memory ([\d.]+) GiB',
                      out)
    assert match, out
    latency_ms, images_per_s, _ = map(float, match.groups())
    assert len(result.times_s) == 3 and latency_ms > 0
    assert images_per_s == pytest.approx(1e3 / latency_ms, rel=0.01)
    assert result.peak_memory_bytes > 50 * 2 ** 20  # at least the libraries' memory


def test_benchmark_bf16_on_cpu(capsys):
    tool('analysis/benchmark.py').main([SEG_CONFIG, '--shape', '64', '64', '--repeats', '1',
                                        '--warmup', '0', '--amp', 'bf16', '--cfg-options',
                                        *SEG_TINY])
    assert ', bf16, 1 passes' in capsys.readouterr().out


def test_export_onnx_and_verify(tmp_path, capsys):
    pytest.importorskip('onnxruntime', reason='onnxruntime is not installed '
                        '(pip install -e .[onnx])')
    out_file = tmp_path / 'backbone.onnx'
    results = tool('deploy/export_onnx.py').main(
        [SEG_CONFIG, '--out', str(out_file), '--shape', '64', '64', '--verify',
         '--verify-shapes', '1', '96', '128', '1', '67', '91', '2', '80', '80',
         '--cfg-options', *SEG_TINY])
    out = capsys.readouterr().out
    assert 'verify OK' in out and out_file.is_file()
    assert [r['shape'] for r in results] == [(1, 96, 128), (1, 67, 91), (2, 80, 80)]
    assert max(r['rel_diff'] for r in results) <= 1e-4


@pytest.fixture(scope='module')
def validated_run(workspace):
    """4 iterations of the UperNet demo (tiny), validated at 2 and 4, TensorBoard on."""
    work_dir = workspace / 'seg_curves'
    run_tool(python_tool('train.py', SEG_CONFIG, '--work-dir', work_dir, '--tensorboard',
                         '--cfg-options', *SEG_TINY, 'train_dataloader.batch_size=2',
                         'default_hooks.logger.interval=1', 'train_cfg.max_iters=4',
                         'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=4'),
             cwd=workspace)
    return work_dir


def test_plot_curves_of_a_training_run(validated_run, tmp_path, capsys):
    out_file = tmp_path / 'curves.png'
    tool('analysis/plot_curves.py').main([str(validated_run), str(validated_run), '--keys',
                                          'loss', 'mIoU', '--out', str(out_file)])
    assert 'written to' in capsys.readouterr().out
    width, height = assert_png(out_file)
    assert width >= 900 and height >= 300  # two panels
    with pytest.raises(KeyError, match='no run logged'):
        tool('analysis/plot_curves.py').main([str(validated_run), '--keys', 'coco/bbox_mAP',
                                              '--out', str(tmp_path / 'x.png')])


def test_tensorboard_writes_event_files(validated_run):
    events = list(validated_run.glob('*/vis_data/events.out.tfevents.*'))
    assert events and events[0].stat().st_size > 100


def test_visualize_attention_pictures(workspace, tmp_path, capsys):
    image = workspace / 'data/shapes/val/000001.png'
    files = tool('analysis/visualize_attention.py').main(
        [str(image), DET_CONFIG, '--point', '40', '30', '--per-head', '--out-dir',
         str(tmp_path), '--cfg-options', *DET_TINY])
    out = capsys.readouterr().out
    assert len(files) == 4  # head means + one per-head picture per stage
    for f in files:
        assert_png(tmp_path / f.split('/')[-1])
    sums = re.findall(r'row sums ([\d.]+)\.\.([\d.]+)', out)
    assert len(sums) == 3
    assert all(abs(float(v) - 1) < 1e-5 for pair in sums for v in pair)
    with pytest.raises(ValueError, match='outside'):
        tool('analysis/visualize_attention.py').main(
            [str(image), DET_CONFIG, '--point', '4000', '3', '--cfg-options', *DET_TINY])

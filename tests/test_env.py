"""Environment report and the mmcv compiled-ops check."""
import subprocess
import sys

import pytest

from cvt_dense import env


def test_report_runs_and_ops_load():
    result = subprocess.run([sys.executable, '-m', 'cvt_dense.env'], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    for name in ('torch', 'mmcv', 'mmdet', 'mmsegmentation', 'timm', 'cuda available'):
        assert name in result.stdout
    assert 'mmcv ops: OK on cpu' in result.stdout


def test_broken_ops_error_names_the_rebuild_command(monkeypatch):
    import mmcv.ops

    def broken_nms(*args, **kwargs):
        raise ImportError('libmmcv _ext.so: undefined symbol')

    monkeypatch.setattr(mmcv.ops, 'nms', broken_nms)
    with pytest.raises(RuntimeError) as err:
        env.check_mmcv_ops()
    message = str(err.value)
    assert 'undefined symbol' in message
    assert 'MMCV_WITH_OPS=1' in message and '--no-build-isolation' in message
    assert 'requirements/mmcv.txt' in message

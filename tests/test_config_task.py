import pytest
from mmengine.config import Config

from cvt_dense.config_files import task_of


@pytest.mark.parametrize('scope,task', [('mmdet', 'det'), ('mmseg', 'seg')])
def test_task_from_default_scope(scope, task):
    assert task_of(Config(dict(default_scope=scope))) == task
    assert task_of(dict(default_scope=scope)) == task


@pytest.mark.parametrize('cfg', [dict(), dict(default_scope='mmpretrain')])
def test_other_scopes_are_refused_by_name(cfg):
    with pytest.raises(ValueError, match="default_scope=.*'mmdet'.*'mmseg'"):
        task_of(cfg)

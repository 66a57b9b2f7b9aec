"""Finding the shipped configs: the installed copy's folder first, else the source tree's."""
from pathlib import Path

import pytest

from cvt_dense import config_files

REPO_CONFIGS = Path(__file__).resolve().parents[1] / 'configs'


def test_source_checkout_uses_the_repository_configs():
    assert config_files.config_dir() == REPO_CONFIGS
    names = config_files.list_configs()
    assert 'maskrcnn_cvt13_coco' in names and 'demo/upernet_cvt13_shapes' in names
    assert not any('_base_' in name.split('/') for name in names)


@pytest.mark.parametrize('name', ['upernet_cvt13_ade20k', 'upernet_cvt13_ade20k.py'])
def test_config_path_with_or_without_suffix(name):
    assert config_files.config_path(name) == str(REPO_CONFIGS / 'upernet_cvt13_ade20k.py')


def test_installed_copy_comes_first(tmp_path, monkeypatch):
    installed = tmp_path / '.mim' / 'configs'
    (installed / 'demo').mkdir(parents=True)
    (installed / 'demo' / 'tiny.py').write_text("default_scope = 'mmseg'\n")
    monkeypatch.setattr(config_files, 'INSTALLED_CONFIG_DIR', installed)
    assert config_files.config_path('demo/tiny') == str(installed / 'demo' / 'tiny.py')
    assert config_files.list_configs() == ['demo/tiny']


def test_unknown_name_lists_the_configs():
    with pytest.raises(FileNotFoundError, match=r"no config 'maskrcnn_cvt99'.*maskrcnn_cvt13_coco"):
        config_files.config_path('maskrcnn_cvt99')


def test_no_configs_anywhere_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(config_files, 'INSTALLED_CONFIG_DIR', tmp_path / 'a')
    monkeypatch.setattr(config_files, 'SOURCE_CONFIG_DIR', tmp_path / 'b')
    with pytest.raises(FileNotFoundError, match='cvt_dense configs not found'):
        config_files.config_dir()


def test_command_line(capsys):
    config_files.main(['maskrcnn_cvt13_coco'])
    assert capsys.readouterr().out.strip() == str(REPO_CONFIGS / 'maskrcnn_cvt13_coco.py')
    config_files.main([])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f'# {REPO_CONFIGS}' and 'demo/maskrcnn_cvt13_shapes' in lines
    with pytest.raises(SystemExit) as exit_info:
        config_files.main(['nope'])
    assert exit_info.value.code == 2 and "no config 'nope'" in capsys.readouterr().err

"""tools/infer.py on odd inputs: EXIF-rotated, 16-bit, RGBA and grayscale images are
drawn upright at their size; a missing, empty or corrupt file gets one line naming it."""
import importlib.util
import subprocess

import numpy as np
import pytest
from PIL import Image
from tools_e2e import (SEG_CONFIG, SEG_TINY, TOOLS, TRAIN_ONLY, python_tool, run_tool,
                       tool_env)


@pytest.fixture(scope='module')
def checkpoint(workspace):
    work_dir = workspace / 'infer_inputs'
    run_tool(python_tool('train.py', SEG_CONFIG, '--work-dir', work_dir, '--cfg-options',
                         *SEG_TINY, *TRAIN_ONLY, 'train_cfg.max_iters=1',
                         'default_hooks.checkpoint.interval=1'), cwd=workspace)
    return work_dir / 'iter_1.pth'


def odd_images(workspace):
    """{name: (path, upright (height, width))} made from a demo image."""
    source = Image.open(workspace / 'data/shapes/val/000001.png').convert('RGB')
    w, h = source.size
    folder = workspace / 'odd_images'
    folder.mkdir(exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    source.save(folder / 'exif_rotated.jpg', exif=exif)
    deep = (np.asarray(source.convert('L')).astype(np.uint16) * 257)
    Image.fromarray(deep).save(folder / 'gray16.png')
    source.convert('RGBA').save(folder / 'rgba.png')
    source.convert('L').save(folder / 'gray.png')
    return {'exif_rotated': (folder / 'exif_rotated.jpg', (w, h)),
            'gray16': (folder / 'gray16.png', (h, w)),
            'rgba': (folder / 'rgba.png', (h, w)), 'gray': (folder / 'gray.png', (h, w))}


def load_infer_tool():
    spec = importlib.util.spec_from_file_location('infer_tool', TOOLS / 'infer.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_odd_images_are_drawn_upright(checkpoint, workspace):
    """All four in one process (tools/infer.py's main); the command line once."""
    images = odd_images(workspace)
    infer = load_infer_tool()
    for name, (path, upright) in images.items():
        out_file = workspace / f'infer_{name}.png'
        infer.main([str(path), SEG_CONFIG, str(checkpoint), '--out', str(out_file),
                    '--cfg-options', *SEG_TINY])
        assert np.asarray(Image.open(out_file)).shape == (*upright, 3), name
    path, upright = images['exif_rotated']
    out = run_tool(python_tool('infer.py', path, SEG_CONFIG, checkpoint, '--out',
                               'infer_cli.png', '--cfg-options', *SEG_TINY), cwd=workspace)
    assert 'classes present' in out
    assert np.asarray(Image.open(workspace / 'infer_cli.png')).shape == (*upright, 3)


@pytest.mark.parametrize('content, problem', [
    (None, 'image file not found'), (b'', 'image file is empty (0 bytes)'),
    (b'\xff\xd8\xff\xe0' + b'\0' * 64, 'not a readable image')],
    ids=['missing', 'empty', 'corrupt'])
def test_bad_image_files_get_one_line(tmp_path, content, problem):
    path = tmp_path / 'bad_input.jpg'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as stop:
        load_infer_tool().main([str(path), SEG_CONFIG, 'unused.pth', '--out', 'unused.png'])
    message = str(stop.value.code)  # printed as the one line on stderr, exit status 1
    assert message.startswith(f'infer.py: {path}: {problem}') and '\n' not in message


def test_bad_image_file_command_line(workspace):
    proc = subprocess.run([str(c) for c in python_tool(
        'infer.py', 'missing.png', SEG_CONFIG, 'unused.pth', '--out', 'unused.png')],
        cwd=workspace, env=tool_env(), text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout.strip() == 'infer.py: missing.png: image file not found'

"""read_image_rgb: odd image files become upright 8-bit RGB; bad files name themselves."""
import numpy as np
import pytest
from PIL import Image

from cvt_dense.datasets import ImageReadError, read_image_rgb

H, W = 6, 10


def gradient(dtype=np.uint8, top=255):
    return (np.arange(H * W).reshape(H, W) * top // (H * W - 1)).astype(dtype)


def test_rgb_png_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'a.png')
    assert np.array_equal(read_image_rgb(str(tmp_path / 'a.png')), rgb)


@pytest.mark.parametrize('mode', ['L', 'P', 'RGBA', 'LA', 'CMYK'])
def test_modes_become_rgb(tmp_path, mode):
    path = tmp_path / f'{mode}.png' if mode != 'CMYK' else tmp_path / 'cmyk.jpg'
    Image.fromarray(gradient()).convert(mode).save(path)
    image = read_image_rgb(str(path))
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    if mode in ('L', 'RGBA', 'LA'):
        assert np.array_equal(image[..., 0], gradient())


def test_16_bit_grayscale_is_scaled_to_8_bit(tmp_path):
    Image.fromarray(gradient(np.uint16, 65535)).save(tmp_path / 'deep.png')
    assert Image.open(tmp_path / 'deep.png').mode.startswith('I')
    image = read_image_rgb(str(tmp_path / 'deep.png'))
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    assert image.min() == 0 and image.max() == 255
    assert np.abs(image[..., 0].astype(int) - gradient().astype(int)).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:3, :3] = (255, 0, 0)  # red top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display rotated 90 degrees clockwise
    Image.fromarray(rgb).save(tmp_path / 'rotated.jpg', exif=exif, quality=100)
    image = read_image_rgb(str(tmp_path / 'rotated.jpg'))
    assert image.shape == (W, H, 3)
    assert image[1, -2, 0] > 200 and image[1, 1, 0] < 50  # top-left went top-right


@pytest.mark.parametrize('content, problem', [
    (None, 'image file not found'), (b'', 'image file is empty'),
    (b'\x89PNG\r\n\x1a\n' + b'\0' * 20, 'not a readable image')])
def test_bad_files_are_named(tmp_path, content, problem):
    path = tmp_path / 'bad.png'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageReadError, match=problem) as err:
        read_image_rgb(str(path))
    assert str(path) in str(err.value)

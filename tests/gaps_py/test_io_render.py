"""gaps_py.io render section: .cam cameras, .conf configurations, 16-bit PNGs (formats, round trips,
errors)."""

import os
import struct

import numpy as np
import pytest
from PIL import Image

from gaps_py import io as gaps_io
from testutil import assert_read_error


# ---- cameras ----


def test_cameras_round_trip(tmp_path, rng):
  cams = rng.normal(size=(5, 12))
  gaps_io.write_cameras(tmp_path / 'exact.cam', cams, digits=17)
  np.testing.assert_array_equal(gaps_io.read_cameras(tmp_path / 'exact.cam'), cams)
  gaps_io.write_cameras(tmp_path / 'g.cam', cams)  # %g: 6 significant digits, as GAPS and LDIF write
  np.testing.assert_allclose(gaps_io.read_cameras(tmp_path / 'g.cam'), cams, rtol=1e-5, atol=1e-6)
  lines = (tmp_path / 'g.cam').read_text().splitlines()
  assert len(lines) == 5 and all(len(line.split()) == 12 for line in lines)
  assert lines[0].count('  ') == 4  # groups: eye, towards, up, fovs, value


def test_cameras_read_any_whitespace_layout(tmp_path):
  path = tmp_path / 'loose.cam'
  path.write_text('1 2 3 4 5 6\n7 8 9 0.5 0.5 0\n\n\t-1 -2 -3  4 5 6  7 8 9  0.1 0.1  1e-3')
  cams = gaps_io.read_cameras(path)
  assert cams.shape == (2, 12) and cams.dtype == np.float64
  np.testing.assert_array_equal(cams[1, [0, 11]], [-1.0, 1e-3])


@pytest.mark.parametrize('content, message', [
    ('', 'empty'),
    ('1 2 3 4 5 6 7 8 9 10 11\n', 'multiple of 12'),
    ('1 2 3 4 5 6 7 8 9 10 11 x\n', "'x' is not a number"),
    ('1 2 3 4 5 6 7 8 9 10 11 nan\n', 'non-finite'),
])
def test_cameras_garbled(tmp_path, content, message):
  assert_read_error(gaps_io.read_cameras, tmp_path / 'bad.cam', message, content)


def test_cameras_missing_and_binary(tmp_path):
  with pytest.raises(ValueError, match='missing.cam'):
    gaps_io.read_cameras(tmp_path / 'missing.cam')
  (tmp_path / 'binary.cam').write_bytes(b'\x89PNG\xff\xfe')
  with pytest.raises(ValueError, match='binary.cam.*not a text'):
    gaps_io.read_cameras(tmp_path / 'binary.cam')
  with pytest.raises(ValueError, match=r'\[V, 12\]'):
    gaps_io.write_cameras(tmp_path / 'x.cam', np.zeros((3, 11)))


# ---- configurations ----


def test_conf_round_trip(tmp_path, rng):
  intrinsics = np.array([[205.014624832, 0, 112], [0, 205.014624832, 112], [0, 0, 1]])
  extrinsics = [np.eye(4), np.vstack([rng.normal(size=(3, 4)), [0, 0, 0, 1]])]
  path = tmp_path / 'a.conf'
  images = [('000000_depth.png', extrinsics[0]), ('000001_depth.png', extrinsics[1])]
  gaps_io.write_conf(path, intrinsics, images, depth_directory=tmp_path / 'depth',
                     extra_lines=['dataset_processed'])
  conf = gaps_io.read_conf(path)
  np.testing.assert_array_equal(conf['intrinsics'], intrinsics)
  assert [name for name, _ in conf['images']] == ['000000_depth.png', '000001_depth.png']
  np.testing.assert_allclose(conf['images'][1][1], extrinsics[1], rtol=1e-11)
  assert conf['depth_directory'] == str(tmp_path / 'depth')
  assert conf['dataset'] is None  # 'dataset_processed' is not GAPS's 'dataset' keyword: ignored
  assert path.read_text().splitlines()[0] == 'dataset_processed'


def test_conf_gaps_syntax(tmp_path):
  path = tmp_path / 'b.conf'
  path.write_text('# comment\nn_images 1\ndataset scannet\ndepth_directory -\n'
                  'depth_intrinsics_matrix 500 0 320  0 500 240  0 0 1\n'
                  'scan depth/a.png color/a.jpg  1 0 0 1  0 1 0 2  0 0 1 3  0 0 0 1\n')
  conf = gaps_io.read_conf(path)
  assert conf['depth_directory'] is None and conf['dataset'] == 'scannet'
  assert conf['images'][0][0] == 'depth/a.png'
  np.testing.assert_array_equal(conf['images'][0][1][:3, 3], [1, 2, 3])
  assert conf['intrinsics'][0, 2] == 320


_IDENTITY = ' 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n'


@pytest.mark.parametrize('content, message', [
    ('', 'no image lines'),
    ('image a.png -' + _IDENTITY, 'before any intrinsics'),
    ('intrinsics_matrix 1 0 0 0 1 0 0 0\nimage a.png -' + _IDENTITY, 'line 1.*9 numbers'),
    ('intrinsics_matrix 1 0 0 0 1 0 0 0 1\nimage a.png - 1 0 0 0\n', 'line 2.*16 numbers'),
    ('intrinsics_matrix 1 0 0 0 1 0 0 0 1\nimage a.png - 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 one\n', "'one'"),
    ('intrinsics_matrix 1 0 0 0 1 0 0 0 1\nimage a.png -' + _IDENTITY +
     'intrinsics_matrix 2 0 0 0 2 0 0 0 1\nimage b.png -' + _IDENTITY, 'different intrinsics'),
    ('intrinsics_matrix 0 0 0 0 1 0 0 0 1\nimage a.png -' + _IDENTITY, 'zero focal'),
])
def test_conf_garbled(tmp_path, content, message):
  assert_read_error(gaps_io.read_conf, tmp_path / 'bad.conf', message, content)


def test_conf_missing(tmp_path):
  with pytest.raises(ValueError, match='nowhere.conf'):
    gaps_io.read_conf(tmp_path / 'nowhere.conf')


# ---- 16-bit PNG ----


def _ihdr(path):
  data = open(path, 'rb').read(33)
  return struct.unpack('>IIBB', data[16:26])


def test_png16_round_trip_and_format(tmp_path, rng):
  image = rng.integers(0, 65536, size=(7, 11)).astype(np.uint16)
  image[0, 0], image[-1, -1] = 65535, 0
  path = tmp_path / 'im.png'
  gaps_io.write_png16(path, image)
  assert _ihdr(path) == (11, 7, 16, 0)  # width, height, 16-bit, grayscale
  np.testing.assert_array_equal(gaps_io.read_png16(path), image)
  with Image.open(path) as pil:  # row 0 of the array is the top row of the PNG
    assert pil.getpixel((0, 0)) == 65535 and pil.getpixel((10, 6)) == 0
  gaps_io.write_png16(tmp_path / 'ints.png', image.astype(np.int64))
  np.testing.assert_array_equal(gaps_io.read_png16(tmp_path / 'ints.png'), image)
  assert sorted(os.listdir(tmp_path)) == ['im.png', 'ints.png']


def test_png16_rejects_other_pngs(tmp_path):
  Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / 'gray8.png')
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'rgb.png')
  (tmp_path / 'text.png').write_text('not a png at all, just text padding padding padding')
  for name, message in (('gray8.png', '8-bit grayscale'), ('rgb.png', '8-bit RGB'), ('text.png', 'not a PNG'),
                        ('missing.png', 'cannot read')):
    assert_read_error(gaps_io.read_png16, tmp_path / name, message)
  gaps_io.write_png16(tmp_path / 'good.png', np.ones((6, 6), np.uint16))
  (tmp_path / 'cut.png').write_bytes(open(tmp_path / 'good.png', 'rb').read()[:45])
  with pytest.raises(ValueError, match='cut.png.*corrupt'):
    gaps_io.read_png16(tmp_path / 'cut.png')


def test_png16_write_rejects_bad_arrays(tmp_path):
  for bad in (np.zeros((2, 3, 4), np.uint16), np.zeros((0, 3), np.uint16), np.zeros((3, 3), np.float32),
              np.full((3, 3), -1), np.full((3, 3), 70000)):
    with pytest.raises(ValueError):
      gaps_io.write_png16(tmp_path / 'bad.png', bad)
  assert not os.listdir(tmp_path)

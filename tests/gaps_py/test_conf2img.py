"""gaps_py.conf2img: analytic normals (plane, sphere), the encoding, the CLI and bad input."""

import math
import os

import numpy as np
import pytest
from PIL import Image

from gaps_py import conf2img
from gaps_py import io as gaps_io
from ldif.util import camera_util

SIZE = 224
INTRINSICS = camera_util.base_conf_intrinsics(SIZE, SIZE)
FOCAL = INTRINSICS[0, 0]


def _pixel_dirs(size=SIZE):
  """Camera-space ray directions through pixel centres (PNG rows, row 0 = top), with z = -1."""
  cols = (np.arange(size) + 0.5 - size / 2) / FOCAL
  rows = (size / 2 - (np.arange(size) + 0.5)) / FOCAL
  x, y = np.meshgrid(cols, rows)
  return np.stack([x, y, -np.ones_like(x)], axis=-1)


def _sphere_depth(centre=(0.1, -0.05, -1.6), radius=0.5):
  """Analytic depth PNG of a sphere (planar depth = ray parameter t) and its camera-space normals."""
  dirs = _pixel_dirs()
  c = np.asarray(centre)
  a = np.sum(dirs * dirs, axis=-1)
  b = -2.0 * dirs @ c
  disc = b * b - 4 * a * (c @ c - radius * radius)
  t = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), 0.0)
  normals = (t[..., None] * dirs - c) / radius
  return np.floor(1000.0 * t).astype(np.uint16), normals


def test_fronto_parallel_plane_gives_exact_values():
  depth = np.full((SIZE, SIZE), 1000, np.uint16)
  nx, ny, nz, radius = conf2img.normal_images(depth, INTRINSICS).astype(np.int64)
  interior = (slice(1, -1), slice(1, -1))
  assert np.all(nx[interior] == 32768) and np.all(ny[interior] == 32768)
  assert np.all(nz[interior] == 65535)  # n = (0, 0, 1) towards the viewer: 65536 clamped
  # Five points (seed + 4-neighbours) spaced s = d / f apart: lambda_max = 2 s^2 / 5.
  spacing = 1.0 / FOCAL
  expected = math.floor(4000 * 3 * math.sqrt(0.4 * spacing * spacing) / 2)
  assert np.all(np.abs(radius[interior] - expected) <= 1)


def test_sphere_normals_match_the_analytic_ones():
  depth, true_normals = _sphere_depth()
  images = conf2img.normal_images(depth, INTRINSICS)
  normals, mask = conf2img.decode_normals(images)
  foreground = depth > 0
  # Background is 0 in all four images; a normal everywhere on the sphere but a few silhouette pixels.
  assert np.all(images[:, ~foreground] == 0)
  assert mask[foreground].mean() > 0.995 and not np.any(mask & ~foreground)
  cosine = np.sum(normals[mask] * true_normals[mask], axis=-1)
  angle = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
  # 1 mm depth steps over 4-neighbour patches: a few degrees typical, as GAPS's own normals.
  assert np.median(angle) < 2.5
  assert np.percentile(angle, 90) < 6.0
  assert np.all(normals[mask][:, 2] > -1e-6)  # oriented towards the camera


def test_tilted_plane_normal():
  plane_normal = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
  point = np.array([0.0, 0.0, -1.2])
  dirs = _pixel_dirs()
  t = (plane_normal @ point) / (dirs @ plane_normal)
  images = conf2img.normal_images(np.floor(1000 * t).astype(np.uint16), INTRINSICS)
  normals, mask = conf2img.decode_normals(images)
  assert mask[1:-1, 1:-1].all()
  mean = normals[mask].mean(axis=0)
  assert np.degrees(np.arccos(mean @ plane_normal / np.linalg.norm(mean))) < 1.0


def test_depth_jumps_are_not_smoothed_over():
  # Two fronto-parallel slabs 0.3 apart: neighbours across the step are > 0.1 away, so normals stay (0, 0, 1).
  depth = np.full((SIZE, SIZE), 900, np.uint16)
  depth[:, SIZE // 2:] = 1200
  nz = conf2img.normal_images(depth, INTRINSICS)[2]
  assert np.all(nz[1:-1, 1:-1] == 65535)


def test_bad_inputs():
  with pytest.raises(ValueError, match='uint16'):
    conf2img.normal_images(np.ones((8, 8), np.float32), INTRINSICS)
  with pytest.raises(ValueError, match=r'\[H, W\]'):
    conf2img.normal_images(np.ones((2, 8, 8), np.uint16), INTRINSICS)
  with pytest.raises(ValueError, match='intrinsics'):
    conf2img.normal_images(np.ones((8, 8), np.uint16), np.eye(4))
  with pytest.raises(ValueError, match='focal'):
    conf2img.normal_images(np.ones((8, 8), np.uint16), np.zeros((3, 3)))


def _write_dataset(tmp_path, size=SIZE, count=2):
  depth_dir = tmp_path / 'depth_images'
  depth_dir.mkdir()
  depth, _ = _sphere_depth()
  depths = [depth, np.roll(depth, 7, axis=1)][:count]
  for index, image in enumerate(depths):
    gaps_io.write_png16(depth_dir / f'{index:06d}_depth.png', image[:size, :size])
  conf = tmp_path / 'custom.conf'
  names = [f'{index:06d}_depth.png' for index in range(count)]
  gaps_io.write_conf(conf, INTRINSICS, names, depth_directory=depth_dir, extra_lines=['dataset_processed'])
  return conf, depths


def test_cli_writes_gaps_named_pngs(tmp_path):
  conf, depths = _write_dataset(tmp_path)
  out_dir = tmp_path / 'normals'
  status = conf2img.main([str(conf), str(out_dir), '-create_normal_images', '-width', '224',
                          '-height', '224'])
  assert status == 0
  expected_names = [f'{i:06d}_depth_{c}.png' for i in range(2) for c in conf2img.CHANNELS]
  assert sorted(os.listdir(out_dir)) == sorted(expected_names)
  intrinsics = gaps_io.read_conf(conf)['intrinsics']  # as written: 12 significant digits
  for index, depth in enumerate(depths):
    expected = conf2img.normal_images(depth, intrinsics)
    for channel, image in zip(conf2img.CHANNELS, expected):
      np.testing.assert_array_equal(gaps_io.read_png16(out_dir / f'{index:06d}_depth_{channel}.png'), image)


def test_cli_skips_images_already_done(tmp_path):
  conf, _ = _write_dataset(tmp_path, count=1)
  out_dir = tmp_path / 'normals'
  out_dir.mkdir()
  marker = np.zeros((4, 4), np.uint16)
  gaps_io.write_png16(out_dir / '000000_depth_nx.png', marker)  # GAPS checks only the _nx image
  assert conf2img.main([str(conf), str(out_dir), '-create_normal_images']) == 0
  np.testing.assert_array_equal(gaps_io.read_png16(out_dir / '000000_depth_nx.png'), marker)
  assert not (out_dir / '000000_depth_ny.png').exists()


def test_cli_bad_inputs_name_the_file(tmp_path, caplog):
  conf, _ = _write_dataset(tmp_path, count=1)
  out_dir = str(tmp_path / 'normals')
  # Wrong image size.
  assert conf2img.main([str(conf), out_dir, '-create_normal_images', '-width', '128', '-height', '128']) == 1
  assert '000000_depth.png' in caplog.text and 'expected 128x128' in caplog.text
  caplog.clear()
  # A depth PNG that is not 16-bit.
  Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(tmp_path / 'depth_images' / '000000_depth.png')
  assert conf2img.main([str(conf), out_dir, '-create_normal_images']) == 1
  assert '000000_depth.png' in caplog.text and '8-bit' in caplog.text
  caplog.clear()
  # Missing and garbled configurations.
  garbled = tmp_path / 'garbled.conf'
  garbled.write_text('intrinsics_matrix 205 0 112 0 205 112 0 0\nimage 000000_depth.png -  1 0 0 0\n')
  for path in (tmp_path / 'missing.conf', garbled):
    assert conf2img.main([str(path), out_dir, '-create_normal_images']) == 1
    assert str(path) in caplog.text
    caplog.clear()
  assert conf2img.main([str(conf), out_dir]) == 1
  assert 'create_normal_images is required' in caplog.text

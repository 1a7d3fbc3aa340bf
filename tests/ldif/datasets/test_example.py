"""Tests of example directories: npz array (normals quirk), dodeca surface samples, reading them back."""

import os
import shutil

import numpy as np
import pytest

from ldif.datasets import example
from ldif.datasets import schema
from ldif.util import camera_util

CENTER = np.array([0.1, 0.05, -0.08])
RADIUS = 0.3


def _sphere_views(size=224):
  """Depth and normal PNG values of an off-centre sphere seen by the 20 dodeca cameras (ray cast, §2.2 model).

  Returns depth uint16 [20, H, W], normals uint16 [20, 3, H, W] (camera frame, floor(32768 (n + 1))).
  """
  cam2world = camera_util.dodeca_cam2world()
  t = np.tan(0.5)
  centers = (np.arange(size) + 0.5) / size * 2 - 1
  nx, ny = np.meshgrid(centers, centers, indexing='xy')
  rays = np.stack([nx * t, -ny * t, -np.ones_like(nx)], axis=-1)  # camera frame, z = -1 (planar depth 1)
  depth = np.zeros((20, size, size), np.uint16)
  normals = np.zeros((20, 3, size, size), np.uint16)
  for v in range(20):
    rot, eye = cam2world[v, :3, :3], cam2world[v, :3, 3]
    c = rot.T @ (CENTER - eye)  # sphere centre in the camera frame
    a = np.sum(rays * rays, -1)
    b = -2 * rays @ c
    disc = b * b - 4 * a * (c @ c - RADIUS**2)
    hit = disc > 0
    s = np.where(hit, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), 0)
    depth[v] = np.where(hit, np.floor(1000 * s), 0).astype(np.uint16)
    n = (rays * s[..., None] - c) / RADIUS
    png = np.clip(np.floor(32768 * (n + 1)), 0, 65535).astype(np.uint16)
    png[~hit] = 0
    normals[v] = np.moveaxis(png, -1, 0)
  return depth, normals


@pytest.fixture(scope='module')
def sphere_views():
  return _sphere_views()


def test_npz_array_reproduces_the_undecoded_normals(sphere_views):
  depth, normals = sphere_views
  arr = example.depth_and_normals_array(depth, normals)
  assert arr.shape == (20, 224, 224, 4) and arr.dtype == np.float32
  np.testing.assert_array_equal(arr[..., 0], depth.astype(np.float32) / np.float32(1000))
  raw = np.moveaxis(normals, 1, -1).astype(np.float64)
  expected = raw / np.maximum(np.linalg.norm(raw, axis=-1, keepdims=True), 1e-8)
  np.testing.assert_allclose(arr[..., 1:], expected, atol=1e-6)
  fg = depth > 0
  assert np.all(arr[..., 1:][fg] >= 0)  # the quirk: all components non-negative
  assert np.all(arr[..., 1:][~fg] == 0)
  decoded = example.depth_and_normals_array(depth, normals, decode_normals=True)
  assert np.min(decoded[..., 1:][fg]) < -0.5  # real normals have negative components
  np.testing.assert_allclose(np.linalg.norm(decoded[..., 1:][fg], axis=-1), 1, atol=1e-5)


def test_npz_array_rejects_bad_inputs(sphere_views):
  depth, normals = sphere_views
  with pytest.raises(ValueError, match='uint16'):
    example.depth_and_normals_array(depth.astype(np.float32), normals)
  with pytest.raises(ValueError, match='does not match'):
    example.depth_and_normals_array(depth[:3], normals)


def test_surface_samples_lie_on_the_sphere(sphere_views):
  depth, normals = sphere_views
  arr = example.depth_and_normals_array(depth, normals, decode_normals=True)
  samples = example.surface_samples_from_dodeca(arr, sample_count=100000, seed=3)
  assert samples.shape == (100000, 6) and samples.dtype == np.float32
  radial = samples[:, :3] - CENTER
  dist = np.linalg.norm(radial, axis=-1)
  assert np.max(np.abs(dist - RADIUS)) < 1.2e-3
  cos = np.sum(radial / dist[:, None] * samples[:, 3:], axis=-1)
  assert np.min(cos) > 0.999


def test_surface_samples_with_the_quirk_rotate_the_raw_direction(sphere_views):
  depth, normals = sphere_views
  arr = example.depth_and_normals_array(depth, normals)
  samples = example.surface_samples_from_dodeca(arr, sample_count=1000, seed=0)
  rot = camera_util.dodeca_cam2world()[:, :3, :3]
  # Every stored normal must be some view's rotation of a positive-octant unit vector.
  back = np.einsum('vji,nj->vni', rot, samples[:, 3:].astype(np.float64))  # R^T n for every view
  in_octant = np.all(back >= -1e-6, axis=-1).any(axis=0)
  assert np.all(in_octant)
  np.testing.assert_allclose(np.linalg.norm(samples[:, 3:], axis=-1), 1, atol=1e-5)


def test_surface_samples_shuffle_tile_and_seed(sphere_views):
  depth, normals = sphere_views
  arr = example.depth_and_normals_array(depth, normals)
  visible = int(np.count_nonzero(depth))
  count = visible + 123
  a = example.surface_samples_from_dodeca(arr, sample_count=count, seed=7)
  b = example.surface_samples_from_dodeca(arr, sample_count=count, seed=7)
  c = example.surface_samples_from_dodeca(arr, sample_count=count, seed=8)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  # Tiled: the rows after the first `visible` repeat the shuffled list from its start.
  np.testing.assert_array_equal(a[visible:], a[:123])
  assert np.unique(a[:visible], axis=0).shape[0] == np.unique(c[:visible], axis=0).shape[0] == visible
  with pytest.raises(ValueError, match='no surface visible'):
    example.surface_samples_from_dodeca(np.zeros_like(arr), seed=0)


def test_derive_seed_is_stable_and_distinct():
  assert example.derive_seed(2077, 'a', 'b') == example.derive_seed(2077, 'a', 'b')
  assert example.derive_seed(2077, 'a', 'b') != example.derive_seed(2077, 'ab')
  assert example.derive_seed(2077, 'a') != example.derive_seed(2078, 'a')
  assert 0 <= example.derive_seed(1, 'x') < 2**63


def test_example_identity_and_mesh_name():
  assert example.example_identity('/d/train/chair/abc/') == ('train', 'chair', 'abc')
  assert example.mesh_name_for_directory('d/val/animal/bob') == 'animal|bob'
  assert example.mesh_name_for_directory('d/val/chair/x/') == '03001627|x'
  with pytest.raises(ValueError):
    example.example_identity('a/b')


def test_read_example_directory(built_dataset):
  _, out_dir, _ = built_dataset
  d = os.path.join(out_dir, 'train', 'chair', 'box')
  ex = example.read_example_directory(d, seed=5)
  schema.validate_example(ex, d)
  assert ex['mesh_name'] == b'03001627|box'
  dn = example.read_depth_and_normals(os.path.join(d, example.DEPTH_AND_NORMALS))
  np.testing.assert_array_equal(ex['depth_renders'][..., 0], dn[..., 0] * np.float32(1000))
  # depth_renders are the PNG integers up to float32 rounding of the /1000 * 1000 round trip.
  assert np.max(np.abs(ex['depth_renders'] - np.round(ex['depth_renders']))) < 1e-3
  stored = np.fromfile(os.path.join(d, example.SURFACE_SAMPLES), np.float32).reshape(-1, 6)
  rows = {r.tobytes() for r in stored}
  assert all(r.tobytes() in rows for r in ex['surface_point_samples'])
  again = example.read_example_directory(d, seed=5)
  np.testing.assert_array_equal(again['surface_point_samples'], ex['surface_point_samples'])


def test_read_example_directory_errors_name_the_file(built_dataset, tmp_path):
  _, out_dir, _ = built_dataset
  src = os.path.join(out_dir, 'train', 'chair', 'box')
  d = tmp_path / 'train' / 'chair' / 'box'
  shutil.copytree(src, d, symlinks=True)
  nss = d / example.NSS_POINTS
  nss.write_bytes(nss.read_bytes()[:1000 * 16])
  with pytest.raises(ValueError, match=r'nss_points\.sdf'):
    example.read_example_directory(d)
  (d / example.COMPLETION_FILE).unlink()
  with pytest.raises(ValueError, match='incomplete example'):
    example.read_example_directory(d)
  bad_npz = tmp_path / 'x.npz'
  bad_npz.write_bytes(b'not a zip')
  with pytest.raises(ValueError, match=r'x\.npz: cannot read npz'):
    example.read_depth_and_normals(bad_npz)


def test_npz_from_gaps_reference_pngs_matches_the_original_reader(reference_dir):
  """The original read the PNGs with PIL into float32, divided depth by 1000 and only normalized the raw
  normal values; building the npz from the same PNG values must give bit-identical arrays."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  ref = reference_dir / 'gaps' / 'bob'
  views = [0, 7, 19]
  depth = np.stack([gaps_io.read_png16(ref / 'depth_images' / f'{v:06d}_depth.png') for v in views])
  normals = np.stack([np.stack([gaps_io.read_png16(ref / 'normals' / f'{v:06d}_depth_{c}.png')
                                for c in ('nx', 'ny', 'nz')]) for v in views])
  ours = example.depth_and_normals_array(depth, normals)
  for i, v in enumerate(views):
    d = np.array(Image.open(ref / 'depth_images' / f'{v:06d}_depth.png'), dtype=np.float32) / 1000.0
    ns = np.stack([np.array(Image.open(ref / 'normals' / f'{v:06d}_depth_{c}.png'), dtype=np.float32)
                   for c in ('nx', 'ny', 'nz')], axis=-1)
    ns /= np.maximum(np.linalg.norm(ns, axis=-1, keepdims=True), 1e-8)
    np.testing.assert_array_equal(ours[i, ..., 0], d)
    np.testing.assert_array_equal(ours[i, ..., 1:], ns)
  assert np.count_nonzero(ours[..., 0]) > 10000

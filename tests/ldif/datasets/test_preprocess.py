"""Tests of preprocess: shapes, value ranges, the align_corners resize against numpy, the sampling indices."""

import numpy as np
import pytest
import tensorflow as tf

from ldif.datasets import pipeline
from ldif.datasets import preprocess
from ldif.util import camera_util


def _resize_align_corners_numpy(images, height, width):
  """Reference: bilinear sampling at src = dst * (in - 1) / (out - 1) along each axis.

  The source coordinates are computed in float32 as the TF1 kernel does (scale and product in float), the
  blend in float64.
  """
  n, h_in, w_in, c = images.shape
  ys = np.arange(height, dtype=np.float32) * (np.float32(h_in - 1) / np.float32(height - 1))
  xs = np.arange(width, dtype=np.float32) * (np.float32(w_in - 1) / np.float32(width - 1))
  ys, xs = ys.astype(np.float64), xs.astype(np.float64)
  y0 = np.floor(ys).astype(int)
  x0 = np.floor(xs).astype(int)
  y1 = np.minimum(y0 + 1, h_in - 1)
  x1 = np.minimum(x0 + 1, w_in - 1)
  wy = (ys - y0)[None, :, None, None]
  wx = (xs - x0)[None, None, :, None]
  im = images.astype(np.float64)
  top = im[:, y0][:, :, x0] * (1 - wx) + im[:, y0][:, :, x1] * wx
  bottom = im[:, y1][:, :, x0] * (1 - wx) + im[:, y1][:, :, x1] * wx
  return top * (1 - wy) + bottom * wy


def test_resize_matches_align_corners_reference(rng):
  images = np.floor(rng.uniform(0, 1500, (3, 224, 224, 1))).astype(np.float32)
  images[:, 50:90, 30:200] = 0  # background holes, as in depth images
  ours = preprocess.resize_bilinear_align_corners(images, 137, 137).numpy()
  ref = _resize_align_corners_numpy(images, 137, 137)
  assert ours.shape == (3, 137, 137, 1)
  np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=0)
  # Corners map to corners exactly (the align_corners property; half-pixel resizing would not).
  rows, cols = [0, 0, -1, -1], [0, -1, 0, -1]
  np.testing.assert_array_equal(ours[:, rows, cols], images[:, rows, cols])
  half_pixel = tf.image.resize(images, [137, 137], method='bilinear').numpy()
  assert np.max(np.abs(half_pixel - ref)) > 1.0  # the reference can tell the two conventions apart


def _fake_batch(rng, batch_size=2):
  idx = np.arange(100000, dtype=np.float32)
  uniform = np.broadcast_to(idx[None, :, None], (batch_size, 100000, 4)).copy()
  near = -uniform
  return {
      'depth_renders': np.floor(rng.uniform(0, 1500, (batch_size, 20, 224, 224, 1))).astype(np.float32),
      'surface_point_samples': rng.standard_normal((batch_size, 10000, 6)).astype(np.float32),
      'bounding_box_samples': uniform,
      'near_surface_samples': near,
      'grid': rng.standard_normal((batch_size, 32, 32, 32)).astype(np.float32),
      'world2grid': np.tile(np.eye(4, dtype=np.float32), (batch_size, 1, 1)),
      'mesh_name': np.array([b'a|x', b'a|y'][:batch_size]),
  }


def test_shapes_units_and_views(rng):
  batch = _fake_batch(rng)
  out = preprocess.preprocess(batch, seed=1)
  assert out['depth_images'].shape == (2, 20, 137, 137, 1)
  assert out['surface_points'].shape == (2, 10000, 3) and out['surface_normals'].shape == (2, 10000, 3)
  assert out['uniform_samples'].shape == (2, 1024, 4) and out['near_surface_samples'].shape == (2, 1024, 4)
  assert out['bounding_box_samples'].shape == (2, 100000, 4)
  assert out['grid'].shape == (2, 32, 32, 32) and out['world2grid'].shape == (2, 4, 4)
  assert list(out['mesh_name'].numpy()) == [b'a|x', b'a|y']
  depth = out['depth_images'].numpy()
  ref = _resize_align_corners_numpy(batch['depth_renders'].reshape(40, 224, 224, 1), 137, 137) / 1000
  np.testing.assert_allclose(depth.reshape(40, 137, 137, 1), ref, atol=2e-6)
  assert 0 <= depth.min() and depth.max() <= 1.5
  np.testing.assert_array_equal(out['surface_points'].numpy(), batch['surface_point_samples'][..., :3])
  np.testing.assert_array_equal(out['surface_normals'].numpy(), batch['surface_point_samples'][..., 3:])
  single = preprocess.preprocess(batch, view_index=1, seed=1)['depth_images'].numpy()
  assert single.shape == (2, 1, 137, 137, 1)
  np.testing.assert_array_equal(single[:, 0], depth[:, 1])
  full = preprocess.preprocess(batch, height=224, width=224, seed=1)['depth_images'].numpy()
  np.testing.assert_allclose(full, batch['depth_renders'] / 1000, rtol=1e-7)


def _xyz_numpy(depth, view):
  """Reference xyz image of one view: float64 back-projection (reference 2.2) and cam2world, 0 on background."""
  cam2world = camera_util.dodeca_cam2world()[view]
  points = camera_util.depth_image_to_cam_points(depth) @ cam2world[:3, :3].T + cam2world[:3, 3]
  return np.where(depth[..., None] > 0, points, 0.0)


def test_xyz_images_match_a_numpy_back_projection(rng):
  batch = _fake_batch(rng)
  batch['depth_renders'][:, :, 100:140, 20:90] = 0  # background
  single = preprocess.preprocess(batch, height=224, width=224, view_index=0, seed=1, xyz_images=True)
  xyz = single['xyz_images'].numpy()
  assert xyz.shape == (2, 1, 224, 224, 3) and xyz.dtype == np.float32
  for b in range(2):
    depth = batch['depth_renders'][b, 0, ..., 0].astype(np.float64) / 1000
    np.testing.assert_allclose(xyz[b, 0], _xyz_numpy(depth, 0), rtol=0, atol=2e-6)
  assert np.all(xyz[:, 0, 100:140, 20:90] == 0)
  # All 20 views after the resize to 137: each view back-projected at 137x137 with its own camera.
  full = preprocess.preprocess(batch, seed=1, xyz_images=True)
  xyz, depth = full['xyz_images'].numpy(), full['depth_images'].numpy()
  assert xyz.shape == (2, 20, 137, 137, 3)
  for view in (0, 7, 19):
    np.testing.assert_allclose(xyz[1, view], _xyz_numpy(depth[1, view, ..., 0].astype(np.float64), view), rtol=0,
                               atol=2e-6)
  assert 'xyz_images' not in preprocess.preprocess(batch, seed=1)
  with pytest.raises(ValueError, match='view indices'):
    preprocess.depth_to_xyz_images(depth[:, :1], [20])


def test_sample_indices_skip_the_last_sample_and_follow_the_seed(rng):
  batch = _fake_batch(rng, batch_size=1)
  out = preprocess.preprocess(batch, sample_count=1_000_000, seed=7)
  idx = out['uniform_samples'].numpy()[0, :, 0].astype(np.int64)
  assert idx.min() == 0 and idx.max() == 99998  # maxval 99999 exclusive: sample 99999 is never drawn
  near_idx = -out['near_surface_samples'].numpy()[0, :, 0].astype(np.int64)
  assert near_idx.max() == 99998
  assert not np.array_equal(idx, near_idx)  # independent draws for the two sets
  small = _fake_batch(rng)
  a = preprocess.preprocess(small, seed=(7, 1))['uniform_samples'].numpy()
  b = preprocess.preprocess(small, seed=(7, 1))['uniform_samples'].numpy()
  c = preprocess.preprocess(small, seed=(7, 2))['uniform_samples'].numpy()
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert not np.array_equal(a[0], a[1])  # per batch element
  d = preprocess.preprocess(small)['uniform_samples'].numpy()
  e = preprocess.preprocess(small)['uniform_samples'].numpy()
  assert not np.array_equal(d, e)


def test_bad_arguments(rng):
  batch = _fake_batch(rng)
  with pytest.raises(ValueError, match='view_index'):
    preprocess.preprocess(batch, view_index=20)
  with pytest.raises(ValueError, match='depth_renders'):
    preprocess.preprocess(dict(batch, depth_renders=batch['depth_renders'][:, :3]))
  with pytest.raises(ValueError, match='sample_count'):
    preprocess.preprocess(batch, sample_count=0)


def test_on_a_real_batch(built_dataset):
  _, out, _ = built_dataset
  batch = next(iter(pipeline.build_dataset(out, 'train', 2, shuffle=False, repeat=False)))
  result = preprocess.preprocess(batch, seed=0)
  depth = result['depth_images'].numpy()
  assert np.all(np.isfinite(depth)) and depth.min() == 0 and 0.3 < depth.max() < 1.8
  signs = np.unique(result['near_surface_samples'].numpy()[..., 3])
  assert set(signs.tolist()) <= {-1.0, 0.0, 1.0}
  assert np.all(np.abs(result['uniform_samples'].numpy()[..., :3]) <= 0.7)
  # The xyz image of a view lies on the shape: every foreground pixel is near a stored surface sample.
  from scipy.spatial import cKDTree  # pylint: disable=import-outside-toplevel
  xyz = preprocess.preprocess(batch, height=224, width=224, view_index=0, seed=0,
                              xyz_images=True)['xyz_images'].numpy()
  for b in range(2):
    foreground = xyz[b, 0].reshape(-1, 3)
    foreground = foreground[np.any(foreground != 0, axis=-1)]
    distance, _ = cKDTree(result['surface_points'].numpy()[b]).query(foreground)
    assert len(foreground) > 1000 and np.median(distance) < 0.01 and distance.max() < 0.05


def test_inside_tf_function_and_dataset_map(rng):
  batch = _fake_batch(rng)
  ds = tf.data.Dataset.from_tensors(batch).repeat(2).map(lambda b: preprocess.preprocess(b, sample_count=8))
  first, second = [x['uniform_samples'].numpy() for x in ds]
  assert first.shape == (2, 8, 4) and not np.array_equal(first, second)

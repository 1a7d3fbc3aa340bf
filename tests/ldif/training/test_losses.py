"""Tests of the loss terms (ldif/training/losses.py) against values computed by hand in numpy."""

import numpy as np
import pytest
import scipy.interpolate
import tensorflow as tf

from ldif.model.hparams import HParams
from ldif.representation import structured_implicit_function as sif_lib
from ldif.training import losses


def _one_element_sif(center=(0.1, 0.0, 0.0), variance=0.01, constant=-1.0, batch=1):
  packed = np.zeros((batch, 1, 7), np.float32)
  packed[..., 0] = constant
  packed[..., 1:4] = center
  packed[..., 4:7] = variance
  return sif_lib.StructuredImplicit.from_packed(packed, radius_type='aa', symmetry_count=0)


def _numpy_class(points, center, variance, constant):
  f = constant * np.exp(-np.sum((points - center)**2, axis=-1) / (2 * variance))
  return 1 / (1 + np.exp(-100 * (f + 0.07)))


def test_term_selection_is_by_substring():
  assert losses.enabled_terms(HParams.preset('ldif')) == ['u', 'ns', 'gi', 'bb']
  assert losses.enabled_terms(HParams.preset('sif')) == ['u', 'ns', 'ec']
  with pytest.raises(ValueError, match='does not implement'):
    losses.enabled_terms(HParams(loss_terms='unsm'))
  with pytest.raises(ValueError, match='receptive field'):
    losses.enabled_terms(HParams(loss_receptive_field='l'))


@pytest.mark.parametrize('preset', ['ldif', 'sif'])
def test_sample_losses(preset):
  hp = HParams.preset(preset)
  rng = np.random.default_rng(0)
  xyz = rng.uniform(-0.3, 0.3, (1, 200, 3))
  sdf = rng.normal(size=(1, 200, 1))
  samples = np.concatenate([xyz, sdf], -1).astype(np.float32)
  sif = _one_element_sif()
  c = _numpy_class(xyz[0], np.array([0.1, 0, 0]), 0.01, -1.0)
  y = (sdf[0, :, 0] > 0).astype(np.float64)
  w = np.where(y > 0.5, 1.0, hp.inside_weight)
  expected = np.mean(w * (c - y)**2)
  u, outside = losses.uniform_sample_loss(hp, sif, None, samples)
  ns, _ = losses.near_surface_sample_loss(hp, sif, None, samples)
  np.testing.assert_allclose(u.numpy(), hp.uniform_sample_weight * expected, rtol=1e-5)
  np.testing.assert_allclose(ns.numpy(), hp.near_surface_sample_weight * expected, rtol=1e-5)
  np.testing.assert_allclose(outside.numpy(), y.mean(), rtol=1e-6)


def test_interpolate_grid_matches_scipy_inside_and_flags_outside():
  rng = np.random.default_rng(1)
  grid = rng.normal(size=(1, 32, 32, 32)).astype(np.float32)
  scale = 31 / 1.4
  world2grid = np.array([[[scale, 0, 0, 15.5], [0, scale, 0, 15.5], [0, 0, scale, 15.5], [0, 0, 0, 1]]],
                        np.float32)
  points = rng.uniform(-0.69, 0.69, (1, 50, 3)).astype(np.float32)
  points[0, 0] = [0.8, 0.0, 0.0]  # outside the grid
  values, invalid = losses.interpolate_grid(grid, points, world2grid)
  axis = np.arange(32)
  interp = scipy.interpolate.RegularGridInterpolator((axis, axis, axis), grid[0].astype(np.float64))
  g = points[0] * scale + 15.5
  expected = interp(g[1:, ::-1])  # grid is indexed [z][y][x]
  assert invalid.numpy()[0, :, 0].tolist() == [True] + [False] * 49
  np.testing.assert_allclose(values.numpy()[0, 1:, 0], expected, rtol=1e-4, atol=1e-4)
  assert values.numpy()[0, 0, 0] == pytest.approx(1e-5)
  # Differentiable w.r.t. the points inside the grid.
  p = tf.constant(points)
  with tf.GradientTape() as tape:
    tape.watch(p)
    v, _ = losses.interpolate_grid(grid, p, world2grid)
    total = tf.reduce_sum(v)
  grad = tape.gradient(total, p).numpy()
  assert np.all(grad[0, 0] == 0) and np.abs(grad[0, 1:]).max() > 0


def test_grid_inside_loss_thresholds_at_igt():
  hp = HParams.preset('ldif')
  grid = np.full((1, 32, 32, 32), 0.03, np.float32)  # below igt = 0.044 everywhere
  grid[:, :, :, 16:] = 0.2  # x >= 16 (world x > ~0.02) is far outside
  scale = 31 / 1.4
  world2grid = np.array([[[scale, 0, 0, 15.5], [0, scale, 0, 15.5], [0, 0, scale, 15.5], [0, 0, 0, 1]]],
                        np.float32)
  packed = np.zeros((1, 2, 10), np.float32)
  packed[0, 0, 1:4] = [-0.3, 0, 0]  # value 0.03 -> 0
  packed[0, 1, 1:4] = [0.3, 0, 0]  # value 0.2 -> kept
  sif = sif_lib.StructuredImplicit.from_packed(packed, radius_type='cov', symmetry_count=0)
  got = losses.grid_inside_loss(hp, sif, grid, world2grid).numpy()
  expected = 1.0 * np.mean([(0 + 1e-4)**2, (0.2 + 1e-4)**2]) + 1e-5
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_fixed_bounding_box_loss():
  hp = HParams.preset('ldif')
  packed = np.zeros((1, 2, 10), np.float32)
  packed[0, 0, 1:4] = [0.9, 0.0, -1.0]  # 0.2 and 0.3 outside the +-0.7 box
  sif = sif_lib.StructuredImplicit.from_packed(packed, radius_type='cov', symmetry_count=0)
  expected = 10.0 * (0.2**2 + 0.3**2) / 6
  np.testing.assert_allclose(losses.fixed_bounding_box_loss(hp, sif).numpy(), expected, rtol=1e-5)


def test_element_center_loss_box_includes_the_origin():
  hp = HParams.preset('sif')
  # Inside samples only at x in [0.2, 0.4]: the ground-truth box still reaches to the origin (quirk).
  rng = np.random.default_rng(2)
  xyz = rng.uniform(0.2, 0.4, (1, 100, 3))
  samples = np.concatenate([xyz, -np.ones((1, 100, 1))], -1)
  outside = np.concatenate([rng.uniform(-0.7, 0.7, (1, 100, 3)), np.ones((1, 100, 1))], -1)
  samples = np.concatenate([samples, outside], 1).astype(np.float32)
  lower, upper = losses.sample_bounding_box(samples)
  np.testing.assert_allclose(lower.numpy()[0, 0], [0, 0, 0])
  np.testing.assert_allclose(upper.numpy()[0, 0], xyz[0].max(0), rtol=1e-6)
  packed = np.zeros((1, 2, 7), np.float32)
  packed[0, :, 0] = -0.08  # F near the level set at the centres: C(c) is neither 0 nor 1
  packed[0, :, 4:7] = 0.01
  packed[0, 0, 1:4] = [0.1, 0.1, 0.1]  # inside the box
  packed[0, 1, 1:4] = [-0.2, 0.1, 0.1]  # 0.2 below the box in x
  sif = sif_lib.StructuredImplicit.from_packed(packed, radius_type='aa', symmetry_count=0)
  out = losses.element_center_loss(hp, sif, None, samples)
  centers = packed[0, :, 1:4].astype(np.float64)
  f = sum(-0.08 * np.exp(-np.sum((centers - c)**2, -1) / 0.02) for c in centers)
  c_class = 1 / (1 + np.exp(-100 * (f + 0.07)))
  assert 0.05 < c_class[0] < 0.95
  class_term = np.array([0.01 * c_class[0]**2, 0.0])
  box_term = np.array([0.0, 10.0 * 0.2**2 / 3])
  np.testing.assert_allclose(out['loss'].numpy(), np.mean(class_term + box_term), rtol=1e-4)
  np.testing.assert_allclose(out['outside_bb_comp_mean'].numpy(), box_term[1], rtol=1e-4)
  np.testing.assert_allclose(out['class_comp_mean'].numpy(), class_term[0], rtol=1e-4)


def test_compute_losses_sums_the_terms():
  hp = HParams.preset('ldif')
  rng = np.random.default_rng(3)
  batch = {
      'uniform_samples':
          np.concatenate(
              [rng.uniform(-.5, .5,
                           (2, 64, 3)), rng.normal(size=(2, 64, 1))], -1).astype(np.float32),
      'near_surface_samples':
          np.concatenate(
              [rng.uniform(-.5, .5,
                           (2, 64, 3)), rng.normal(size=(2, 64, 1))], -1).astype(np.float32),
      'grid':
          rng.normal(size=(2, 32, 32, 32)).astype(np.float32),
      'world2grid':
          np.tile(np.eye(4, dtype=np.float32), (2, 1, 1))
  }
  packed = rng.normal(size=(2, 4, 10)).astype(np.float32)
  sif = sif_lib.StructuredImplicit.from_activation(packed, radius_type='cov', symmetry_count=2)
  total, terms, extras = losses.compute_losses(hp, sif, None, batch)
  assert list(terms) == [
      'uniform_sample', 'near_surface_sample', 'lowres_grid_inside_loss', 'fixed_bounding_box_loss'
  ]
  assert set(extras) == {'uniform_sample-outside-frac', 'ns_sample-outside-frac'}
  np.testing.assert_allclose(total.numpy(), sum(v.numpy() for v in terms.values()), rtol=1e-6)
  assert losses.required_batch_keys(hp) == {'uniform_samples', 'near_surface_samples', 'grid', 'world2grid'}

"""The TF structured implicit function against analytic values and its numpy twin."""

import numpy as np
import pytest
import tensorflow as tf

from ldif.representation import numpy_twin
from ldif.representation import structured_implicit_function as sif
from testutil import random_occnet_weights


def random_activations(rng, batch, elements, radius_type):
  return rng.normal(size=(batch, elements, sif.explicit_element_dim(radius_type))).astype(np.float32)


@pytest.mark.parametrize('radius_type', ['iso', 'aa', 'cov'])
@pytest.mark.parametrize('symmetry_count', [0, 3])
def test_tf_matches_numpy_twin_sif(rng, radius_type, symmetry_count):
  act = random_activations(rng, 2, 7, radius_type)
  points = rng.uniform(-0.6, 0.6, size=(2, 50, 3)).astype(np.float32)
  tf_sif = sif.StructuredImplicit.from_activation(
      tf.constant(act), radius_type=radius_type, symmetry_count=symmetry_count)
  np_sif = numpy_twin.StructuredImplicitNp.from_activation(
      act, radius_type=radius_type, symmetry_count=symmetry_count)
  np.testing.assert_allclose(tf_sif.packed().numpy(), np_sif.packed(), atol=1e-6)
  np.testing.assert_allclose(tf_sif.rbf_influence(points).numpy(), np_sif.rbf_influence(points), atol=1e-5)
  np.testing.assert_allclose(tf_sif.world2local().numpy(), np_sif.world2local(), rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(tf_sif.local_points(points).numpy(), np_sif.local_points(points),
                             rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(tf_sif.implicit_values(points).numpy(), np_sif.implicit_values(points), atol=1e-5)
  np.testing.assert_allclose(tf_sif.class_at_samples(points).numpy(), np_sif.class_at_samples(points), atol=1e-5)
  # The kernel's thresholded rule, too.
  np.testing.assert_allclose(tf_sif.implicit_values(points, rbf_threshold=1e-4).numpy(),
                             np_sif.implicit_values(points, rbf_threshold=1e-4), atol=1e-5)


@pytest.mark.parametrize('symmetry_count', [0, 4])
def test_tf_matches_numpy_twin_ldif(rng, symmetry_count):
  act = random_activations(rng, 2, 6, 'cov')
  latents = rng.normal(size=(2, 6, 32)).astype(np.float32)
  weights = random_occnet_weights(rng)
  points = rng.uniform(-0.6, 0.6, size=(2, 40, 3)).astype(np.float32)
  tf_sif = sif.StructuredImplicit.from_activation(
      tf.constant(act), tf.constant(latents), radius_type='cov', symmetry_count=symmetry_count)
  np_sif = numpy_twin.StructuredImplicitNp.from_activation(
      act, latents, radius_type='cov', symmetry_count=symmetry_count)
  decoder = sif.occnet_decoder_fn(weights)
  tf_values = tf_sif.implicit_values(points, decoder).numpy()
  np_values = np_sif.implicit_values(points, weights)
  assert np.abs(np_values).max() > 1e-3  # the comparison is not vacuous
  np.testing.assert_allclose(tf_values, np_values, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(tf_sif.implicit_values(points, decoder, rbf_threshold=1e-4).numpy(),
                             np_sif.implicit_values(points, weights, rbf_threshold=1e-4), rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match='decoder'):
    tf_sif.implicit_values(points)


def test_occnet_decode_matches_twin(rng):
  weights = random_occnet_weights(rng, latent_size=8, width=16)
  latents = rng.normal(size=(3, 8)).astype(np.float32)
  points = rng.normal(size=(3, 20, 3)).astype(np.float32)
  out = sif.occnet_decode(weights, latents, points).numpy()
  assert out.shape == (3, 20, 1)
  np.testing.assert_allclose(out, numpy_twin.occnet_decode(weights, latents, points), rtol=1e-4, atol=1e-5)


def test_isotropic_element_is_a_gaussian():
  # One element, c = -0.5, center (0.1, 0, 0), variance 0.01: F(x) = -0.5 exp(-|x - mu|^2 / 0.02).
  s = sif.StructuredImplicit(tf.constant([[[-0.5]]]), tf.constant([[[0.1, 0.0, 0.0]]]),
                             tf.constant([[[0.01]]]), radius_type='iso')
  points = np.array([[[0.1, 0.0, 0.0], [0.2, 0.0, 0.0], [0.1, 0.1, 0.1]]], np.float32)
  expected = -0.5 * np.exp(-np.array([0.0, 0.01, 0.02]) / 0.02)
  np.testing.assert_allclose(s.implicit_values(points).numpy()[0, :, 0], expected, rtol=1e-6)
  # The class transfer: sigmoid(100 (F + 0.07)).
  np.testing.assert_allclose(s.class_at_samples(points).numpy()[0, :, 0],
                             1.0 / (1.0 + np.exp(-100.0 * (expected + 0.07))), rtol=1e-5)


def test_axis_aligned_local_frame_and_weights():
  variances = np.array([0.01, 0.04, 0.0025], np.float32)
  s = sif.StructuredImplicit(tf.constant([[[-1.0]]]), tf.constant([[[0.2, -0.1, 0.3]]]),
                             tf.constant([[variances]]), radius_type='aa')
  sigma = np.sqrt(variances)
  # One standard deviation along each axis maps to a unit local coordinate and weight exp(-1/2).
  points = np.array([[[0.2 + sigma[0], -0.1, 0.3], [0.2, -0.1 + sigma[1], 0.3], [0.2, -0.1, 0.3 + sigma[2]]]],
                    np.float32)
  local = s.local_points(points).numpy()[0, 0]
  np.testing.assert_allclose(local, np.eye(3), atol=1e-5)
  np.testing.assert_allclose(s.rbf_influence(points).numpy()[0, 0], np.exp(-0.5) * np.ones(3), rtol=1e-5)


def test_rotated_element_follows_its_rotation():
  # Yaw of 30 degrees: the long axis (x, sigma 0.2) turns towards +y.
  yaw = np.pi / 6
  radii = np.array([[[0.04, 0.0001, 0.0001, 0.0, 0.0, yaw]]], np.float32)
  s = sif.StructuredImplicit(tf.constant([[[-1.0]]]), tf.zeros([1, 1, 3]), tf.constant(radii), radius_type='cov')
  along = np.array([[[0.2 * np.cos(yaw), 0.2 * np.sin(yaw), 0.0]]], np.float32)
  across = np.array([[[0.2 * np.cos(yaw + np.pi / 2), 0.2 * np.sin(yaw + np.pi / 2), 0.0]]], np.float32)
  np.testing.assert_allclose(s.rbf_influence(along).numpy()[0, 0, 0], np.exp(-0.5), rtol=1e-4)
  assert s.rbf_influence(across).numpy()[0, 0, 0] < 1e-10
  rot = sif.rotation_matrices(tf.constant([0.0, 0.0, yaw])).numpy()
  np.testing.assert_allclose(rot @ np.array([1.0, 0, 0]), [np.cos(yaw), np.sin(yaw), 0.0], atol=1e-6)


def test_symmetric_copies_mirror_across_z():
  act = np.random.default_rng(5).normal(size=(1, 4, 10)).astype(np.float32)
  s = sif.StructuredImplicit.from_activation(tf.constant(act), radius_type='cov', symmetry_count=4)
  points = np.random.default_rng(6).uniform(-0.5, 0.5, size=(1, 30, 3)).astype(np.float32)
  mirrored = points * np.array([1, 1, -1], np.float32)
  # With every element mirrored, F is symmetric under z -> -z.
  np.testing.assert_allclose(s.implicit_values(points).numpy(), s.implicit_values(mirrored).numpy(), atol=1e-6)
  assert s.effective_element_count == 8
  assert s.tiled_world2local().shape == (1, 8, 4, 4)


def test_from_activation_ranges_and_packing():
  act = np.random.default_rng(7).normal(scale=5.0, size=(2, 5, 10)).astype(np.float32)
  latents = np.ones((2, 5, 3), np.float32)
  s = sif.StructuredImplicit.from_activation(tf.constant(act), tf.constant(latents), radius_type='cov',
                                             symmetry_count=2)
  assert np.all(s.constants.numpy() <= 0)
  assert np.all(s.radii.numpy()[..., :3] <= 0.15**2 + 1e-7)
  assert np.all(np.abs(s.radii.numpy()[..., 3:]) <= np.pi / 4 + 1e-6)
  np.testing.assert_allclose(s.centers.numpy(), act[..., 1:4] / 2)
  packed = s.packed()
  assert packed.shape == (2, 5, 13)
  again = sif.StructuredImplicit.from_packed(packed, radius_type='cov', symmetry_count=2)
  np.testing.assert_array_equal(again.latents.numpy(), latents)
  with pytest.raises(ValueError, match='activations'):
    sif.StructuredImplicit.from_activation(tf.constant(act[..., :7]), radius_type='cov', symmetry_count=0)
  with pytest.raises(ValueError, match='radius type'):
    sif.explicit_element_dim('sphere')


def test_thresholded_sif_rule_is_zero_far_from_elements():
  s = sif.StructuredImplicit(tf.constant([[[-1.0]]]), tf.zeros([1, 1, 3]), tf.constant([[[0.001, 0.001, 0.001]]]),
                             radius_type='aa')
  far = np.array([[[0.5, 0.5, 0.5]]], np.float32)
  assert s.implicit_values(far, rbf_threshold=1e-4).numpy()[0, 0, 0] == 0.0
  near = np.array([[[0.01, 0.0, 0.0]]], np.float32)
  np.testing.assert_allclose(s.implicit_values(near, rbf_threshold=1e-4).numpy(), s.implicit_values(near).numpy())

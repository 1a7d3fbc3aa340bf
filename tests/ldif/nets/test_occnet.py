"""Tests of the OccNet decoder with its conditional batch norm quirk (ldif/nets/occnet.py)."""

import numpy as np
import pytest
import tensorflow as tf

from ldif.nets import occnet
from ldif.representation import structured_implicit_function as sif_lib


def _numpy_decode(w, latents, points, fixed_residual=True):
  """Reference section 5.6 written in numpy from the exported weight dict (inference mode)."""

  def lin(x, name):
    return x @ w[f'{name}/kernel'] + w[f'{name}/bias']

  z = latents[:, None, :]

  def cbn(h, name):
    beta, gamma = lin(z, f'{name}/beta_fc'), lin(z, f'{name}/gamma_fc')
    return gamma * (h - w[f'{name}/running_mean']) / np.sqrt(w[f'{name}/running_variance'] + 1e-5) + beta

  h0 = lin(points, 'sample_resize_fc')
  a = cbn(h0, 'cbn_1')
  h = lin(np.maximum(a, 0), 'fc_1')
  h = lin(np.maximum(cbn(h, 'cbn_2'), 0), 'fc_2')
  h = (a if fixed_residual else h0) + h
  return lin(cbn(h, 'final_cbn'), 'final_activation')


@pytest.fixture
def decoder():
  rng = np.random.default_rng(0)
  layer = occnet.OccNetDecoder(32)
  layer.build((None, 32), (None, None, 3))
  weights = layer.decoder_weights()
  for key, value in weights.items():
    if key.endswith('running_mean'):
      weights[key] = rng.normal(0, 0.3, value.shape).astype(np.float32)
    elif key.endswith('running_variance'):
      weights[key] = rng.uniform(0.2, 2.0, value.shape).astype(np.float32)
    else:
      weights[key] = rng.normal(0, 0.3, value.shape).astype(np.float32)
  layer.set_decoder_weights(weights)
  return layer


def test_decoder_weights_have_the_pinned_keys_and_shapes(decoder):
  weights = decoder.decoder_weights()
  expected = sif_lib.occnet_weight_shapes(latent_size=32, width=32)
  assert {k: v.shape for k, v in weights.items()} == expected
  assert all(v.dtype == np.float32 for v in weights.values())


def test_inference_matches_numpy_and_the_functional_occnet_decode(decoder):
  rng = np.random.default_rng(1)
  latents = rng.normal(size=(6, 32)).astype(np.float32)
  points = rng.normal(size=(6, 50, 3)).astype(np.float32)
  got = decoder(latents, points, training=False).numpy()
  assert got.shape == (6, 50, 1)
  weights = decoder.decoder_weights()
  np.testing.assert_allclose(got, _numpy_decode(weights, latents, points), rtol=1e-4, atol=1e-5)
  functional = sif_lib.occnet_decode(weights, tf.constant(latents), tf.constant(points)).numpy()
  # Equal up to float32 rounding (the two use different matrix-product kernels, so summation orders differ).
  scale = np.abs(got).max()
  np.testing.assert_allclose(got, functional, rtol=2e-6, atol=2e-6 * scale)
  # Batched leading dims, as StructuredImplicit uses it: [B, E', L] and [B, E', N, 3].
  functional_4d = sif_lib.occnet_decode(weights, latents.reshape(2, 3, 32), points.reshape(2, 3, 50,
                                                                                           3)).numpy()
  np.testing.assert_allclose(got.reshape(2, 3, 50, 1), functional_4d, rtol=2e-6, atol=2e-6 * scale)


def test_cbn_training_quirk_updates_scalar_statistics_then_normalizes_with_them():
  rng = np.random.default_rng(2)
  cbn = occnet.ConditionalBatchNorm(4)
  latents = rng.normal(size=(3, 5)).astype(np.float32)
  features = rng.normal(2.0, 3.0, size=(3, 7, 4)).astype(np.float32)
  cbn(latents, features)  # build; inference mode leaves the statistics alone
  assert cbn.running_mean.numpy().tolist() == [0.0] and cbn.running_variance.numpy().tolist() == [0.0]
  row_means = features.mean(axis=(1, 2))
  row_vars = features.var(axis=(1, 2))
  expected_mean = 0.005 * row_means.mean()
  expected_var = 0.005 * row_vars.mean()
  x = tf.constant(features)
  with tf.GradientTape() as tape:
    tape.watch(x)
    out = cbn(latents, x, training=True)
    loss = tf.reduce_sum(out)
  np.testing.assert_allclose(cbn.running_mean.numpy(), [expected_mean], rtol=1e-5)
  np.testing.assert_allclose(cbn.running_variance.numpy(), [expected_var], rtol=1e-5)
  beta = latents @ cbn.beta_fc.kernel.numpy() + cbn.beta_fc.bias.numpy()
  gamma = latents @ cbn.gamma_fc.kernel.numpy() + cbn.gamma_fc.bias.numpy()
  expected = gamma[:, None] * (features - expected_mean) / np.sqrt(expected_var + 1e-5) + beta[:, None]
  np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-4)
  # No gradient through the statistics: d out / d features is gamma / sqrt(s + eps) exactly.
  grad = tape.gradient(loss, x).numpy()
  np.testing.assert_allclose(grad, np.broadcast_to(gamma[:, None] / np.sqrt(expected_var + 1e-5), grad.shape),
                             rtol=1e-5)
  # A second training call moves the statistics again by 0.5%.
  cbn(latents, x, training=True)
  np.testing.assert_allclose(cbn.running_mean.numpy(), [0.995 * expected_mean + 0.005 * row_means.mean()],
                             rtol=1e-5)


def test_cbn_batch_statistics_fix():
  rng = np.random.default_rng(3)
  cbn = occnet.ConditionalBatchNorm(4, use_batch_statistics=True)
  latents = rng.normal(size=(3, 5)).astype(np.float32)
  features = rng.normal(2.0, 3.0, size=(3, 7, 4)).astype(np.float32)
  out = cbn(latents, features, training=True).numpy()
  mean, var = features.mean(axis=(1, 2)).mean(), features.var(axis=(1, 2)).mean()
  beta = latents @ cbn.beta_fc.kernel.numpy() + cbn.beta_fc.bias.numpy()
  gamma = latents @ cbn.gamma_fc.kernel.numpy() + cbn.gamma_fc.bias.numpy()
  expected = gamma[:, None] * (features - mean) / np.sqrt(var + 1e-5) + beta[:, None]
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(cbn.running_mean.numpy(), [0.005 * mean], rtol=1e-5)


def test_residual_variants_and_config():
  rng = np.random.default_rng(4)
  latents = rng.normal(size=(2, 32)).astype(np.float32)
  points = rng.normal(size=(2, 10, 3)).astype(np.float32)
  fixed = occnet.OccNetDecoder(32)
  unfixed = occnet.OccNetDecoder(32, fixed_residual=False)
  fixed.build((None, 32))
  unfixed.build((None, 32))
  unfixed.set_decoder_weights(fixed.decoder_weights())
  w = fixed.decoder_weights()
  np.testing.assert_allclose(
      unfixed(latents, points).numpy(), _numpy_decode(w, latents, points, False), rtol=1e-4, atol=1e-5)
  assert not np.allclose(fixed(latents, points).numpy(), unfixed(latents, points).numpy())
  config = fixed.get_config()
  clone = occnet.OccNetDecoder.from_config(config)
  assert clone.get_config() == config


def test_set_decoder_weights_rejects_bad_dicts(decoder):
  weights = decoder.decoder_weights()
  del weights['fc_1/bias']
  with pytest.raises(ValueError, match='missing'):
    decoder.set_decoder_weights(weights)
  weights = decoder.decoder_weights()
  weights['fc_1/kernel'] = np.zeros((3, 3), np.float32)
  with pytest.raises(ValueError, match='fc_1/kernel'):
    decoder.set_decoder_weights(weights)
  with pytest.raises(ValueError, match='no weights yet'):
    occnet.OccNetDecoder(8).decoder_weights()

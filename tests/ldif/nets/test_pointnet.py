"""Tests of the local PointNet (ldif/nets/pointnet.py), including its fused per-point MLP + max pool."""

import numpy as np
import pytest
import tensorflow as tf

from ldif.nets import pointnet


def _plain_mlp_max(points, kernels, biases, pool_kernel, pool_bias):
  """The reference: every per-point layer over all points, then reduce_max (TF's own gradients)."""
  x = points
  for kernel, bias in zip(kernels, biases):
    x = tf.nn.relu(tf.einsum('mni,io->mno', x, kernel) + bias)
  return tf.reduce_max(tf.nn.relu(tf.einsum('mni,io->mno', x, pool_kernel) + pool_bias), axis=1)


def _random_mlp(rng, widths):
  kernels = [tf.constant((rng.normal(size=(i, o)) / np.sqrt(i)).astype(np.float32)) for i, o in zip(widths, widths[1:])]
  biases = [tf.constant((rng.normal(size=(o,)) * 0.1).astype(np.float32)) for o in widths[1:]]
  return kernels, biases


@pytest.mark.parametrize('static_shapes', [False, True], ids=['distinct-points', 'static-shapes'])
@pytest.mark.parametrize('target_rows', [1, 100, 10_000], ids=['one-set-per-chunk', 'two-sets', 'one-chunk'])
def test_per_point_mlp_max_matches_the_plain_layers(static_shapes, target_rows):
  rng = np.random.default_rng(0)
  m, n = 7, 40  # 7 sets: the last chunk is padded when chunks hold 2 sets
  points = tf.constant(rng.normal(size=(m, n, 6)).astype(np.float32))
  kernels, biases = _random_mlp(rng, [6, 8, 5])
  pool_kernel, pool_bias = _random_mlp(rng, [5, 9])
  pool_kernel, pool_bias = pool_kernel[0], pool_bias[0]
  pool_bias = tf.tensor_scatter_nd_update(pool_bias, [[0]], [-100.0])  # a dead channel: max 0, no gradient
  upstream = tf.constant(rng.normal(size=(m, 9)).astype(np.float32))
  watched = [points, pool_kernel, pool_bias] + kernels + biases
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(watched)
    fused = pointnet.per_point_mlp_max(points, kernels, biases, pool_kernel, pool_bias,
                                       static_shapes=static_shapes, target_rows=target_rows)
    plain = _plain_mlp_max(points, kernels, biases, pool_kernel, pool_bias)
    fused_loss = tf.reduce_sum(fused * upstream)
    plain_loss = tf.reduce_sum(plain * upstream)
  np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-6, atol=1e-6)
  assert fused.numpy()[:, 0].max() == 0.0
  for got, want in zip(tape.gradient(fused_loss, watched), tape.gradient(plain_loss, watched)):
    scale = np.abs(want.numpy()).max()
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5 * scale)
  # Only arg-max points receive gradient: a point that is never a channel's maximum gets none.
  d_points = tape.gradient(fused_loss, points).numpy()
  assert 0 < np.count_nonzero(np.abs(d_points).sum(-1)) < m * n


def test_per_point_mlp_max_under_xla_with_static_shapes():
  rng = np.random.default_rng(3)
  points = tf.constant(rng.normal(size=(4, 30, 6)).astype(np.float32))
  kernels, biases = _random_mlp(rng, [6, 8, 8])
  pool_kernel, pool_bias = (t[0] for t in _random_mlp(rng, [8, 12]))

  def value_and_grads(fn):
    with tf.GradientTape() as tape:
      tape.watch([points] + kernels)
      loss = tf.reduce_sum(tf.sin(fn(points, kernels, biases, pool_kernel, pool_bias)))
    return [loss] + tape.gradient(loss, [points] + kernels)

  fused = tf.function(lambda: value_and_grads(
      lambda *a: pointnet.per_point_mlp_max(*a, static_shapes=True, target_rows=60)), jit_compile=True)()
  plain = value_and_grads(_plain_mlp_max)
  for got, want in zip(fused, plain):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5 * np.abs(want.numpy()).max())


@pytest.fixture(scope='module')
def nets():
  fused = pointnet.PointNet(32, 64, fused_max_pool=True)
  plain = pointnet.PointNet(32, 64, fused_max_pool=False)
  fused.build((None, None, 6))
  plain.build((None, None, 6))
  plain.set_weights(fused.get_weights())
  return fused, plain


def test_fused_and_plain_pointnets_agree_with_gradients(nets):
  fused, plain = nets
  points = tf.constant(np.random.default_rng(1).normal(size=(4, 50, 6)).astype(np.float32))
  results = []
  for net in (fused, plain):
    with tf.GradientTape() as tape:
      tape.watch(points)
      out = net(points)
      loss = tf.reduce_sum(tf.sin(out))
    results.append((out.numpy(), tape.gradient(loss, [points] + net.trainable_variables)))
  np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
  for a, b in zip(results[0][1], results[1][1]):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5 * np.abs(b.numpy()).max())


def test_pointnet_is_a_symmetric_function_of_the_points(nets):
  fused, _ = nets
  rng = np.random.default_rng(2)
  points = rng.normal(size=(3, 30, 6)).astype(np.float32)
  permuted = points[:, rng.permutation(30)]
  np.testing.assert_allclose(fused(points).numpy(), fused(permuted).numpy(), rtol=1e-5, atol=1e-6)
  assert fused(points).shape == (3, 32)


def test_ldif_pointnet_layout():
  net = pointnet.PointNet(32, 512)
  net.build((None, None, 6))
  shapes = [tuple(v.shape) for v in net.trainable_weights if len(v.shape) == 2]
  assert shapes == [(6, 64), (64, 64), (64, 64), (64, 128), (128, 512), (512, 512), (512, 256), (256, 32)]
  assert sum(int(np.prod(v.shape)) for v in net.trainable_weights) == 485_344
  assert net.final[-1].activation.__name__ == 'linear'
  assert all(layer.activation.__name__ == 'relu'
             for layer in net.block1 + net.block2 + [net.block2_last] + net.final[:2])
  assert pointnet.PointNet.from_config(net.get_config()).get_config() == net.get_config()

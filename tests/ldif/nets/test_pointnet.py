"""Tests of the local PointNet (ldif/nets/pointnet.py), including its fused max-pool gradient."""

import numpy as np
import pytest
import tensorflow as tf

from ldif.nets import pointnet


def test_dense_relu_max_matches_autodiff():
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(5, 40, 7)).astype(np.float32))
  kernel = tf.constant(rng.normal(size=(7, 9)).astype(np.float32))
  bias = tf.constant(rng.normal(size=(9,)).astype(np.float32))
  bias = tf.tensor_scatter_nd_update(bias, [[0]], [-100.0])  # a dead channel: max 0, no gradient
  upstream = tf.constant(rng.normal(size=(5, 9)).astype(np.float32))

  def reference(x, kernel, bias):
    return tf.reduce_max(tf.nn.relu(tf.einsum('mni,io->mno', x, kernel) + bias), axis=1)

  with tf.GradientTape(persistent=True) as tape:
    tape.watch([x, kernel, bias])
    fused = pointnet.dense_relu_max(x, kernel, bias)
    plain = reference(x, kernel, bias)
    fused_loss = tf.reduce_sum(fused * upstream)
    plain_loss = tf.reduce_sum(plain * upstream)
  np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-6, atol=1e-6)
  assert fused.numpy()[:, 0].max() == 0.0
  for got, want in zip(tape.gradient(fused_loss, [x, kernel, bias]),
                       tape.gradient(plain_loss, [x, kernel, bias])):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


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
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


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

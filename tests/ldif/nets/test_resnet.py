"""Tests of the slim-layout ResNet50-V2 encoder (ldif/nets/resnet.py)."""

import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ldif.nets import resnet

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'model'))
import param_counts  # pylint: disable=wrong-import-position


@pytest.fixture(scope='module')
def encoder():
  keras.utils.set_random_seed(3)
  net = resnet.ResNet50V2()
  net(tf.zeros([1, 137, 137, 20]))
  return net


def test_stage_shapes_at_137(encoder):
  x = tf.random.stateless_uniform([1, 137, 137, 20], seed=[1, 1])
  h = encoder.conv1(resnet._pad_same_explicit(x, 7))  # pylint: disable=protected-access
  assert h.shape == (1, 69, 69, 64)
  h = keras.ops.max_pool(h, 3, strides=2, padding='same')
  assert h.shape == (1, 35, 35, 64)
  expected = [(18, 256), (9, 512), (5, 1024), (5, 2048)]
  for block, (size, depth) in zip(encoder.blocks, expected):
    h = block(h)
    assert h.shape == (1, size, size, depth)


def test_parameter_count_matches_the_slim_layout(encoder):
  expected = param_counts.resnet_v2_50(20)
  trainable = sum(int(np.prod(v.shape)) for v in encoder.trainable_weights)
  non_trainable = sum(int(np.prod(v.shape)) for v in encoder.non_trainable_weights)
  assert (trainable, non_trainable) == (expected.trainable, expected.non_trainable)
  assert trainable == 27_769_024


def test_output_is_l2_normalized(encoder):
  x = tf.random.stateless_uniform([2, 137, 137, 20], seed=[2, 3], maxval=2.0)
  for training in (False, True):
    y = encoder(x, training=training).numpy()
    assert y.shape == (2, 2048)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), 1.0, rtol=1e-5)


def test_slim_conventions(encoder):
  unit = encoder.blocks[0].units[0]
  for bn in (unit.preact, unit.bn1, unit.bn2, encoder.postnorm):
    assert bn.momentum == pytest.approx(0.997) and bn.epsilon == pytest.approx(1e-5)
    assert bn.center and bn.scale
  init = unit.conv1.kernel_initializer.get_config()
  assert (init['scale'], init['mode'], init['distribution']) == (2.0, 'fan_in', 'truncated_normal')
  # Convolutions followed by batch norm have no bias; the others do.
  assert not unit.conv1.use_bias and not unit.conv2.use_bias
  assert unit.conv3.use_bias and unit.shortcut.use_bias and encoder.conv1.use_bias and encoder.logits.use_bias
  # Identity shortcut when the depth is unchanged.
  assert encoder.blocks[0].units[1].shortcut is None
  assert [u.stride for u in encoder.blocks[0].units] == [1, 1, 2]
  assert [u.stride for u in encoder.blocks[3].units] == [1, 1, 1]


def _bn_inference(x, layer):
  return ((x - layer.moving_mean.numpy()) / np.sqrt(layer.moving_variance.numpy() + layer.epsilon) *
          layer.gamma.numpy() + layer.beta.numpy())


def _randomize_bn(layer, rng):
  c = layer.gamma.shape[0]
  layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
  layer.beta.assign(rng.normal(0, 0.1, c).astype(np.float32))
  layer.moving_mean.assign(rng.normal(0, 0.1, c).astype(np.float32))
  layer.moving_variance.assign(rng.uniform(0.5, 2.0, c).astype(np.float32))


@pytest.mark.parametrize('depth_in, stride', [(8, 2), (16, 2), (16, 1)])
def test_bottleneck_matches_reference_ops(depth_in, stride):
  """A unit in inference mode vs the slim definition written with raw tf.nn ops (explicit padding, strided
  subsample for identity shortcuts, projection on the pre-activation)."""
  rng = np.random.default_rng(depth_in + stride)
  unit = resnet.BottleneckV2(16, 4, stride)
  x = rng.normal(size=(2, 9, 9, depth_in)).astype(np.float32)
  unit(x)
  for bn in (unit.preact, unit.bn1, unit.bn2):
    _randomize_bn(bn, rng)
  for conv in [unit.conv3] + ([unit.shortcut] if unit.shortcut is not None else []):
    conv.bias.assign(rng.normal(0, 0.1, conv.bias.shape).astype(np.float32))
  got = unit(x, training=False).numpy()

  preact = np.maximum(_bn_inference(x, unit.preact), 0)
  if depth_in != 16:
    shortcut = tf.nn.conv2d(preact, unit.shortcut.kernel, stride, 'VALID') + unit.shortcut.bias
  else:
    shortcut = tf.nn.max_pool2d(x, 1, stride, 'SAME')
  r = np.maximum(_bn_inference(tf.nn.conv2d(preact, unit.conv1.kernel, 1, 'VALID').numpy(), unit.bn1), 0)
  if stride == 1:
    r = tf.nn.conv2d(r, unit.conv2.kernel, 1, 'SAME').numpy()
  else:
    r = tf.nn.conv2d(np.pad(r, [[0, 0], [1, 1], [1, 1], [0, 0]]), unit.conv2.kernel, stride, 'VALID').numpy()
  r = np.maximum(_bn_inference(r, unit.bn2), 0)
  r = tf.nn.conv2d(r, unit.conv3.kernel, 1, 'VALID') + unit.conv3.bias
  np.testing.assert_allclose(got, (shortcut + r).numpy(), rtol=1e-4, atol=1e-5)


def test_training_mode_uses_batch_statistics_and_updates_moving_averages():
  unit = resnet.BottleneckV2(16, 4, 1)
  x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 5, 5, 16)).astype(np.float32)
  unit(x)
  before = unit.preact.moving_mean.numpy().copy()
  a = unit(x, training=True).numpy()
  b = unit(x, training=False).numpy()
  assert not np.allclose(a, b)
  after = unit.preact.moving_mean.numpy()
  np.testing.assert_allclose(after, 0.997 * before + 0.003 * x.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)


def test_config_round_trip():
  net = resnet.ResNet50V2(output_size=64, normalize_output=False)
  clone = resnet.ResNet50V2.from_config(net.get_config())
  assert clone.output_size == 64 and not clone.normalize_output
  unit = resnet.BottleneckV2(32, 8, 2)
  assert resnet.BottleneckV2.from_config(unit.get_config()).get_config() == unit.get_config()

"""Tests of the SIF CNN, the FC head and early fusion (ldif/nets/cnn.py)."""

import numpy as np
import tensorflow as tf

from ldif.nets import cnn


def _leaky(x):
  return np.where(x > 0, x, 0.2 * x)


def test_early_fusion_puts_view_k_in_channel_k():
  views = np.zeros((2, 20, 3, 4, 1), np.float32)
  for k in range(20):
    views[:, k] = k
  fused = cnn.early_fusion(tf.constant(views)).numpy()
  assert fused.shape == (2, 3, 4, 20)
  np.testing.assert_array_equal(fused[0, 1, 2], np.arange(20))
  single = cnn.early_fusion(tf.constant(views[:, :1])).numpy()
  assert single.shape == (2, 3, 4, 1)


def test_sif_encoder_matches_reference_ops():
  rng = np.random.default_rng(0)
  enc = cnn.SifEncoder()
  x = rng.uniform(0, 2, size=(2, 137, 137, 1)).astype(np.float32)
  got = enc(x).numpy()
  assert got.shape == (2, 1024)
  assert enc.fc.kernel.shape == (5 * 5 * 128, 1024)
  h = x
  sizes = []
  for conv in enc.convs:
    conv.bias.assign(rng.normal(0, 0.05, conv.bias.shape).astype(np.float32))
  for conv in enc.convs:
    h = _leaky((tf.nn.conv2d(h, conv.kernel, 2, 'SAME') + conv.bias).numpy())
    sizes.append(h.shape[1])
  assert sizes == [69, 35, 18, 9, 5]
  expected = _leaky(h.reshape(2, -1) @ enc.fc.kernel.numpy() + enc.fc.bias.numpy())
  np.testing.assert_allclose(enc(x).numpy(), expected, rtol=1e-4, atol=1e-5)
  # Glorot-uniform init (the TF-contrib default), zero biases at creation.
  assert cnn.SifEncoder().convs[0].kernel_initializer.__class__.__name__ == 'GlorotUniform'


def test_fc_head_shapes_and_activations():
  rng = np.random.default_rng(1)
  head = cnn.FcHead(element_count=5, element_length=7, hidden_size=16)
  x = rng.normal(size=(3, 8)).astype(np.float32)
  out = head(x).numpy()
  assert out.shape == (3, 5, 7)
  h = _leaky(x @ head.fc1.kernel.numpy() + head.fc1.bias.numpy())
  h = _leaky(h @ head.fc2.kernel.numpy() + head.fc2.bias.numpy())
  h = h @ head.fc3.kernel.numpy() + head.fc3.bias.numpy()
  np.testing.assert_allclose(out, h.reshape(3, 5, 7), rtol=1e-5, atol=1e-6)
  assert not np.any(head.fc1.bias.numpy())
  config = head.get_config()
  assert cnn.FcHead.from_config(config).get_config() == config

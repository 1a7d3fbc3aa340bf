"""The local PointNet that encodes each shape element's point cloud into its latent code (LDIF).

Port of ldif/nets/pointnet.py `pointnet_depr` as LDIF configures it (udp='t', p64='f', fbp='t', hyp='f'):
no input or feature transform networks, per-point shared layers 64, 64 | 64, 128, mfc (1x1 convolutions with
bias and ReLU, i.e. dense layers over the feature axis), a plain max over the points, then FC 512 ReLU, FC 256
ReLU and a linear FC to the latent size. Reference section 5.5. Glorot-uniform kernels and zero biases (the
TF-contrib defaults).

The per-point layers and the max pool run as one fused operation (`per_point_mlp_max`) with a hand-written
gradient, because the plain graph is dominated by memory traffic and by work whose result is zero:

- forward: the point sets are processed a few at a time (`target_rows` points per chunk), so that every
  per-point activation of a chunk stays in the CPU cache; only the pooled maxima [M, mfc] and their arg-max
  points [M, mfc] are kept (the plain graph writes and re-reads [M*N, 64..mfc] activations, 0.5 GB at batch 8,
  and TF's ArgMax over the middle axis of the whole [M, N, mfc] tensor alone costs 0.2-0.3 s on 2 cores);
- backward: a max pool passes gradient only to the arg-max point of each channel, so every per-point layer
  receives gradient only at those points (at most min(N, mfc) of the N points of a set; about a quarter at
  LDIF's initialization). The backward pass recomputes the per-point layers on these points alone and
  back-propagates through them, instead of running every layer's gradient products over all M*N points.

The values and gradients are those of the plain layers followed by `reduce_max` (up to float32 summation
order), except for exactly tied maxima, where TF splits a channel's gradient among the tied points and this
gives it to the first one (same value, and tied points of a real point cloud have identical inputs).
`PointNet(fused_max_pool=False)` runs the plain layers (the reference the tests compare with).
"""

import keras
from keras import ops
import tensorflow as tf

FUSED_TARGET_ROWS = 2048
"""Points per forward chunk of `per_point_mlp_max` (2048 x 512 float32 activations = 4 MB, cache-sized)."""


def _mlp(x, kernels, biases):
  """ReLU layers x -> relu(x @ k + b) in turn; returns every activation [x, h_1, ..., h_n] ([R, width])."""
  activations = [x]
  for kernel, bias in zip(kernels, biases):
    activations.append(tf.nn.relu(tf.nn.bias_add(tf.matmul(activations[-1], kernel), bias)))
  return activations


def _chunked_max(points, kernels, biases, pool_kernel, pool_bias, target_rows):
  """Per-set max and arg-max over points of h(x) @ pool_kernel + pool_bias, a few sets at a time.

  Returns (maxima [M, O], arg-max point index int32 [M, O]) in the dtype of `points`.
  """
  m = tf.shape(points)[0]
  n = tf.shape(points)[1]
  f = points.shape[-1]
  o = pool_kernel.shape[-1]
  sets_per_chunk = tf.maximum(1, target_rows // tf.maximum(n, 1))
  chunk_count = (m + sets_per_chunk - 1) // sets_per_chunk
  padded = tf.pad(points, [[0, chunk_count * sets_per_chunk - m], [0, 0], [0, 0]])
  chunks = tf.reshape(padded, [chunk_count, sets_per_chunk * n, f])

  def one_chunk(x):
    h = _mlp(x, kernels, biases)[-1]
    z = tf.reshape(tf.nn.bias_add(tf.matmul(h, pool_kernel), pool_bias), [sets_per_chunk, n, o])
    return tf.reduce_max(z, axis=1), tf.argmax(z, axis=1, output_type=tf.int32)

  maxima, index = tf.map_fn(one_chunk, chunks, fn_output_signature=(points.dtype, tf.int32),
                            parallel_iterations=None if tf.executing_eagerly() else 2)
  return tf.reshape(maxima, [-1, o])[:m], tf.reshape(index, [-1, o])[:m]


def per_point_mlp_max(points, kernels, biases, pool_kernel, pool_bias, *, static_shapes=False,
                      target_rows=FUSED_TARGET_ROWS):
  """max over the points of each set of relu(h(x) @ pool_kernel + pool_bias), h a per-point ReLU MLP.

  The fused forward and sparse backward passes are described in the module docstring.

  Args:
    points: [M, N, F] float (M point sets of N points with F features), N >= 1.
    kernels, biases: the per-point layers before the pooled one: lists of [I_l, O_l] and [O_l] (same dtype).
    pool_kernel: [I, O]; pool_bias: [O] (I = the last per-point width, or F without per-point layers).
    static_shapes: False computes the backward pass on the distinct arg-max points (a data-dependent count,
      fewest rows); True on one row per (set, channel) pair, M*O rows (static shapes, as XLA requires).
    target_rows: points per forward chunk.

  Returns:
    [M, O]: max_n relu(h(points[m, n]) @ pool_kernel + pool_bias).
  """
  kernels, biases = list(kernels), list(biases)
  layer_count = len(kernels)
  if len(biases) != layer_count:
    raise ValueError(f'per_point_mlp_max: {layer_count} kernels but {len(biases)} biases')

  @tf.custom_gradient
  def fused(points, pool_kernel, pool_bias, *weights):
    ks, bs = list(weights[:layer_count]), list(weights[layer_count:])
    maxima, index = _chunked_max(points, ks, bs, pool_kernel, pool_bias, target_rows)

    def grad(upstream):
      m = tf.shape(points)[0]
      n = tf.shape(points)[1]
      f = points.shape[-1]
      o = pool_kernel.shape[-1]
      g = upstream * tf.cast(maxima > 0, upstream.dtype)  # ReLU gradient at the selected point  [M, O]
      pair_point = tf.reshape(index + n * tf.range(m)[:, None], [-1])  # flat point of each pair  [M*O]
      flat_points = tf.reshape(points, [m * n, f])
      if static_shapes:
        row_points = pair_point
        pair_row = tf.range(m * o)
      else:
        hit = tf.math.unsorted_segment_max(tf.ones_like(pair_point), pair_point, m * n) > 0  # [M*N]
        row_points = tf.cast(tf.where(hit)[:, 0], tf.int32)  # the distinct arg-max points  [R]
        pair_row = tf.gather(tf.cumsum(tf.cast(hit, tf.int32)) - 1, pair_point)  # row of each pair  [M*O]
      activations = _mlp(tf.gather(flat_points, row_points), ks, bs)  # recomputed on the R rows only
      h_pairs = tf.reshape(tf.gather(activations[-1], pair_row), [m, o, -1])  # [M, O, I]
      d_pool_kernel = tf.einsum('moi,mo->io', h_pairs, g)
      d_pool_bias = tf.reduce_sum(g, axis=0)
      pair_grads = tf.reshape(g[:, :, None] * tf.transpose(pool_kernel)[None], [m * o, -1])  # [M*O, I]
      d_h = tf.math.unsorted_segment_sum(pair_grads, pair_row, tf.shape(activations[0])[0])  # [R, I]
      d_kernels, d_biases = [None] * layer_count, [None] * layer_count
      for layer in reversed(range(layer_count)):
        d_pre = tf.where(activations[layer + 1] > 0, d_h, tf.zeros_like(d_h))
        d_kernels[layer] = tf.matmul(activations[layer], d_pre, transpose_a=True)
        d_biases[layer] = tf.reduce_sum(d_pre, axis=0)
        d_h = tf.matmul(d_pre, ks[layer], transpose_b=True)
      d_points = tf.math.unsorted_segment_sum(d_h, row_points, m * n)
      return (tf.reshape(d_points, [m, n, f]), d_pool_kernel, d_pool_bias, *d_kernels, *d_biases)

    return tf.nn.relu(maxima), grad

  return fused(points, pool_kernel, pool_bias, *kernels, *biases)


@keras.saving.register_keras_serializable(package='ldif')
class PointNet(keras.layers.Layer):
  """PointNet encoder of point sets with features: [M, N, F] -> [M, output_size].

  Args:
    output_size: width of the final linear layer (the latent size L = 32 in LDIF).
    max_pool_features: width of the last per-point layer (`mfc`: 512 in LDIF).
    fused_max_pool: run the per-point layers and the max pool as `per_point_mlp_max` (same values and
      gradients, less work); False runs the plain layers (used by tests as the reference).

  Attributes:
    static_shapes: passed to `per_point_mlp_max`; must be True when the layer runs inside an XLA-compiled
      function that takes its gradient (the trainer sets it for `--xla step`). Not part of the config.

  Input [M, N, F] float32: M = B*E element views of N = 1024 points with F = 6 features (local xyz, local
  normal). Output [M, output_size] float32.
  Port of ldif/nets/pointnet.py `pointnet_depr` (variable scopes mlp_block_1/conv1..2, mlp_block_2/conv1..3,
  final_mlp/fc1, fc2, final_fc).
  """

  def __init__(self, output_size, max_pool_features=1024, fused_max_pool=True, **kwargs):
    super().__init__(**kwargs)
    self.output_size = int(output_size)
    self.max_pool_features = int(max_pool_features)
    self.fused_max_pool = bool(fused_max_pool)
    self.static_shapes = False
    policy = self.dtype_policy

    def dense(width, name, activation='relu'):
      return keras.layers.Dense(width, activation=activation, name=name, dtype=policy)

    # Sub-layers are attributes, not list items: tf.train.Checkpoint does not track Keras 3 lists of layers.
    self.mlp_block_1_conv1 = dense(64, 'mlp_block_1_conv1')
    self.mlp_block_1_conv2 = dense(64, 'mlp_block_1_conv2')
    self.mlp_block_2_conv1 = dense(64, 'mlp_block_2_conv1')
    self.mlp_block_2_conv2 = dense(128, 'mlp_block_2_conv2')
    self.block2_last = dense(self.max_pool_features, 'mlp_block_2_conv3')
    self.final_mlp_fc1 = dense(512, 'final_mlp_fc1')
    self.final_mlp_fc2 = dense(256, 'final_mlp_fc2')
    self.final_mlp_final_fc = dense(self.output_size, 'final_mlp_final_fc', activation=None)

  @property
  def block1(self):
    return [self.mlp_block_1_conv1, self.mlp_block_1_conv2]

  @property
  def block2(self):
    """The per-point layers of the second block before the last (widest) one."""
    return [self.mlp_block_2_conv1, self.mlp_block_2_conv2]

  @property
  def final(self):
    return [self.final_mlp_fc1, self.final_mlp_fc2, self.final_mlp_final_fc]

  def build(self, input_shape):
    width = int(input_shape[-1])
    for layer in self.block1 + self.block2:
      layer.build((None, None, width))
      width = layer.units
    self.block2_last.build((None, None, width))
    width = self.max_pool_features
    for layer in self.final:
      layer.build((None, width))
      width = layer.units

  def call(self, points, training=False):
    dtype = self.compute_dtype
    if self.fused_max_pool:
      per_point = self.block1 + self.block2
      cast = lambda v: ops.cast(v, dtype)  # pylint: disable=unnecessary-lambda-assignment
      x = per_point_mlp_max(cast(points), [cast(l.kernel) for l in per_point], [cast(l.bias) for l in per_point],
                            cast(self.block2_last.kernel), cast(self.block2_last.bias),
                            static_shapes=self.static_shapes)
    else:
      shape = ops.shape(points)
      # Plain 2D matrix products over all M*N points (a 3D input would make Keras use a broadcasting batched
      # product, whose kernel gradient is much slower).
      x = ops.reshape(points, (shape[0] * shape[1], points.shape[-1]))
      for layer in self.block1 + self.block2:
        x = layer(x)
      x = ops.reshape(x, (shape[0], shape[1], x.shape[-1]))
      x = ops.max(self.block2_last(x), axis=1)
    for layer in self.final:
      x = layer(x)
    return ops.cast(x, 'float32')

  def get_config(self):
    config = super().get_config()
    config.update(output_size=self.output_size, max_pool_features=self.max_pool_features,
                  fused_max_pool=self.fused_max_pool)
    return config

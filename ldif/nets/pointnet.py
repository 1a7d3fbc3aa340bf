"""The local PointNet that encodes each shape element's point cloud into its latent code (LDIF).

Port of ldif/nets/pointnet.py `pointnet_depr` as LDIF configures it (udp='t', p64='f', fbp='t', hyp='f'):
no input or feature transform networks, per-point shared layers 64, 64 | 64, 128, mfc (1x1 convolutions with
bias and ReLU, i.e. dense layers over the feature axis), a plain max over the points, then FC 512 ReLU, FC 256
ReLU and a linear FC to the latent size. Reference section 5.5. Glorot-uniform kernels and zero biases (the
TF-contrib defaults).

The last per-point layer and the max pool are fused (`dense_relu_max`) with a hand-written gradient: only the
arg-max point of each channel receives gradient from a max pool, so the backward pass of the widest layer
(about 80% of the PointNet's arithmetic) reduces to gathers and a scatter instead of two [M*N, 128] x [128,
mfc] products. The values and gradients are those of `relu(x @ W + b)` followed by `reduce_max` (up to
summation order; for exactly tied positive maxima TF splits the gradient among the tied points whereas this
gives it to the first one, which yields the same parameter gradients because tied points have identical
inputs).
"""

import keras
from keras import ops
import tensorflow as tf


def dense_relu_max(x, kernel, bias):
  """max over points of relu(x @ kernel + bias), with a sparse backward pass.

  Args:
    x: [M, N, I] float (M point sets of N points with I features).
    kernel: [I, O] float; bias: [O] float (same dtype as x).

  Returns:
    [M, O] float: the per-set maximum of each output channel.
  """

  @tf.custom_gradient
  def fused(x, kernel, bias):
    m = tf.shape(x)[0]
    n = tf.shape(x)[1]
    i = tf.shape(x)[2]
    o = tf.shape(kernel)[1]
    y = tf.nn.relu(tf.reshape(tf.matmul(tf.reshape(x, [m * n, i]), kernel), [m, n, o]) + bias)
    index = tf.argmax(y, axis=1, output_type=tf.int32)  # [M, O]
    y_max = tf.reduce_max(y, axis=1)

    def grad(g):
      g = g * tf.cast(y_max > 0, g.dtype)  # ReLU gradient at the selected point.
      x_sel = tf.gather(x, index, batch_dims=1)  # [M, O, I]
      d_kernel = tf.einsum('moi,mo->io', x_sel, g)
      d_bias = tf.reduce_sum(g, axis=0)
      contributions = g[:, :, None] * tf.transpose(kernel)[None, :, :]  # [M, O, I]
      segments = index + n * tf.range(m)[:, None]
      d_x = tf.math.unsorted_segment_sum(tf.reshape(contributions, [m * o, i]), tf.reshape(segments, [-1]),
                                         m * n)
      return tf.reshape(d_x, [m, n, i]), d_kernel, d_bias

    return y_max, grad

  return fused(x, kernel, bias)


@keras.saving.register_keras_serializable(package='ldif')
class PointNet(keras.layers.Layer):
  """PointNet encoder of point sets with features: [M, N, F] -> [M, output_size].

  Args:
    output_size: width of the final linear layer (the latent size L = 32 in LDIF).
    max_pool_features: width of the last per-point layer (`mfc`: 512 in LDIF).
    fused_max_pool: use `dense_relu_max` for the last per-point layer and the max (same values and gradients,
      less work); False runs the plain layers (used by tests as the reference).

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
    shape = ops.shape(points)
    # The per-point layers run as plain 2D matrix products over all M*N points (a 3D input would make Keras
    # use a broadcasting batched product, whose kernel gradient is much slower).
    x = ops.reshape(points, (shape[0] * shape[1], points.shape[-1]))
    for layer in self.block1 + self.block2:
      x = layer(x)
    x = ops.reshape(x, (shape[0], shape[1], x.shape[-1]))
    if self.fused_max_pool:
      kernel = ops.cast(self.block2_last.kernel, self.compute_dtype)
      bias = ops.cast(self.block2_last.bias, self.compute_dtype)
      x = dense_relu_max(ops.cast(x, self.compute_dtype), kernel, bias)
    else:
      x = ops.max(self.block2_last(x), axis=1)
    for layer in self.final:
      x = layer(x)
    return ops.cast(x, 'float32')

  def get_config(self):
    config = super().get_config()
    config.update(output_size=self.output_size, max_pool_features=self.max_pool_features,
                  fused_max_pool=self.fused_max_pool)
    return config

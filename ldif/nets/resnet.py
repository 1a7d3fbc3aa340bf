"""ResNet50-V2 (pre-activation) encoder in the layout of TF-slim's `resnet_v2_50`, as Keras layers.

Port of the `cnna='s50'` branch of ldif/nets/cnn.py (`early_fusion_cnn`), which called TF-slim's
`resnet_v2_50(num_classes=2048, global_pool=True)` inside `resnet_arg_scope()` and L2-normalized the logits.
Reference section 5.2 lists the stages; at a 137x137 input: conv1 69x69x64, pool1 35x35x64, block1 18x18x256,
block2 9x9x512, block3 5x5x1024, block4 5x5x2048, global mean, 1x1 logits conv -> [B, 2048].

Slim conventions reproduced here:
- Convolutions followed by batch norm have no bias; the others (conv1, shortcut projections, each unit's last
  1x1 conv, the logits) have a zero-initialized bias.
- Weights: variance scaling, factor 2, fan-in, truncated normal (He). The slim L2 regularizer was never added
  to the original's loss, so there is no weight decay here either.
- Batch norm: decay 0.997 (Keras momentum 0.997), epsilon 1e-5, centre and scale; batch statistics when
  `training=True`, moving averages otherwise. (Keras updates the moving variance with the biased batch
  variance; TF1's fused kernel used the unbiased one. This only affects the stored inference statistics, by a
  factor n/(n-1) with n = B*H*W samples per channel.)
- Strided 3x3 convolutions ("conv2d_same") pad explicitly (1 before, 1 after) and then use VALID padding;
  conv1 pads 3/3 for its 7x7 stride-2 kernel. The stride of each of blocks 1-3 sits on its last unit; the
  identity shortcut of a strided unit is a 1x1 max pool (a strided subsample).
"""

import keras
from keras import ops


def he_initializer(seed=None):
  """Slim's conv initializer: variance scaling with factor 2, fan-in, truncated normal."""
  return keras.initializers.VarianceScaling(scale=2.0, mode='fan_in', distribution='truncated_normal',
                                            seed=seed)


def _pad_same_explicit(x, kernel_size):
  """Pads [B, H, W, C] like slim's conv2d_same for a strided kernel: (k-1)//2 before, the rest after."""
  total = kernel_size - 1
  before = total // 2
  after = total - before
  return ops.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])


@keras.saving.register_keras_serializable(package='ldif')
class BottleneckV2(keras.layers.Layer):
  """One pre-activation bottleneck unit (slim `bottleneck` of resnet_v2).

  preact = ReLU(BN(x)); shortcut = x (subsampled by `stride`) if the channel count is unchanged, else a 1x1
  conv with bias on preact; residual = 1x1 conv/BN/ReLU -> 3x3 conv (stride)/BN/ReLU -> 1x1 conv with bias;
  output = shortcut + residual.

  Args:
    depth: output channels.
    depth_bottleneck: channels of the inner 1x1 and 3x3 convolutions.
    stride: stride of the 3x3 convolution (1 or 2).

  Input [B, H, W, C_in] float; output [B, ceil(H/stride), ceil(W/stride), depth].
  Port of slim resnet_v2.bottleneck.
  """

  def __init__(self, depth, depth_bottleneck, stride, **kwargs):
    super().__init__(**kwargs)
    self.depth = int(depth)
    self.depth_bottleneck = int(depth_bottleneck)
    self.stride = int(stride)
    policy = self.dtype_policy
    bn = dict(momentum=0.997, epsilon=1e-5, center=True, scale=True, dtype=policy)
    self.preact = keras.layers.BatchNormalization(name='preact', **bn)
    self.conv1 = keras.layers.Conv2D(self.depth_bottleneck, 1, use_bias=False,
                                     kernel_initializer=he_initializer(), name='conv1', dtype=policy)
    self.bn1 = keras.layers.BatchNormalization(name='conv1_bn', **bn)
    self.conv2 = keras.layers.Conv2D(self.depth_bottleneck, 3, strides=self.stride,
                                     padding='same' if self.stride == 1 else 'valid', use_bias=False,
                                     kernel_initializer=he_initializer(), name='conv2', dtype=policy)
    self.bn2 = keras.layers.BatchNormalization(name='conv2_bn', **bn)
    self.conv3 = keras.layers.Conv2D(self.depth, 1, use_bias=True, kernel_initializer=he_initializer(),
                                     name='conv3', dtype=policy)
    self.shortcut = None

  def build(self, input_shape):
    depth_in = int(input_shape[-1])
    if depth_in != self.depth:
      self.shortcut = keras.layers.Conv2D(self.depth, 1, strides=self.stride, use_bias=True,
                                          kernel_initializer=he_initializer(), name='shortcut',
                                          dtype=self.dtype_policy)
      self.shortcut.build(input_shape)
    self.preact.build(input_shape)
    self.conv1.build(input_shape)
    self.bn1.build(tuple(input_shape[:-1]) + (self.depth_bottleneck,))
    self.conv2.build(tuple(input_shape[:-1]) + (self.depth_bottleneck,))
    self.bn2.build(tuple(input_shape[:-1]) + (self.depth_bottleneck,))
    self.conv3.build(tuple(input_shape[:-1]) + (self.depth_bottleneck,))

  def call(self, x, training=False):
    preact = ops.relu(self.preact(x, training=training))
    if self.shortcut is not None:
      shortcut = self.shortcut(preact)
    elif self.stride > 1:
      shortcut = x[:, ::self.stride, ::self.stride, :]  # == slim's 1x1 max pool with stride, SAME padding.
    else:
      shortcut = x
    r = ops.relu(self.bn1(self.conv1(preact), training=training))
    if self.stride > 1:
      r = _pad_same_explicit(r, 3)
    r = ops.relu(self.bn2(self.conv2(r), training=training))
    r = self.conv3(r)
    return shortcut + r

  def get_config(self):
    config = super().get_config()
    config.update(depth=self.depth, depth_bottleneck=self.depth_bottleneck, stride=self.stride)
    return config


@keras.saving.register_keras_serializable(package='ldif')
class ResNetBlock(keras.layers.Layer):
  """A stack of `unit_count` bottleneck units; the last one carries `stride` (slim resnet_v2_block)."""

  def __init__(self, base_depth, unit_count, stride, **kwargs):
    super().__init__(**kwargs)
    self.base_depth = int(base_depth)
    self.unit_count = int(unit_count)
    self.stride = int(stride)
    # Sub-layers are attributes, not list items: tf.train.Checkpoint does not track Keras 3 lists of layers.
    for i in range(self.unit_count):
      setattr(
          self, f'unit_{i + 1}',
          BottleneckV2(self.base_depth * 4, self.base_depth, self.stride if i == self.unit_count - 1 else 1,
                       name=f'unit_{i + 1}', dtype=self.dtype_policy))

  @property
  def units(self):
    """The bottleneck units, in order."""
    return [getattr(self, f'unit_{i + 1}') for i in range(self.unit_count)]

  def call(self, x, training=False):
    for unit in self.units:
      x = unit(x, training=training)
    return x

  def get_config(self):
    config = super().get_config()
    config.update(base_depth=self.base_depth, unit_count=self.unit_count, stride=self.stride)
    return config


@keras.saving.register_keras_serializable(package='ldif')
class ResNet50V2(keras.layers.Layer):
  """TF-slim `resnet_v2_50` with a 2048-wide 1x1 logits conv, global pooling and L2-normalized output.

  Args:
    output_size: logits width (2048 in LDIF).
    normalize_output: L2-normalize the logits along features (True in LDIF, `embedding = l2_normalize(...)`).

  Input [B, H, W, C] float32 (early-fused views, C = V, gaps-unit depth); output [B, output_size].
  Port of the 's50' encoder in ldif/nets/cnn.py (slim resnet_v2_50 in resnet_arg_scope).
  """

  BLOCKS = ((64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1))

  def __init__(self, output_size=2048, normalize_output=True, **kwargs):
    super().__init__(**kwargs)
    self.output_size = int(output_size)
    self.normalize_output = bool(normalize_output)
    policy = self.dtype_policy
    self.conv1 = keras.layers.Conv2D(64, 7, strides=2, padding='valid', use_bias=True,
                                     kernel_initializer=he_initializer(), name='conv1', dtype=policy)
    for i, (d, n, s) in enumerate(self.BLOCKS):
      setattr(self, f'block{i + 1}', ResNetBlock(d, n, s, name=f'block{i + 1}', dtype=policy))
    self.postnorm = keras.layers.BatchNormalization(momentum=0.997, epsilon=1e-5, name='postnorm',
                                                    dtype=policy)
    self.logits = keras.layers.Conv2D(self.output_size, 1, use_bias=True, kernel_initializer=he_initializer(),
                                      name='logits', dtype=policy)

  @property
  def blocks(self):
    """block1..block4, in order."""
    return [getattr(self, f'block{i + 1}') for i in range(len(self.BLOCKS))]

  def call(self, images, training=False):
    x = self.conv1(_pad_same_explicit(images, 7))
    x = ops.max_pool(x, 3, strides=2, padding='same')
    for block in self.blocks:
      x = block(x, training=training)
    x = ops.relu(self.postnorm(x, training=training))
    x = ops.mean(x, axis=(1, 2), keepdims=True)
    x = self.logits(x)
    x = ops.reshape(x, (-1, self.output_size))
    if self.normalize_output:
      x = ops.cast(x, 'float32')
      # tf.nn.l2_normalize: x / sqrt(max(sum(x^2), 1e-12)).
      x = x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))
    return x

  def get_config(self):
    config = super().get_config()
    config.update(output_size=self.output_size, normalize_output=self.normalize_output)
    return config

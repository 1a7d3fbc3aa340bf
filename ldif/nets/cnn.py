"""The SIF image encoder, the fully connected head shared by all encoders, and early fusion of depth views.

Port of ldif/nets/cnn.py (`early_fusion_cnn`) and of the encoder in ldif/util/net_util.py (`encode`,
`inputs_to_feature_vector`) used by `cnna='cnn'`. Reference sections 5.1, 5.3 and 5.4.

Initialization follows the TF-contrib layer defaults the original used: Glorot-uniform kernels, zero biases.
Leaky ReLUs use slope 0.2 (`tf.nn.leaky_relu`'s default).
"""

import keras
from keras import ops

LEAKY_SLOPE = 0.2


def early_fusion(views):
  """Stacks V views as channels: [B, V, H, W, C] -> [B, H, W, V*C] (channel v*C + c = view v, channel c).

  Port of the transpose/reshape in `early_fusion_cnn`; a single view is just reshaped.
  """
  shape = ops.shape(views)
  v, h, w, c = views.shape[1], views.shape[2], views.shape[3], views.shape[4]
  if v == 1:
    return ops.reshape(views, (shape[0], h, w, c))
  return ops.reshape(ops.transpose(views, (0, 2, 3, 1, 4)), (shape[0], h, w, v * c))


@keras.saving.register_keras_serializable(package='ldif')
class SifEncoder(keras.layers.Layer):
  """SIF's small CNN: five 3x3 stride-2 SAME convs (16, 32, 64, 128, 128; bias, leaky ReLU, no norm), flatten
  in NHWC order, FC to `embedding_size` with leaky ReLU.

  Input [B, H, W, C] float32 (137x137x1 for SIF: 137->69->35->18->9->5, 5*5*128 = 3200 features);
  output [B, embedding_size] (1024). Port of net_util.inputs_to_feature_vector / encode (scope 'Encoder').
  """

  CONV_DEPTHS = (16, 32, 64, 128, 128)

  def __init__(self, embedding_size=1024, **kwargs):
    super().__init__(**kwargs)
    self.embedding_size = int(embedding_size)
    # Sub-layers are attributes, not list items: tf.train.Checkpoint does not track Keras 3 lists of layers.
    for i, d in enumerate(self.CONV_DEPTHS):
      setattr(
          self, f'conv_{i}',
          keras.layers.Conv2D(d, 3, strides=2, padding='same', use_bias=True, name=f'conv_{i}',
                              dtype=self.dtype_policy))
    self.fc = keras.layers.Dense(self.embedding_size, name='fully_connected', dtype=self.dtype_policy)

  @property
  def convs(self):
    """The five convolutions, in order."""
    return [getattr(self, f'conv_{i}') for i in range(len(self.CONV_DEPTHS))]

  def call(self, images, training=False):
    x = images
    for conv in self.convs:
      x = ops.leaky_relu(conv(x), negative_slope=LEAKY_SLOPE)
    x = ops.reshape(x, (ops.shape(x)[0], x.shape[1] * x.shape[2] * x.shape[3]))
    return ops.leaky_relu(self.fc(x), negative_slope=LEAKY_SLOPE)

  def get_config(self):
    config = super().get_config()
    config.update(embedding_size=self.embedding_size)
    return config


@keras.saving.register_keras_serializable(package='ldif')
class FcHead(keras.layers.Layer):
  """embedding -> FC 2048 leaky ReLU -> FC 2048 leaky ReLU -> FC E*D linear -> [B, E, D].

  The widths are hard-coded in the original (its `fcc`/`fcs` hparams are dead); `hidden_size` exists for
  tests. Input [B, F] float; output [B, element_count, element_length] float32 (activations, before
  StructuredImplicit.from_activation). Port of the FC part of `early_fusion_cnn` (nrm='none').
  """

  def __init__(self, element_count, element_length, hidden_size=2048, **kwargs):
    super().__init__(**kwargs)
    self.element_count = int(element_count)
    self.element_length = int(element_length)
    self.hidden_size = int(hidden_size)
    policy = self.dtype_policy
    self.fc1 = keras.layers.Dense(self.hidden_size, name='fully_connected', dtype=policy)
    self.fc2 = keras.layers.Dense(self.hidden_size, name='fully_connected_1', dtype=policy)
    self.fc3 = keras.layers.Dense(self.element_count * self.element_length, name='fully_connected_2',
                                  dtype=policy)

  def call(self, embedding, training=False):
    x = ops.leaky_relu(self.fc1(embedding), negative_slope=LEAKY_SLOPE)
    x = ops.leaky_relu(self.fc2(x), negative_slope=LEAKY_SLOPE)
    x = ops.cast(self.fc3(x), 'float32')
    return ops.reshape(x, (ops.shape(x)[0], self.element_count, self.element_length))

  def get_config(self):
    config = super().get_config()
    config.update(element_count=self.element_count, element_length=self.element_length,
                  hidden_size=self.hidden_size)
    return config

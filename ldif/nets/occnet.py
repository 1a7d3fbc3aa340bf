"""The OccNet decoder with conditional batch norm that LDIF evaluates for every shape element.

Port of ldif/nets/occnet.py (`occnet_decoder` -> `multishape_occnet_decoder`, the batched path with orc = 1
residual block, fon = 't', no positional encoding, no sigmoid). Reference section 5.6:

    h0 = sample_resize_fc(q)                      q: local query point, 3 -> W
    a  = cbn_1(h0; z)
    h  = fc_1(relu(a))
    h  = fc_2(relu(cbn_2(h; z)))
    h  = a + h                                     (skip after cbn_1: fon = 't'; h0 + h when fon = 'f')
    O  = final_activation(final_cbn(h; z))         W -> 1, linear

CBN(h; z) = gamma(z) * (h - m) / sqrt(s + 1e-5) + beta(z), beta and gamma dense layers of the latent z.

**Quirk reproduced (reference 10.5).** m and s are *scalars* (shape [1], initialized to 0, not trainable). In
a training call each CBN first updates them with the batch moments - the mean over rows of the per-row moments
over all samples and channels, m <- 0.995 m + 0.005 mean_batch, s <- 0.995 s + 0.005 var_batch - and then
normalizes with the *updated running values* (never the batch moments); no gradient flows through the
statistics. At inference the stored values are used. Every training call updates them (LDIF's two sample
losses make two calls per step; this port calls the uniform loss first, then the near-surface loss).
`use_batch_statistics=True` offers the conventional fix: normalize training batches with their own moments
(with gradient) while still keeping the running values for inference.

The layer always computes in float32 (it is small, and its running statistics are float32).
`decoder_weights()` exports the pinned weight dictionary (CONVENTIONS.md) that the functional
`ldif.representation.structured_implicit_function.occnet_decode` and the `.occnet` files use.
"""

import keras
from keras import ops
import numpy as np

CBN_NAMES = ('cbn_1', 'cbn_2', 'final_cbn')
CBN_MOMENTUM = 0.995
CBN_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package='ldif')
class ConditionalBatchNorm(keras.layers.Layer):
  """Conditional batch norm with scalar running statistics (see the module docstring for the quirk).

  Args:
    width: channel count W of the normalized features.
    momentum, epsilon: 0.995 and 1e-5 in the original.
    use_batch_statistics: normalize training batches with their own moments (the fix) instead of the updated
      running values (the original).

  call(latents [M, L], features [M, N, W], training) -> [M, N, W] float32.
  Port of occnet.batched_cbn_layer.
  """

  def __init__(self, width, momentum=CBN_MOMENTUM, epsilon=CBN_EPSILON, use_batch_statistics=False, **kwargs):
    kwargs['dtype'] = 'float32'
    super().__init__(**kwargs)
    self.width = int(width)
    self.momentum = float(momentum)
    self.epsilon = float(epsilon)
    self.use_batch_statistics = bool(use_batch_statistics)
    self.beta_fc = keras.layers.Dense(self.width, name='beta_fc', dtype='float32')
    self.gamma_fc = keras.layers.Dense(self.width, name='gamma_fc', dtype='float32')

  def build(self, latents_shape, features_shape=None):
    latent_size = int(latents_shape[-1])
    self.beta_fc.build((None, latent_size))
    self.gamma_fc.build((None, latent_size))
    self.running_mean = self.add_weight(shape=(1,), initializer='zeros', trainable=False, name='running_mean',
                                        aggregation='mean')
    self.running_variance = self.add_weight(shape=(1,), initializer='zeros', trainable=False,
                                            name='running_variance', aggregation='mean')

  def call(self, latents, features, training=False):
    beta = ops.expand_dims(self.beta_fc(latents), 1)
    gamma = ops.expand_dims(self.gamma_fc(latents), 1)
    if training:
      row_mean = ops.mean(features, axis=(1, 2))
      row_variance = ops.mean(ops.square(features - row_mean[:, None, None]), axis=(1, 2))
      batch_mean = ops.mean(row_mean)
      batch_variance = ops.mean(row_variance)
      new_mean = (self.momentum * self.running_mean + (1.0 - self.momentum) * ops.stop_gradient(batch_mean))
      new_variance = (self.momentum * self.running_variance +
                      (1.0 - self.momentum) * ops.stop_gradient(batch_variance))
      self.running_mean.assign(new_mean)
      self.running_variance.assign(new_variance)
      if self.use_batch_statistics:
        mean, variance = batch_mean, batch_variance
      else:
        mean, variance = new_mean, new_variance
    else:
      mean, variance = self.running_mean, self.running_variance
    return gamma * ((features - mean) / ops.sqrt(variance + self.epsilon)) + beta

  def get_config(self):
    config = super().get_config()
    config.update(width=self.width, momentum=self.momentum, epsilon=self.epsilon,
                  use_batch_statistics=self.use_batch_statistics)
    return config


@keras.saving.register_keras_serializable(package='ldif')
class OccNetDecoder(keras.layers.Layer):
  """LDIF's per-element OccNet decoder (one residual block, conditional batch norm, linear output).

  Args:
    latent_size: L, the length of each element's latent code (32 in LDIF).
    hidden_size: W, the hidden width; the original ties it to L (None -> latent_size).
    fixed_residual: fon = 't' (True, LDIF) takes the skip connection after cbn_1; False before it.
    use_batch_statistics: the port-only CBN fix (see the module docstring); False = the original.

  call(latents [M, L], local_points [M, N, 3], training=False) -> [M, N, 1] float32, the residual O that
  StructuredImplicit multiplies into each element's RBF term. M = B*E' rows (one per effective element),
  points in that element's local frame.
  Port of ldif/nets/occnet.py (multishape_occnet_decoder with batched_occnet_resnet_layer).
  """

  def __init__(self, latent_size=32, hidden_size=None, fixed_residual=True, use_batch_statistics=False,
               **kwargs):
    kwargs['dtype'] = 'float32'
    super().__init__(**kwargs)
    self.latent_size = int(latent_size)
    self.hidden_size = int(hidden_size) if hidden_size is not None else self.latent_size
    self.fixed_residual = bool(fixed_residual)
    self.use_batch_statistics = bool(use_batch_statistics)
    w = self.hidden_size
    self.sample_resize_fc = keras.layers.Dense(w, name='sample_resize_fc', dtype='float32')
    self.cbn_1 = ConditionalBatchNorm(w, use_batch_statistics=self.use_batch_statistics, name='cbn_1')
    self.fc_1 = keras.layers.Dense(w, name='fc_1', dtype='float32')
    self.cbn_2 = ConditionalBatchNorm(w, use_batch_statistics=self.use_batch_statistics, name='cbn_2')
    self.fc_2 = keras.layers.Dense(w, name='fc_2', dtype='float32')
    self.final_cbn = ConditionalBatchNorm(w, use_batch_statistics=self.use_batch_statistics, name='final_cbn')
    self.final_activation = keras.layers.Dense(1, name='final_activation', dtype='float32')

  def build(self, latents_shape, local_points_shape=None):
    w, l = self.hidden_size, self.latent_size
    if int(latents_shape[-1]) != l:
      raise ValueError(f'OccNetDecoder expects latents of length {l}, got shape {tuple(latents_shape)}')
    self.sample_resize_fc.build((None, 3))
    for cbn in (self.cbn_1, self.cbn_2, self.final_cbn):
      cbn.build((None, l), (None, None, w))
    self.fc_1.build((None, w))
    self.fc_2.build((None, w))
    self.final_activation.build((None, w))

  def call(self, latents, local_points, training=False):
    latents = ops.cast(latents, 'float32')
    local_points = ops.cast(local_points, 'float32')
    shape = ops.shape(local_points)

    def per_sample(dense, h):
      # Plain 2D products over all M*N samples (cheaper gradients than a broadcasting batched product).
      flat = dense(ops.reshape(h, (shape[0] * shape[1], h.shape[-1])))
      return ops.reshape(flat, (shape[0], shape[1], dense.units))

    h0 = per_sample(self.sample_resize_fc, local_points)
    a = self.cbn_1(latents, h0, training=training)
    skip = a if self.fixed_residual else h0
    h = per_sample(self.fc_1, ops.relu(a))
    h = per_sample(self.fc_2, ops.relu(self.cbn_2(latents, h, training=training)))
    h = skip + h
    return per_sample(self.final_activation, self.final_cbn(latents, h, training=training))

  def decoder_weights(self):
    """The weights as the pinned dict of float32 numpy arrays (CONVENTIONS.md, `occnet_decode`, `.occnet`).

    Keys (W = hidden width, L = latent size): sample_resize_fc/{kernel [3,W], bias [W]};
    {cbn_1, cbn_2, final_cbn}/{beta_fc,gamma_fc}/{kernel [L,W], bias [W]}, .../running_mean [1],
    .../running_variance [1]; fc_1/{kernel,bias}, fc_2/{kernel,bias} ([W,W], [W]);
    final_activation/{kernel [W,1], bias [1]}. Kernels are [in, out].

    Raises:
      ValueError: the layer has not been built (call it once or call `build`).
    """
    if not self.built:
      raise ValueError('OccNetDecoder.decoder_weights(): the layer has no weights yet; call it once first')
    out = {}

    def put(prefix, dense):
      out[f'{prefix}/kernel'] = np.asarray(dense.kernel.numpy(), dtype=np.float32)
      out[f'{prefix}/bias'] = np.asarray(dense.bias.numpy(), dtype=np.float32)

    put('sample_resize_fc', self.sample_resize_fc)
    for name in CBN_NAMES:
      cbn = getattr(self, name)
      put(f'{name}/beta_fc', cbn.beta_fc)
      put(f'{name}/gamma_fc', cbn.gamma_fc)
      out[f'{name}/running_mean'] = np.asarray(cbn.running_mean.numpy(), dtype=np.float32).reshape([1])
      out[f'{name}/running_variance'] = np.asarray(cbn.running_variance.numpy(),
                                                   dtype=np.float32).reshape([1])
    put('fc_1', self.fc_1)
    put('fc_2', self.fc_2)
    put('final_activation', self.final_activation)
    return out

  def set_decoder_weights(self, weights):
    """Loads a dict in the `decoder_weights()` layout (e.g. from `sif_file.read_occnet`) into the layer.

    Builds the layer if needed. Raises ValueError naming missing/extra keys or mismatched shapes.
    """
    if not self.built:
      self.build((None, self.latent_size), (None, None, 3))
    expected = self.decoder_weights()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
      raise ValueError(f'OccNet weight dict mismatch: missing {missing}, unexpected {extra}')
    for key, ref in expected.items():
      value = np.asarray(weights[key], dtype=np.float32)
      if value.shape != ref.shape:
        raise ValueError(f'OccNet weight {key}: expected shape {ref.shape}, got {value.shape}')
    targets = {}

    def target(prefix, dense):
      targets[f'{prefix}/kernel'] = dense.kernel
      targets[f'{prefix}/bias'] = dense.bias

    target('sample_resize_fc', self.sample_resize_fc)
    for name in CBN_NAMES:
      cbn = getattr(self, name)
      target(f'{name}/beta_fc', cbn.beta_fc)
      target(f'{name}/gamma_fc', cbn.gamma_fc)
      targets[f'{name}/running_mean'] = cbn.running_mean
      targets[f'{name}/running_variance'] = cbn.running_variance
    target('fc_1', self.fc_1)
    target('fc_2', self.fc_2)
    target('final_activation', self.final_activation)
    for key, variable in targets.items():
      variable.assign(np.asarray(weights[key], dtype=np.float32))

  def get_config(self):
    config = super().get_config()
    config.update(latent_size=self.latent_size, hidden_size=self.hidden_size,
                  fixed_residual=self.fixed_residual, use_batch_statistics=self.use_batch_statistics)
    config.pop('dtype', None)
    return config

"""The LDIF / SIF autoencoder as a Keras model: observation -> shape-element parameters (+ latents).

Port of ldif/model/model.py (`Observation`, `StructuredImplicitModel.forward` and `_global_local_forward`)
with the encoders of ldif/nets (reference section 5):

- ia = 'p' (ldif, sif++): an early-fusion CNN (ResNet50-V2 over the 20 depth views) and the FC head predict
  the explicit part of every element (constant, centre, radii: [B, E, 1 + 3 + R]). For LDIF (ipe = 't') each
  element's world-to-local frame then selects a local view of the surface points and normals (`local_views`)
  that a shared PointNet encodes into the element's latent code [B, E, L]; gradients flow back through the
  frames.
- ia = '1' (sif): one network (SIF CNN + FC head) predicts the whole element vector [B, E, D].

`StructuredImplicitModel.call` returns raw tensors (activations, latents, embedding);
`structured_implicit(outputs)` parses them into a `StructuredImplicit` and `decoder(training)` gives the
callable OccNet decoder that `StructuredImplicit.implicit_values` expects (None for SIFs). The Keras OccNet
layer is `model.occnet`; its `decoder_weights()` is what inference writes to `.occnet` files.
"""

import keras
from keras import ops
import tensorflow as tf

from ldif.model import local_views
from ldif.model.hparams import HParams
from ldif.nets import cnn
from ldif.nets import occnet
from ldif.nets import pointnet
from ldif.nets import resnet
from ldif.representation import structured_implicit_function as sif_lib


def _check_supported(hp):
  """Raises ValueError for hyperparameter values this port does not implement (no preset uses them)."""
  problems = []

  def need(condition, message):
    if not condition:
      problems.append(message)

  need(hp.architecture == 'efcnn', f"arch={hp.architecture!r} (only 'efcnn')")
  need(hp.implicit_architecture in ('1', 'p'), f"ia={hp.implicit_architecture!r} (only '1' and 'p')")
  need(hp.cnn_architecture in ('s50', 'cnn'), f"cnna={hp.cnn_architecture!r} (only 's50' and 'cnn')")
  need(hp.implicit_parameters in ('t', 'f'), f"ipe={hp.implicit_parameters!r} (only 't' and 'f')")
  need(hp.local_frame_transform == 'crs', f"tx={hp.local_frame_transform!r} (only 'crs')")
  need(hp.normalization == 'none', f"nrm={hp.normalization!r} (only 'none')")
  need(hp.point_encoder == 'pn', f"pe={hp.point_encoder!r} (only 'pn')")
  need(not hp.pointnet_feature_transform, "p64='t'")
  need(not hp.pointnet_positional_encoding, "hyp='t'")
  need(not hp.occnet_positional_encoding, "hyo='t'")
  need(hp.occnet_resnet_layer_count == 1, f'orc={hp.occnet_resnet_layer_count} (only 1)')
  need(not hp.deprecated_single_shape_occnet, "dd='t'")
  need(not hp.network_per_element, "npe='t'")
  need(hp.data_augmentation == 'f', f"da={hp.data_augmentation!r} (only 'f')")
  need(hp.dataset_rescale == 1.0, f'rsl={hp.dataset_rescale} (only 1.0)')
  need(hp.aggregation == 's', f"ag={hp.aggregation!r} (only 's')")
  need(not hp.partition_of_unity, "pou='t'")
  need(not hp.learn_hardness, "lhdn='t'")
  need(hp.observation_sampling in ('imdpn', 'imd', 'im1dpn', 'im1d', 'im1xyzpn', 'im1xyz'),
       f'samp={hp.observation_sampling!r}')
  if hp.has_latents:
    need(hp.latent_size > 0, 'ipe=t with ips=0')
    if hp.implicit_architecture == 'p':
      need('p' in hp.observation_sampling,
           f"ipe='t', ia='p' needs surface points (samp {hp.observation_sampling!r})")
  if problems:
    raise ValueError('Hyperparameters not supported by this port: ' + '; '.join(problems))


def _lr_multiplier(alpha):
  """Identity whose gradient is scaled by `alpha` (the original's `lr_mult`, hparam elr)."""

  @tf.custom_gradient
  def scale(x):
    return tf.identity(x), lambda dy: dy * alpha

  return scale


@keras.saving.register_keras_serializable(package='ldif')
class StructuredImplicitModel(keras.Model):
  """Encoder network of LDIF / SIF / SIF++: a preprocessed observation -> element activations and latents.

  Args:
    hparams: `ldif.model.hparams.HParams` (a preset, possibly with another batch size).
    compute_dtype: None/'float32', or a mixed Keras policy name ('mixed_bfloat16', 'mixed_float16') applied to
      the CNN, FC head and PointNet. The representation and the OccNet decoder always run in float32.

  Layers: `encoder` (ResNet50V2 or SifEncoder), `head` (FcHead), and for LDIF `pointnet` (PointNet) and
  `occnet` (OccNetDecoder). Build the variables with `initialize()` (or a first call).

  Raises:
    ValueError: hyperparameters outside what this port implements (see `_check_supported`).
  """

  def __init__(self, hparams, compute_dtype=None, name='imp_net', **kwargs):
    super().__init__(name=name, **kwargs)
    if isinstance(hparams, dict):
      hparams = HParams(**hparams)
    _check_supported(hparams)
    self.hparams = hparams
    self.compute_dtype_name = compute_dtype or 'float32'
    policy = keras.DTypePolicy(self.compute_dtype_name)
    hp = hparams
    if hp.cnn_architecture == 's50':
      self.encoder = resnet.ResNet50V2(2048, normalize_output=True, name='resnet_v2_50', dtype=policy)
    else:
      self.encoder = cnn.SifEncoder(1024, name='Encoder', dtype=policy)
    head_length = hp.element_length if hp.implicit_architecture == '1' else hp.explicit_element_length
    self.head = cnn.FcHead(hp.element_count, head_length, name='explicit_embedding_cnn', dtype=policy)
    self.uses_pointnet = hp.implicit_architecture == 'p' and hp.has_latents
    self.pointnet = None
    self.occnet = None
    if self.uses_pointnet:
      self.pointnet = pointnet.PointNet(hp.latent_size, hp.pointnet_max_pool_features, name='pointnet',
                                        dtype=policy)
    self.jit_encoder = False  # XLA-compile the CNN encoder + FC head alone (see Trainer's jit_compile modes).
    self._jit_encoder_fn = None
    if hp.has_latents:
      self.occnet = occnet.OccNetDecoder(hp.latent_size, fixed_residual=hp.occnet_fixed_residual,
                                         use_batch_statistics=hp.occnet_batch_statistics, name='OccNet')

  def build(self, observation_shape=None):
    """Sub-layers create their variables on the first call (see `initialize`)."""
    self.built = True

  # ---- observation -----------------------------------------------------------------------------------------
  def observation_images(self, observation):
    """The encoder input [B, h, w, C] from a preprocessed batch (see `call`).

    Raises:
      ValueError: missing keys or image sizes/view counts that do not match the hyperparameters.
    """
    hp = self.hparams
    if 'xyz' in hp.observation_sampling:
      if 'xyz_images' not in observation:
        raise ValueError(
            f"observation sampling {hp.observation_sampling!r} needs 'xyz_images' [B, V, h, w, 3] "
            'in the observation (ldif.datasets.preprocess.preprocess(..., xyz_images=True))')
      views = observation['xyz_images']
    else:
      if 'depth_images' not in observation:
        raise ValueError("the observation has no 'depth_images' (use ldif.datasets.preprocess)")
      views = observation['depth_images']
    views = ops.convert_to_tensor(views, 'float32')
    if views.shape.rank != 5:
      raise ValueError(f'observation images must be [B, V, h, w, C], got shape {views.shape}')
    if (views.shape[2], views.shape[3]) != (hp.image_height, hp.image_width):
      raise ValueError(f'observation images are {views.shape[2]}x{views.shape[3]}, the model expects '
                       f'{hp.image_height}x{hp.image_width}')
    if hp.view_count == 1 and views.shape[1] == 20:
      views = views[:, hp.single_view_index:hp.single_view_index + 1]
    if views.shape[1] != hp.view_count:
      raise ValueError(f'observation has {views.shape[1]} views, the model expects {hp.view_count}')
    return cnn.early_fusion(views)

  # ---- forward ---------------------------------------------------------------------------------------------
  def call(self, observation, training=False, local_view_seed=None):
    """Predicts element activations (and latents) from a preprocessed observation.

    Args:
      observation: dict from `ldif.datasets.preprocess.preprocess`: `depth_images` float32 [B, V, h, w, 1]
        (gaps units; V = 20, or 1 / 20 for single-view presets, which then take view `didx`), and for LDIF
        `surface_points` [B, 10000, 3] and `surface_normals` [B, 10000, 3] (gaps frame). Other keys are
        ignored.
      training: batch-norm mode of the ResNet (batch statistics when True).
      local_view_seed: [2] int seed of the random local-view selection (LDIF); None = (0, 0). The training
        loop passes a per-step seed.

    Returns:
      dict: `activations` float32 [B, E, 1 + 3 + R] (ia='p') or [B, E, D] (ia='1'), raw network outputs for
      `StructuredImplicit.from_activation`; `embedding` float32 [B, 2048] (ResNet, L2-normalized) or [B, 1024]
      (SIF CNN); for LDIF `latents` float32 [B, E, L].
    """
    hp = self.hparams
    images = self.observation_images(observation)
    if self.jit_encoder:
      if self._jit_encoder_fn is None:
        self._jit_encoder_fn = tf.function(self._encode, jit_compile=True)
      embedding, activations = self._jit_encoder_fn(images, training=bool(training))
    else:
      embedding, activations = self._encode(images, training=training)
    if hp.encoder_lr_multiplier != 1.0:
      activations = _lr_multiplier(hp.encoder_lr_multiplier)(activations)
    outputs = {'embedding': embedding}
    if hp.implicit_architecture == '1':
      explicit = hp.explicit_element_length
      outputs['activations'] = activations[..., :explicit]
      if hp.has_latents:
        outputs['latents'] = activations[..., explicit:]
      return outputs
    outputs['activations'] = activations
    if self.uses_pointnet:
      sif = self.structured_implicit(outputs)
      seed = (0, 0) if local_view_seed is None else local_view_seed
      normals = observation['surface_normals'] if 'n' in hp.observation_sampling else None
      local_points, local_normals = local_views.local_views_of_shape(observation['surface_points'],
                                                                     sif.world2local(),
                                                                     local_point_count=hp.local_point_count,
                                                                     normals=normals, seed=seed)
      features = local_points if local_normals is None else ops.concatenate([local_points, local_normals], -1)
      batch = ops.shape(features)[0]
      flat = ops.reshape(features, (batch * hp.element_count, hp.local_point_count, features.shape[-1]))
      latents = self.pointnet(flat, training=training)
      outputs['latents'] = ops.reshape(latents, (batch, hp.element_count, hp.latent_size))
    return outputs

  def _encode(self, images, training=False):
    """CNN encoder + FC head: images [B, h, w, C] -> (embedding [B, F], activations [B, E, D'])."""
    embedding = ops.cast(self.encoder(images, training=training), 'float32')
    return embedding, self.head(embedding, training=training)

  # ---- representation --------------------------------------------------------------------------------------
  def structured_implicit(self, outputs):
    """A `StructuredImplicit` (gaps frame) from `call`'s outputs (latents included when present)."""
    hp = self.hparams
    return sif_lib.StructuredImplicit.from_activation(outputs['activations'], outputs.get('latents'),
                                                      radius_type=hp.radius_type,
                                                      symmetry_count=hp.symmetric_element_count,
                                                      constant_mode=hp.constant_mode)

  def decoder(self, training=False):
    """The OccNet decoder as `StructuredImplicit.implicit_values` wants it, or None for SIF / SIF++.

    Returns:
      callable(latents [B, E', L], local_points [B, E', N, 3]) -> [B, E', N, 1] float32, or None.
      With training=True each call updates the CBN running statistics (the original's quirk, see
      ldif/nets/occnet.py).
    """
    if self.occnet is None:
      return None
    layer = self.occnet
    latent_size = self.hparams.latent_size

    def decode(latents, local_points):
      shape = tf.shape(local_points)
      rows = shape[0] * shape[1]
      values = layer(tf.reshape(latents, [rows, latent_size]), tf.reshape(local_points, [rows, shape[2], 3]),
                     training=training)
      return tf.reshape(values, [shape[0], shape[1], shape[2], 1])

    return decode

  def function_values(self, outputs, points, training=False):
    """F at gaps-frame points [B, N, 3] -> [B, N, 1] for `call`'s outputs (ipc='f' drops the OccNet term)."""
    sif = self.structured_implicit(outputs)
    if sif.latents is not None and not self.hparams.implicit_parameters_contribute:
      sif = sif_lib.StructuredImplicit(sif.constants, sif.centers, sif.radii, None,
                                       radius_type=sif.radius_type, symmetry_count=sif.symmetry_count)
    return sif.implicit_values(points, self.decoder(training))

  # ---- building --------------------------------------------------------------------------------------------
  def dummy_observation(self, batch_size=1):
    """Zero inputs of the right shapes (used to build the variables)."""
    hp = self.hparams
    channels = 3 if 'xyz' in hp.observation_sampling else 1
    key = 'xyz_images' if channels == 3 else 'depth_images'
    obs = {key: tf.zeros([batch_size, hp.view_count, hp.image_height, hp.image_width, channels])}
    if self.uses_pointnet:
      count = max(hp.local_point_count, 1)
      grid = tf.random.stateless_uniform([batch_size, count, 3], seed=[1, 2], minval=-0.5, maxval=0.5)
      obs['surface_points'] = grid
      obs['surface_normals'] = tf.math.l2_normalize(grid + 1e-3, axis=-1)
    return obs

  def initialize(self):
    """Creates every variable (encoder, head, PointNet, OccNet) without changing statistics. Idempotent."""
    if self.built and (self.occnet is None or self.occnet.built):
      return self
    outputs = self(self.dummy_observation(1), training=False)
    if self.occnet is not None:
      self.occnet(outputs['latents'][:, 0], tf.zeros([1, 1, 3]), training=False)
    return self

  def get_config(self):
    return {'hparams': self.hparams.to_dict(), 'compute_dtype': self.compute_dtype_name, 'name': self.name}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    return cls(HParams(**config.pop('hparams')), **config)

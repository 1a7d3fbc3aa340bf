"""Tests of the Keras model (ldif/model/model.py) and the local views (ldif/model/local_views.py)."""

import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ldif.model import local_views
from ldif.model.hparams import HParams
from ldif.model.model import StructuredImplicitModel
from ldif.representation import structured_implicit_function as sif_lib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import param_counts  # pylint: disable=wrong-import-position

# A small LDIF-style configuration (SIF CNN encoder, local PointNet, OccNet) for fast tests.
SMALL_LDIF = HParams.preset('ldif').replace(cnn_architecture='cnn', observation_sampling='im1dpn',
                                            element_count=4, symmetric_element_count=2, local_point_count=64,
                                            pointnet_max_pool_features=32, latent_size=8, batch_size=2)


def _observation(hp, batch=2, seed=0, points=600):
  rng = np.random.default_rng(seed)
  obs = {
      'depth_images':
          rng.uniform(0, 2, (batch, hp.view_count, hp.image_height, hp.image_width, 1)).astype(np.float32),
      'surface_points':
          rng.uniform(-0.4, 0.4, (batch, points, 3)).astype(np.float32),
      'mesh_name':
          np.array([b'x|y'] * batch)
  }
  normals = rng.normal(size=(batch, points, 3))
  obs['surface_normals'] = (normals / np.linalg.norm(normals, axis=-1, keepdims=True)).astype(np.float32)
  return obs


@pytest.mark.parametrize('name', ['ldif', 'sif', 'sif++', 'singleview-depth'])
def test_parameter_counts_match_the_original_architecture(name, tmp_path):
  model = StructuredImplicitModel(HParams.preset(name)).initialize()
  # A TF checkpoint of the model holds every variable (no layer hidden from tf.train.Checkpoint's tracking).
  path = tf.train.Checkpoint(model=model).write(str(tmp_path / 'ckpt'))
  stored = [n for n, _ in tf.train.list_variables(path) if n.endswith('VARIABLE_VALUE')]
  assert len(stored) == len(model.weights)
  counts = param_counts.preset_counts(name)
  trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
  non_trainable = sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
  assert (trainable, non_trainable) == (counts['total'].trainable, counts['total'].non_trainable)
  pinned = {
      'ldif': (37_311_361, 45_446),
      'sif': (11_252_412, 0),
      'sif++': (36_817_408, 45_440),
      'singleview-depth': (36_764_096, 45_440)
  }
  assert (trainable, non_trainable) == pinned[name]


def test_sif_outputs_and_single_view_selection():
  hp = HParams.preset('sif').replace(batch_size=2)
  model = StructuredImplicitModel(hp).initialize()
  rng = np.random.default_rng(0)
  views = rng.uniform(0, 2, (2, 20, 137, 137, 1)).astype(np.float32)
  out = model({'depth_images': views})
  assert set(out) == {'embedding', 'activations'}
  assert out['activations'].shape == (2, 100, 7) and out['embedding'].shape == (2, 1024)
  single = model({'depth_images': views[:, 1:2]})  # didx = 1
  np.testing.assert_allclose(out['activations'].numpy(), single['activations'].numpy(), rtol=1e-6)
  sif = model.structured_implicit(out)
  assert sif.radius_type == 'aa' and sif.symmetry_count == 0 and sif.latents is None
  assert model.decoder() is None
  with pytest.raises(ValueError, match='137x137'):
    model({'depth_images': views[:, :, :100]})


@pytest.fixture(scope='module')
def small_model():
  keras.utils.set_random_seed(5)
  return StructuredImplicitModel(SMALL_LDIF).initialize()


def test_ldif_style_outputs_and_determinism(small_model):
  obs = _observation(SMALL_LDIF)
  a = small_model(obs, local_view_seed=tf.constant([1, 2]))
  b = small_model(obs, local_view_seed=tf.constant([1, 2]))
  c = small_model(obs, local_view_seed=tf.constant([1, 3]))
  assert a['activations'].shape == (2, 4, 10) and a['latents'].shape == (2, 4, 8)
  np.testing.assert_array_equal(a['latents'].numpy(), b['latents'].numpy())
  assert not np.allclose(a['latents'].numpy(), c['latents'].numpy())
  sif = small_model.structured_implicit(a)
  assert sif.effective_element_count == 6 and sif.latents.shape == (2, 4, 8)


def test_latent_gradients_reach_the_element_frames(small_model):
  obs = _observation(SMALL_LDIF)
  images = small_model.observation_images(obs)
  embedding, activations = small_model._encode(images)  # pylint: disable=protected-access
  activations = tf.Variable(activations)
  with tf.GradientTape() as tape:
    sif = sif_lib.StructuredImplicit.from_activation(activations, radius_type='cov', symmetry_count=2)
    lp, ln = local_views.local_views_of_shape(obs['surface_points'], sif.world2local(), local_point_count=64,
                                              normals=obs['surface_normals'], seed=(0, 1))
    latents = small_model.pointnet(tf.reshape(tf.concat([lp, ln], -1), [8, 64, 6]))
    loss = tf.reduce_sum(tf.square(latents))
  grad = tape.gradient(loss, activations).numpy()
  assert embedding.shape == (2, 1024)
  assert np.all(grad[..., 0] == 0)  # the constant does not enter the local frames
  assert np.abs(grad[..., 1:4]).max() > 0  # centres
  assert np.abs(grad[..., 4:7]).max() > 0  # variances
  assert np.abs(grad[..., 7:10]).max() > 0  # angles


def test_inference_decoder_equals_the_functional_decoder(small_model):
  obs = _observation(SMALL_LDIF)
  out = small_model(obs, local_view_seed=tf.constant([0, 0]))
  # Non-trivial CBN statistics, as after training.
  weights = small_model.occnet.decoder_weights()
  for name in ('cbn_1', 'cbn_2', 'final_cbn'):
    weights[f'{name}/running_mean'] = np.array([0.1], np.float32)
    weights[f'{name}/running_variance'] = np.array([0.7], np.float32)
  small_model.occnet.set_decoder_weights(weights)
  sif = small_model.structured_implicit(out)
  points = tf.random.stateless_uniform([2, 300, 3], seed=[4, 4], minval=-0.5, maxval=0.5)
  keras_values = sif.implicit_values(points, small_model.decoder(training=False)).numpy()
  functional = sif.implicit_values(points,
                                   sif_lib.occnet_decoder_fn(small_model.occnet.decoder_weights())).numpy()
  assert keras_values.shape == (2, 300, 1)
  np.testing.assert_allclose(keras_values, functional, rtol=1e-5, atol=1e-6)
  # Inference leaves the running statistics alone; a training-mode evaluation moves them.
  small_model.function_values(out, points, training=False)
  np.testing.assert_array_equal(small_model.occnet.cbn_1.running_mean.numpy(), [np.float32(0.1)])
  small_model.function_values(out, points, training=True)
  assert small_model.occnet.cbn_1.running_mean.numpy()[0] != np.float32(0.1)


def test_encoder_lr_multiplier_scales_gradients():
  grads = []
  for elr in (1.0, 0.25):
    keras.utils.set_random_seed(9)
    model = StructuredImplicitModel(SMALL_LDIF.replace(encoder_lr_multiplier=elr)).initialize()
    obs = _observation(SMALL_LDIF)
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(model(obs)['activations'])
    grads.append(tape.gradient(loss, model.head.fc3.kernel).numpy())
  np.testing.assert_allclose(grads[1], 0.25 * grads[0], rtol=1e-5, atol=1e-8)


def _reference_selection(points, w2l, k, threshold=4.0):
  """The original's rule for one element, ignoring the random order among inside points: returns
  (set of inside indices, nearest outside indices used as padding)."""
  local = points @ w2l[:3, :3].T + w2l[:3, 3]
  distance = np.sqrt(np.sum(local**2, axis=-1) + 1.0)
  inside = np.flatnonzero(distance < threshold)
  outside = np.flatnonzero(distance >= threshold)
  outside = outside[np.argsort(distance[outside])]
  return set(inside.tolist()), outside[:max(k - len(inside), 0)].tolist()


def test_local_view_selection_rule():
  rng = np.random.default_rng(0)
  points = rng.uniform(-1, 1, (1, 400, 3)).astype(np.float32)
  w2l = np.eye(4, dtype=np.float32)
  w2l[:3, :3] *= 8.0  # scale 8: local radius sqrt(15) / 8 = 0.48 in world units
  w2l[:3, 3] = [-0.8, 0.0, 0.0]  # centre at x = 0.1
  inside, padding = _reference_selection(points[0], w2l, 64)
  assert 0 < len(inside) < 64
  w2l_batch = np.tile(w2l, (1, 2, 1, 1))
  lp, _ = local_views.local_views_of_shape(points, w2l_batch, local_point_count=64, seed=(3, 4))
  local_all = points[0] @ w2l[:3, :3].T + w2l[:3, 3]
  chosen = {int(np.argmin(np.abs(local_all - p).sum(-1))) for p in lp.numpy()[0, 0]}
  assert chosen == inside | set(padding)
  # More inside points than slots: a random subset of the inside points, depending on the seed.
  w2l[:3, :3] = np.eye(3)
  w2l[:3, 3] = 0
  w2l_batch = np.tile(w2l, (1, 2, 1, 1))
  subsets = []
  for seed in ((0, 0), (0, 0), (0, 1)):
    lp, _ = local_views.local_views_of_shape(points, w2l_batch, local_point_count=32, seed=seed)
    subsets.append(sorted(map(tuple, np.round(lp.numpy()[0, 0], 6).tolist())))
  assert subsets[0] == subsets[1] and subsets[0] != subsets[2]


def test_local_view_homogeneous_distance_quirk():
  # |x_local| = 3.9 < 4, but the homogeneous norm sqrt(3.9^2 + 1) = 4.03 is not: treated as outside, so the
  # nearer point at 3.8 (homogeneous 3.93) wins the single slot over any random score.
  points = np.array([[[3.9, 0, 0], [3.8, 0, 0], [5.0, 0, 0]]], np.float32)
  w2l = np.eye(4, dtype=np.float32)[None, None]
  for seed in range(5):
    lp, _ = local_views.local_views_of_shape(points, w2l, local_point_count=1, seed=(seed, 0))
    np.testing.assert_allclose(lp.numpy()[0, 0, 0], [3.8, 0, 0])


def test_local_normals_use_the_inverse_transpose():
  points = np.zeros((1, 5, 3), np.float32)
  normals = np.tile(np.array([1.0, 1.0, 0.0], np.float32) / np.sqrt(2), (1, 5, 1))
  w2l = np.diag([2.0, 0.5, 1.0, 1.0]).astype(np.float32)[None, None]
  _, ln = local_views.local_views_of_shape(points, w2l, local_point_count=5, normals=normals, seed=(0, 0))
  # n_local ~ n @ inv(A) = (1/2, 2, 0), normalized.
  expected = np.array([0.5, 2.0, 0.0]) / np.linalg.norm([0.5, 2.0, 0.0])
  np.testing.assert_allclose(ln.numpy()[0, 0], np.tile(expected, (5, 1)), rtol=1e-6)


def test_bad_configurations_and_inputs():
  with pytest.raises(ValueError, match='not supported'):
    StructuredImplicitModel(HParams.preset('ldif').replace(implicit_architecture='2'))
  with pytest.raises(ValueError, match='not supported'):
    StructuredImplicitModel(HParams.preset('sif').replace(local_frame_transform='i'))
  model = StructuredImplicitModel(HParams.preset('singleview-depth'))
  with pytest.raises(ValueError, match='xyz_images'):
    model({'depth_images': np.zeros((1, 1, 224, 224, 1), np.float32)})


def test_config_round_trip(small_model):
  clone = StructuredImplicitModel.from_config(small_model.get_config())
  assert clone.hparams == SMALL_LDIF

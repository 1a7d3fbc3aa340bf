"""Loading an experiment (checkpoint choice, errors) and encoding examples with it."""

import os

import numpy as np
import pytest
import tensorflow as tf

from eval_testutil import make_example_directory
from ldif.inference import example
from ldif.inference import experiment
from ldif.model.hparams import HParams
from ldif.training import experiment as training_experiment


def predict_sphere(model, radius):
  """Makes a 'sif' model predict one sphere of `radius` (gaps units) at the origin whatever its input: the
  last FC layer gets a zero kernel and a bias holding the activations (element 0: constant -1, centre 0, equal
  variances whose -0.07 level set is the sphere; the other elements: constant 0)."""
  hp = model.hparams
  variance = radius**2 / (2.0 * np.log(1.0 / 0.07))
  sigmoid = np.sqrt(variance) / 0.15
  activations = np.zeros([hp.element_count, hp.element_length], np.float32)
  activations[0, 0] = 1.0  # constant = -|a| = -1
  activations[0, 4:7] = np.log(sigmoid / (1.0 - sigmoid))
  fc = model.head.fc3
  fc.kernel.assign(np.zeros(fc.kernel.shape, np.float32))
  fc.bias.assign(activations.reshape(-1))


def write_experiment(model_directory, name, steps, preset='sif', sphere_radius=None):
  """An experiment directory as train.py writes it: hparams.json and `model.ckpt-<step>` checkpoints of an
  untrained, randomly initialized model (which, with `sphere_radius`, predicts that sphere; 'sif' only).
  Returns the paths and the model of the last step."""
  paths = training_experiment.ExperimentPaths.from_name(model_directory, name)
  os.makedirs(paths.job_dir, exist_ok=True)
  hparams = HParams.preset(preset).replace(batch_size=2)
  hparams.save_json(paths.hparams_path)
  model = None
  global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
  for step in steps:
    model = training_experiment.build_model(hparams)
    if sphere_radius is not None:
      predict_sphere(model, sphere_radius)
    checkpoint = tf.train.Checkpoint(model=model, global_step=global_step)
    manager = tf.train.CheckpointManager(checkpoint, paths.job_dir, max_to_keep=5,
                                         checkpoint_name=training_experiment.CHECKPOINT_NAME)
    global_step.assign(step)
    manager.save(checkpoint_number=step)
  return paths, model


@pytest.fixture(scope='module')
def sif_experiment(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('models'))
  paths, _ = write_experiment(root, 'tiny-sif', [7, 9])
  return root, paths


def test_loads_the_newest_checkpoint_by_default(sif_experiment):
  root, paths = sif_experiment
  exp = experiment.Experiment.load(root, 'tiny-sif')
  assert exp.step == 9 and exp.checkpoint_path.endswith('model.ckpt-9')
  assert exp.hparams.matching_preset() == 'sif'
  assert not exp.is_ldif and exp.occnet_weights() is None


def test_ckpt_selects_a_checkpoint_by_step(sif_experiment):
  root, _ = sif_experiment
  exp = experiment.Experiment.load(root, 'tiny-sif', ckpt=7)
  assert exp.step == 7 and exp.checkpoint_path.endswith('model.ckpt-7')
  with pytest.raises(ValueError, match=r'no checkpoint for step 8.*\[7, 9\]'):
    experiment.Experiment.load(root, 'tiny-sif', ckpt=8)


def test_experiment_without_checkpoint_names_the_directory(tmp_path):
  paths = training_experiment.ExperimentPaths.from_name(tmp_path, 'empty')
  os.makedirs(paths.job_dir)
  HParams.preset('sif').save_json(paths.hparams_path)
  with pytest.raises(ValueError, match=r'1-hparams/train.*no checkpoint'):
    experiment.Experiment.load(tmp_path, 'empty')


def test_missing_experiment_and_model_directory(tmp_path, sif_experiment):
  root, _ = sif_experiment
  with pytest.raises(ValueError, match=r"sif-transcoder-other.*experiments there: tiny-sif"):
    experiment.Experiment.load(root, 'other')
  with pytest.raises(ValueError, match=r'nowhere.*does not exist'):
    experiment.Experiment.load(tmp_path / 'nowhere', 'tiny-sif')


def test_encode_gives_a_decoder_of_the_models_shape(sif_experiment, tmp_path):
  root, _ = sif_experiment
  exp = experiment.Experiment.load(root, 'tiny-sif', seed=3)
  rng = np.random.default_rng(0)
  directory = make_example_directory(str(tmp_path), 'test', 'animal', 'ball', rng)
  ex = example.InferenceExample.from_directory(directory)
  decoder = exp.encode(ex)
  hp = exp.hparams
  assert decoder.element_count == hp.element_count and decoder.radius_type == hp.radius_type
  assert decoder.symmetry_count == hp.symmetric_element_count
  packed = decoder.packed()
  assert packed.shape == (hp.element_count, hp.element_length) and np.all(np.isfinite(packed))
  # The same as running the Keras model directly on the preprocessed example.
  outputs = exp.model(exp.observation(ex.batch()), training=False)
  expected = exp.model.structured_implicit(outputs).packed().numpy()[0]
  np.testing.assert_allclose(packed, expected, rtol=1e-5, atol=1e-6)
  # Deterministic.
  np.testing.assert_array_equal(exp.encode(ex).packed(), packed)


def test_singleview_depth_experiment_encodes_from_the_xyz_image(tmp_path):
  """The 'singleview-depth' preset reads a 224x224 xyz image of view 0, which encoding must build from the
  depth render; the decoder equals the model's output on that observation."""
  root = str(tmp_path / 'models')
  write_experiment(root, 'sv', [1], preset='singleview-depth')
  exp = experiment.Experiment.load(root, 'sv', seed=3)
  directory = make_example_directory(str(tmp_path), 'test', 'animal', 'ball', np.random.default_rng(1))
  ex = example.InferenceExample.from_directory(directory)
  observation = exp.observation(ex.batch())
  assert observation['xyz_images'].shape == (1, 1, 224, 224, 3)
  decoder = exp.encode(ex)
  expected = exp.model.structured_implicit(exp.model(observation, training=False)).packed().numpy()[0]
  np.testing.assert_allclose(decoder.packed(), expected, rtol=1e-5, atol=1e-6)

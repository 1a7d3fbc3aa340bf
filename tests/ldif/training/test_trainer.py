"""Tests of the training loop library (ldif/training/trainer.py, experiment.py, summaries.py)."""

import glob
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from ldif.model.hparams import HParams
from ldif.training import experiment
from ldif.training import synthetic
from ldif.training import trainer

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import synthetic_data  # pylint: disable=wrong-import-position

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[3]

SMALL_LDIF = HParams.preset('ldif').replace(cnn_architecture='cnn', observation_sampling='im1dpn',
                                            element_count=4, symmetric_element_count=2, local_point_count=64,
                                            pointnet_max_pool_features=32, latent_size=8, batch_size=2)


@pytest.fixture(scope='module')
def dataset_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('synthetic')
  synthetic_data.write_ellipsoid_dataset(str(root))
  return str(root)


def _batch(hp, seed=0, batch=2):
  return synthetic.random_preprocessed_batch(hp, batch, seed, surface_point_count=2000,
                                             bounding_box_sample_count=5000)


def _config(dataset_dir, model_dir, **kwargs):
  defaults = dict(dataset_directory=dataset_dir, experiment_name='exp', model_type='sif',
                  model_directory=model_dir, batch_size=2, train_step_count=3, checkpoint_interval=2,
                  summary_step_interval=1, progress_bar=False, xla='none')
  defaults.update(kwargs)
  return trainer.TrainConfig(**defaults)


def _snapshot(directory):
  out = {}
  for path in sorted(glob.glob(os.path.join(directory, '**'), recursive=True)):
    if os.path.isfile(path):
      with open(path, 'rb') as f:
        out[path] = (os.stat(path).st_mtime_ns, f.read())
  return out


@pytest.mark.parametrize('hp, modes',
                         [(HParams.preset('sif').replace(batch_size=2), ('encoder', 'parts', 'step')),
                          (SMALL_LDIF, ('encoder',))], ids=['sif', 'small-ldif'])
def test_xla_modes_compute_the_same_gradients(hp, modes):
  """The loss and gradients of one step with XLA (whole step, encoder only, parts) equal the plain TF ones.

  (Parameters after one Adam step are not compared: the first Adam update is ~lr * sign(g), which flips for
  gradients that are zero up to rounding.)"""
  batch = _batch(hp)
  results = {}
  for mode in ('none',) + modes:
    t = trainer.Trainer(hp, seed=1, xla=mode)
    step_fn = t._gradients  # pylint: disable=protected-access
    grads, scalars = tf.function(step_fn, jit_compile=mode == 'step')(batch)
    results[mode] = (float(scalars['total']), [g.numpy() for g in grads])
  ref_total, ref_grads = results['none']
  for mode in modes:
    total, grads = results[mode]
    np.testing.assert_allclose(total, ref_total, rtol=1e-5)
    for g, r in zip(grads, ref_grads):
      np.testing.assert_allclose(g, r, rtol=1e-3, atol=1e-3 * np.abs(r).max() + 1e-12)
  t = trainer.Trainer(hp, seed=1, xla=modes[-1])
  t.train_step(batch)
  assert int(t.global_step.numpy()) == 1
  assert trainer.resolve_xla_mode('auto', hp) == ('encoder' if hp.has_latents else 'step')


def test_small_ldif_step_trains_everything():
  t = trainer.Trainer(SMALL_LDIF, seed=2, xla='none')
  before = [v.numpy().copy() for v in t.train_variables]
  batch = _batch(SMALL_LDIF)
  scalars = t.train_step(batch)
  assert set(scalars) == {
      'total', 'loss/uniform_sample', 'loss/near_surface_sample', 'loss/lowres_grid_inside_loss',
      'loss/fixed_bounding_box_loss', 'extra/uniform_sample-outside-frac', 'extra/ns_sample-outside-frac'
  }
  changed = [not np.array_equal(a, v.numpy()) for a, v in zip(before, t.train_variables)]
  assert all(changed)  # encoder, head, PointNet and OccNet all receive gradients
  # Two OccNet evaluations (u, then ns) each moved the CBN statistics from 0.
  assert t.model.occnet.cbn_1.running_mean.numpy()[0] != 0.0
  # Adam with lr 5e-5: every parameter moved by about lr on the first step.
  delta = np.abs(t.model.head.fc1.kernel.numpy() -
                 before[[id(v) for v in t.train_variables].index(id(t.model.head.fc1.kernel))])
  assert delta.max() == pytest.approx(5e-5, rel=0.05)


def test_train_writes_the_experiment_and_summaries(dataset_dir, tmp_path):
  result = trainer.train(_config(dataset_dir, str(tmp_path), visualize=True))
  paths = result.paths
  assert paths.root == str(tmp_path / 'sif-transcoder-exp')
  assert result.final_step == 3 and len(result.losses) == 3
  assert HParams.load_json(paths.hparams_path) == HParams.preset('sif').replace(batch_size=2)
  # Checkpoints after steps 0 and 2 (interval 2) and the last step: global steps 1 and 3.
  assert experiment.checkpoint_steps(paths) == [1, 3]
  assert tf.train.latest_checkpoint(paths.job_dir).endswith('model.ckpt-3')
  tags = set()
  for event_file in glob.glob(os.path.join(paths.log_dir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      tags |= {v.tag for v in event.summary.value}
  for tag in ('train-loss/uniform_sample', 'train-loss/near_surface_sample', 'train-loss/ec_loss',
              'train-loss/ec_loss_class_comp_mean', 'train-final-loss/final_loss_value', 'train-lamp-frac',
              'train-chair-frac', 'train-uniform_sample-outside-frac', 'train-ns_sample-outside-frac',
              'train-input_views', 'visualize/depth_views', 'visualize/grid_inside_mid_slices_zyx'):
    assert tag in tags, tag
  # Resuming a finished run does nothing; asking for more steps continues from the checkpoint.
  again = trainer.train(_config(dataset_dir, str(tmp_path), train_step_count=5))
  assert (again.start_step, again.final_step) == (3, 5)
  assert experiment.checkpoint_steps(paths) == [1, 3, 5]
  # load_experiment restores the same weights.
  loaded = experiment.load_experiment(paths.root)
  assert loaded.step == 5 and loaded.hparams.matching_preset() == 'sif'
  older = experiment.load_experiment(paths.job_dir, step=3)
  assert older.step == 3
  assert not np.array_equal(loaded.model.head.fc3.kernel.numpy(), older.model.head.fc3.kernel.numpy())
  with pytest.raises(experiment.ExperimentError, match='available steps'):
    experiment.load_experiment(paths.root, step=2)
  with pytest.raises(experiment.ExperimentError, match='trained as sif'):
    experiment.load_experiment(paths.root, model_type='ldif')


def test_load_experiment_restores_occnet_statistics(tmp_path):
  t = trainer.Trainer(SMALL_LDIF, seed=3, xla='none')
  t.train_step(_batch(SMALL_LDIF))
  paths = experiment.ExperimentPaths.from_name(str(tmp_path), 'small')
  os.makedirs(paths.job_dir)
  SMALL_LDIF.save_json(paths.hparams_path)
  manager = tf.train.CheckpointManager(t.checkpoint, paths.job_dir, max_to_keep=5,
                                       checkpoint_name=experiment.CHECKPOINT_NAME)
  manager.save(checkpoint_number=1)
  loaded = experiment.load_experiment(paths.root)
  want = t.model.occnet.decoder_weights()
  got = loaded.model.occnet.decoder_weights()
  assert want['cbn_2/running_variance'][0] > 0
  for key in want:
    np.testing.assert_array_equal(got[key], want[key])
  obs = _batch(SMALL_LDIF)
  a = t.model(obs, local_view_seed=tf.constant([0, 0]))
  b = loaded.model(obs, local_view_seed=tf.constant([0, 0]))
  np.testing.assert_allclose(a['latents'].numpy(), b['latents'].numpy(), rtol=1e-5, atol=1e-6)


def test_missing_split_is_a_clear_error_and_writes_nothing(dataset_dir, tmp_path):
  with pytest.raises(trainer.DatasetError, match="split 'test'"):
    trainer.train(_config(dataset_dir, str(tmp_path), split='test'))
  assert not os.listdir(tmp_path)
  with pytest.raises(trainer.DatasetError, match='No dataset directory'):
    trainer.train(_config(str(tmp_path / 'nowhere'), str(tmp_path)))


def test_corrupted_shard_is_a_clear_error_and_keeps_checkpoints(dataset_dir, tmp_path):
  trainer.train(_config(dataset_dir, str(tmp_path / 'models'), train_step_count=1))
  before = _snapshot(str(tmp_path / 'models'))
  broken = tmp_path / 'broken'
  synthetic_data.write_ellipsoid_dataset(str(broken))
  shard = glob.glob(str(broken / 'optimized' / 'train' / '*.tfrecords'))[0]
  data = bytearray(pathlib.Path(shard).read_bytes())
  data[len(data) // 3:len(data) // 3 + 4096] = os.urandom(4096)
  pathlib.Path(shard).write_bytes(bytes(data))
  with pytest.raises(trainer.DatasetError, match='corrupted'):
    trainer.train(_config(str(broken), str(tmp_path / 'models'), train_step_count=4))
  assert _snapshot(str(tmp_path / 'models')) == before


def test_model_type_mismatch_is_a_clear_error_and_keeps_checkpoints(dataset_dir, tmp_path):
  trainer.train(_config(dataset_dir, str(tmp_path), train_step_count=1))
  before = _snapshot(str(tmp_path))
  with pytest.raises(experiment.ExperimentError, match=r'trained as sif, but --model_type sif\+\+'):
    trainer.train(_config(dataset_dir, str(tmp_path), model_type='sif++', train_step_count=3))
  assert _snapshot(str(tmp_path)) == before
  # A different batch size is allowed (the original's flag always overrode it).
  result = trainer.train(_config(dataset_dir, str(tmp_path), batch_size=1, train_step_count=2))
  assert result.final_step == 2


@pytest.mark.slow  # ~20-50 s: a subprocess that traces a distributed step on two logical CPU devices.
def test_mirrored_strategy_on_two_cpu_replicas():
  script = textwrap.dedent(f'''
      import sys
      sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parent)!r})
      import numpy as np, tensorflow as tf
      cpu = tf.config.list_physical_devices('CPU')[0]
      tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      import test_trainer as tt
      from ldif.training import trainer
      strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
      hp = tt.SMALL_LDIF.replace(batch_size=4)
      t = trainer.Trainer(hp, seed=0, xla='none', strategy=strategy)
      batch = tt._batch(hp, batch=4)
      data = tf.data.Dataset.from_tensors(batch).repeat()
      it = iter(strategy.experimental_distribute_dataset(data.unbatch().batch(4)))
      for _ in range(2):
        s = t.train_step(next(it))
      print('RESULT', int(t.global_step.numpy()), float(s['total']),
            float(t.model.occnet.cbn_1.running_mean.numpy()[0]))
      ''')
  proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, cwd=PROJECT_ROOT,
                        env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT),
                                 TF_CPP_MIN_LOG_LEVEL='2'), timeout=300)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT')]
  assert lines, proc.stderr[-3000:]
  _, step, total, running_mean = lines[0].split()
  assert int(step) == 2 and np.isfinite(float(total)) and float(running_mean) != 0.0


def test_mixed_precision_step_keeps_float32_variables_and_representation():
  hp = HParams.preset('sif').replace(batch_size=2)
  t = trainer.Trainer(hp, seed=4, xla='none', mixed_precision=True)
  assert t.policy == 'mixed_bfloat16'  # no GPU here
  assert t.model.encoder.compute_dtype == 'bfloat16'
  assert all(v.dtype == 'float32' for v in t.model.weights)
  batch = _batch(hp)
  outputs = t.model(batch)
  assert outputs['activations'].dtype == tf.float32
  first = float(t.train_step(batch)['total'])
  for _ in range(3):
    last = float(t.train_step(batch)['total'])
  assert np.isfinite(first) and last < first


@pytest.mark.parametrize('preset', ['ldif', 'sif', 'singleview-depth'])
def test_random_preprocessed_batch_has_what_the_step_needs(preset):
  hp = HParams.preset(preset)
  batch = synthetic.random_preprocessed_batch(hp, 2, seed=4, surface_point_count=50, bounding_box_sample_count=60)
  assert sorted(batch) == trainer.required_keys(hp)
  image = (2, hp.view_count, hp.image_height, hp.image_width)
  assert batch['depth_images'].shape == image + (1,)
  if preset == 'singleview-depth':
    assert batch['xyz_images'].shape == (2, 1, 224, 224, 3)
  if preset == 'ldif':
    np.testing.assert_allclose(np.linalg.norm(batch['surface_normals'].numpy(), axis=-1), 1.0, rtol=1e-6)
    assert batch['surface_points'].shape == (2, 50, 3)
  if 'bounding_box_samples' in batch:
    assert batch['bounding_box_samples'].shape == (2, 60, 4)
  np.testing.assert_array_equal(synthetic.random_preprocessed_batch(hp, 2, seed=4, surface_point_count=50,
                                                                    bounding_box_sample_count=60)['depth_images'],
                                batch['depth_images'])

"""eval.py end to end: on hand-made example directories with a SIF experiment (untrained, except that it
predicts a known sphere), and its errors; the slow test trains a real LDIF for a few steps first."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tests' / 'ldif' / 'inference'))
# pylint: disable=g-import-not-at-top,wrong-import-position
from eval_testutil import make_example_directory
from test_experiment import write_experiment
# pylint: enable=g-import-not-at-top,wrong-import-position


def run_eval(*args, timeout=600):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='-1')
  return subprocess.run([sys.executable, str(ROOT / 'eval.py'), *map(str, args)], cwd=str(ROOT), env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope='module')
def dataset_and_models(tmp_path_factory):
  rng = np.random.default_rng(11)
  root = tmp_path_factory.mktemp('eval_cli')
  dataset = root / 'dataset'
  dirs = [make_example_directory(str(dataset), 'test', 'animal', 'ball', rng, gt_radius=0.3),
          make_example_directory(str(dataset), 'test', 'animal', 'pebble', rng, gt_radius=0.35)]
  (dataset / 'test.txt').write_text(''.join(d + '\n' for d in dirs))
  models = root / 'models'
  write_experiment(str(models), 'tiny-sif', [3], sphere_radius=0.3)  # predicts the 'ball' exactly
  return dataset, models


def test_eval_cli_writes_every_output(dataset_and_models, tmp_path):
  dataset, models = dataset_and_models
  results = tmp_path / 'results'
  proc = run_eval('--dataset_directory', dataset, '--model_directory', models,
                  '--experiment_name', 'tiny-sif', '--split', 'test', '--result_directory', results,
                  '--resolution', '64', '--save_results',
                  '--save_meshes', '--save_ldifs', '--visualize', '--use_inference_kernel', '--log_level',
                  'verbose', '--nouse_gpu_for_tensorflow')
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert 'Results for split test (2 meshes' in proc.stdout
  assert 'mean' in proc.stdout and 'IoU' in proc.stdout
  full = pd.read_csv(results / 'full_results_test.csv', index_col=0)
  assert sorted(full['key']) == ['animal|ball', 'animal|pebble']
  full = full.set_index('key')
  assert np.isfinite(full.to_numpy()).all()
  print(full.to_string())
  # The model predicts the ball (radius 0.3) exactly; the pebble has radius 0.35.
  assert full.loc['animal|ball', 'IoU'] > 99.0
  assert full.loc['animal|ball', 'F-Score (2*tau)'] > 80.0  # 64^3 with the kernel's half-voxel shift
  assert full.loc['animal|ball', 'Normal Consistency'] > 0.99
  assert full.loc['animal|pebble', 'IoU'] == pytest.approx(100.0 * (0.3 / 0.35)**3, abs=1.0)
  assert full.loc['animal|pebble', 'F-Score (tau)'] < 5.0
  summary = pd.read_csv(results / 'result_summary_test.csv', index_col=0)
  assert summary['class'].tolist() == ['animal', 'mean']
  for name in ('ball', 'pebble'):
    assert (results / 'meshes' / 'test' / 'animal' / f'{name}.ply').is_file()
    assert (results / 'ldifs' / 'test' / 'animal' / f'{name}.txt').read_text().startswith('SIF\n100 0 0\n')
    assert (results / 'visualize' / 'test' / 'animal' / f'{name}.png').is_file()
  assert not (results / 'ldifs' / 'decoder.occnet').exists()  # a SIF has no decoder
  html = (results / 'index.html').read_text()
  assert 'visualize/test/animal/ball.png' in html and 'animal|pebble' in html


def test_eval_cli_errors_name_the_problem(dataset_and_models, tmp_path):
  dataset, models = dataset_and_models
  blocker = tmp_path / 'not_a_dir'
  blocker.write_text('x')
  proc = run_eval('--dataset_directory', dataset, '--model_directory', models,
                  '--experiment_name', 'tiny-sif', '--split', 'test', '--result_directory',
                  blocker / 'results', '--save_results')
  assert proc.returncode != 0
  assert 'not_a_dir/results' in proc.stderr and 'cannot create the result directory' in proc.stderr
  # An experiment without checkpoints.
  empty = models / 'sif-transcoder-untrained' / '1-hparams' / 'train'
  empty.mkdir(parents=True)
  (empty / 'hparams.json').write_text((models / 'sif-transcoder-tiny-sif' / '1-hparams' / 'train' /
                                       'hparams.json').read_text())
  proc = run_eval('--dataset_directory', dataset, '--model_directory', models,
                  '--experiment_name', 'untrained', '--split', 'test')
  assert proc.returncode != 0
  assert 'sif-transcoder-untrained/1-hparams/train' in proc.stderr and 'no checkpoint' in proc.stderr


@pytest.mark.slow
def test_eval_of_a_trained_ldif(tmp_path):
  """Two trimesh meshes -> dataset -> LDIF trained for 20 steps (several checkpoints) -> eval.py with every
  output at the newest checkpoint, then at an older one chosen with --ckpt."""
  import trimesh  # pylint: disable=g-import-not-at-top
  from ldif.datasets import make_dataset  # pylint: disable=g-import-not-at-top
  from ldif.training import trainer  # pylint: disable=g-import-not-at-top
  meshes = tmp_path / 'meshes' / 'train' / 'toy'
  meshes.mkdir(parents=True)
  trimesh.creation.capsule(height=1.0, radius=0.4).export(meshes / 'capsule.ply')
  trimesh.creation.torus(major_radius=1.0, minor_radius=0.3).export(meshes / 'torus.ply')
  dataset = tmp_path / 'dataset'
  make_dataset.make_dataset(str(tmp_path / 'meshes'), str(dataset), max_threads=1, progress=False)
  models = tmp_path / 'models'
  config = trainer.TrainConfig(dataset_directory=str(dataset), experiment_name='toy-ldif', model_type='ldif',
                               model_directory=str(models), batch_size=2, train_step_count=20,
                               checkpoint_interval=10, progress_bar=False)
  trainer.train(config)
  results = tmp_path / 'results'
  proc = run_eval('--dataset_directory', dataset, '--model_directory', models,
                  '--experiment_name', 'toy-ldif', '--split', 'train', '--result_directory', results,
                  '--resolution', '64', '--save_results', '--save_meshes', '--save_ldifs', '--visualize')
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert 'step 20' in proc.stderr
  full = pd.read_csv(results / 'full_results_train.csv', index_col=0).set_index('key')
  assert sorted(full.index) == ['toy|capsule', 'toy|torus']
  assert np.isfinite(full.to_numpy()).all() and (full['IoU'] >= 0).all()
  occnet = results / 'ldifs' / 'decoder.occnet'
  assert occnet.stat().st_size == 34468  # the original's layout for W = L = 32
  from ldif.inference import predict  # pylint: disable=g-import-not-at-top
  decoder = predict.Decoder.from_files(results / 'ldifs' / 'train' / 'toy' / 'torus.txt', occnet)
  assert decoder.is_ldif and decoder.element_count == 32 and decoder.symmetry_count == 16
  for name in ('capsule', 'torus'):
    assert (results / 'meshes' / 'train' / 'toy' / f'{name}.ply').is_file()
    assert (results / 'visualize' / 'train' / 'toy' / f'{name}.png').is_file()
  from ldif.training import experiment as training_experiment  # pylint: disable=g-import-not-at-top
  steps = training_experiment.checkpoint_steps(
      training_experiment.ExperimentPaths.from_name(str(models), 'toy-ldif'))
  assert len(steps) >= 2 and steps[-1] == 20
  proc = run_eval('--dataset_directory', dataset, '--model_directory', models,
                  '--experiment_name', 'toy-ldif', '--split', 'train', '--resolution', '32',
                  '--ckpt', str(steps[0]), '--nocompute_metrics')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'model.ckpt-{steps[0]} (step {steps[0]})' in proc.stderr

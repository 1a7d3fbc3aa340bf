"""End-to-end tests of train.py: the command line, resuming after SIGKILL, and (slow) 200-step runs of each
preset on a dataset made by meshes2dataset.py from two small meshes."""

import glob
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / 'tests' / 'ldif' / 'training'))
import synthetic_data  # pylint: disable=wrong-import-position

ENV = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), TF_CPP_MIN_LOG_LEVEL='2',
           GLIBC_TUNABLES='glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=4294967296')


def _command(dataset, models, name, model_type, steps, *extra):
  return [
      sys.executable,
      str(PROJECT_ROOT / 'train.py'), f'--dataset_directory={dataset}', f'--experiment_name={name}',
      f'--model_type={model_type}', f'--model_directory={models}', '--batch_size=2',
      f'--train_step_count={steps}', '--progress=false', *extra
  ]


def _job_dir(models, name):
  return os.path.join(models, f'sif-transcoder-{name}', '1-hparams', 'train')


def _steps(job_dir):
  return sorted(
      int(p.rsplit('-', 1)[1].split('.')[0]) for p in glob.glob(os.path.join(job_dir, 'model.ckpt-*.index')))


@pytest.fixture(scope='module')
def synthetic_dataset(tmp_path_factory):
  root = tmp_path_factory.mktemp('synthetic')
  synthetic_data.write_ellipsoid_dataset(str(root))
  return str(root)


def test_resume_after_sigkill(synthetic_dataset, tmp_path):
  models = str(tmp_path / 'models')
  cmd = _command(synthetic_dataset, models, 'killed', 'sif', 40, '--checkpoint_interval=5', '--xla=none')
  job = _job_dir(models, 'killed')
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, cwd=tmp_path)
  try:
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not any(s >= 6 for s in _steps(job)):
      time.sleep(0.2)
    assert proc.poll(
    ) is None, 'the run ended before it could be killed:\n' + proc.stdout.read().decode()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
  proc.stdout.close()
  at_kill = _steps(job)
  assert at_kill and at_kill[-1] < 40
  second = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
  assert second.returncode == 0, second.stderr[-3000:]
  resumed = [l for l in second.stderr.splitlines() if 'Resuming from' in l]
  assert resumed, second.stderr[-3000:]
  resumed_step = int(resumed[0].rsplit('step', 1)[1])
  # The latest checkpoint present after the kill (it may have written one more between our check and the kill;
  # a half-written one is never the `checkpoint` file's latest).
  assert resumed_step in at_kill
  assert _steps(job)[-1] == 40
  from ldif.training import experiment  # pylint: disable=import-outside-toplevel
  assert experiment.load_experiment(os.path.dirname(os.path.dirname(job))).step == 40


def test_bad_model_type_and_missing_dataset_exit_with_clear_errors(synthetic_dataset, tmp_path):
  out = subprocess.run(_command(str(tmp_path / 'nope'), str(tmp_path), 'x', 'sif', 1), capture_output=True,
                       text=True, env=ENV, cwd=tmp_path, timeout=120)
  assert out.returncode == 1 and 'No dataset directory found' in out.stderr
  out = subprocess.run(_command(synthetic_dataset, str(tmp_path), 'x', 'occnet', 1), capture_output=True,
                       text=True, env=ENV, cwd=tmp_path, timeout=120)
  assert out.returncode != 0 and 'model_type' in out.stderr
  assert not os.path.exists(tmp_path / 'sif-transcoder-x')


def test_model_directory_is_relative_to_the_working_directory(synthetic_dataset, tmp_path):
  cmd = [
      c for c in _command(synthetic_dataset, 'x', 'rel', 'sif', 1, '--xla=none')
      if not c.startswith('--model_directory')
  ]
  out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert os.path.isfile(tmp_path / 'trained_models' / 'sif-transcoder-rel' / '1-hparams' / 'train' /
                        'hparams.json')


def test_singleview_depth_trains_on_xyz_images(synthetic_dataset, tmp_path):
  """--model_type singleview-depth (not in the original's train.py): preprocessing lifts depth view 0 to the
  224x224 xyz image the preset's ResNet reads, and a few steps train and checkpoint."""
  models = str(tmp_path / 'models')
  cmd = _command(synthetic_dataset, models, 'sv', 'singleview-depth', 3, '--xla=none', '--checkpoint_interval=2',
                 '--summary_step_interval=1')
  out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  root = os.path.join(models, 'sif-transcoder-sv')
  assert _steps(os.path.join(root, '1-hparams', 'train')) == [1, 3]
  losses = _scalar_series(os.path.join(root, 'log'), 'train-final-loss/final_loss_value')
  assert len(losses) == 3 and np.all(np.isfinite(losses)) and min(losses) > 0
  from ldif.training import experiment  # pylint: disable=import-outside-toplevel
  loaded = experiment.load_experiment(root, model_type='singleview-depth')
  assert loaded.step == 3 and loaded.hparams.observation_sampling == 'im1xyzpn'


# ---- slow: 200 steps of each preset on a meshes2dataset dataset --------------------------------------------


@pytest.fixture(scope='module')
def mesh_dataset(tmp_path_factory):
  """A dataset made by meshes2dataset.py from two trimesh primitives (fixed seed)."""
  import trimesh  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp('mesh_dataset')
  meshes = {
      'sphere.ply': trimesh.creation.icosphere(subdivisions=2, radius=0.8),
      'box.ply': trimesh.creation.box(extents=(1.0, 0.6, 0.4))
  }
  for name, mesh in meshes.items():
    os.makedirs(root / 'meshes' / 'train' / 'animal', exist_ok=True)
    mesh.export(root / 'meshes' / 'train' / 'animal' / name)
  out = subprocess.run([
      sys.executable,
      str(PROJECT_ROOT / 'meshes2dataset.py'), f'--mesh_directory={root / "meshes"}',
      f'--dataset_directory={root / "dataset"}', '--max_threads=1', '--progress=false', '--seed=7'
  ], capture_output=True, text=True, env=ENV, cwd=root, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  return str(root / 'dataset')


def _scalar_series(log_dir, tag):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  values = {}
  for event_file in glob.glob(os.path.join(log_dir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      for v in event.summary.value:
        if v.tag == tag:
          values[event.step] = float(tf.make_ndarray(v.tensor)) if v.HasField('tensor') else v.simple_value
  return [values[k] for k in sorted(values)]


@pytest.mark.slow
@pytest.mark.parametrize('model_type', ['sif', 'sif++', 'ldif'])
def test_200_steps_halve_the_loss(mesh_dataset, tmp_path, model_type):
  models = str(tmp_path / 'models')
  cmd = _command(mesh_dataset, models, 'e2e', model_type, 200, '--summary_step_interval=1', '--seed=3')
  out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  root = os.path.join(models, 'sif-transcoder-e2e')
  assert os.path.isfile(os.path.join(root, '1-hparams', 'train', 'hparams.json'))
  assert _steps(os.path.join(root, '1-hparams', 'train'))[-1] == 200
  losses = _scalar_series(os.path.join(root, 'log'), 'train-final-loss/final_loss_value')
  assert len(losses) == 200
  start, end = np.mean(losses[:10]), np.mean(losses[-10:])
  assert end < 0.5 * start, (start, end)

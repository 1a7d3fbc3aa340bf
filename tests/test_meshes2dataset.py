"""End-to-end tests of the meshes2dataset.py command line: flags, exit status and summary, kill and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import trimesh

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(PROJECT_ROOT, 'meshes2dataset.py')
FILE_SIZES = {'coarse_grid.grd': 76 + 4 * 32**3, 'nss_points.sdf': 1600000, 'uniform_points.sdf': 1600000,
              'surface_samples_from_dodeca.pts': 2400000}


def _env():
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join([PROJECT_ROOT] + [p for p in [env.get('PYTHONPATH')] if p])
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  env.setdefault('NUMBA_NUM_THREADS', '1')
  return env


def _run(*args, timeout=300):
  return subprocess.run([sys.executable, SCRIPT, *args], cwd=PROJECT_ROOT, env=_env(), capture_output=True,
                        text=True, timeout=timeout, check=False)


def test_flags_and_defaults_match_the_original():
  code = ('import json, meshes2dataset; F = meshes2dataset.FLAGS; '
          'print(json.dumps({n: F[n].default for n in ["mesh_directory", "dataset_directory", '
          '"skip_existing", "max_threads", "log_level", "optimize", "trample_optimized", "optimize_only", '
          '"seed"]}))')
  out = subprocess.run([sys.executable, '-c', code], cwd=PROJECT_ROOT, env=_env(), capture_output=True,
                       text=True, check=True, timeout=120)
  assert json.loads(out.stdout.strip().splitlines()[-1]) == {
      'mesh_directory': '', 'dataset_directory': '', 'skip_existing': True, 'max_threads': -1,
      'log_level': 'INFO', 'optimize': True, 'trample_optimized': True, 'optimize_only': False, 'seed': 2077}


def test_bad_mesh_gives_a_summary_and_nonzero_exit(tmp_path):
  meshes = tmp_path / 'meshes' / 'train' / 'animal'
  meshes.mkdir(parents=True)
  trimesh.creation.icosphere(subdivisions=2).export(meshes / 'good.ply')
  (meshes / 'broken.ply').write_bytes(b'ply\nthis is not a ply file\n')
  out = tmp_path / 'dataset'
  result = _run('--mesh_directory', str(tmp_path / 'meshes'), '--dataset_directory', str(out),
                '--nooptimize', '--noprogress', '--max_threads', '1')
  assert result.returncode == 1, result.stderr
  assert '1 input(s) failed and were skipped' in result.stderr
  assert f'{meshes / "broken.ply"}: could not read the mesh' in result.stderr
  assert os.path.isfile(out / 'train' / 'animal' / 'good' / 'surface_samples_from_dodeca.pts')
  assert open(out / 'train.txt').read() == f'{out}/train/animal/good/\n'


def test_wrong_structure_is_an_error_naming_the_file(tmp_path):
  (tmp_path / 'meshes').mkdir()
  trimesh.creation.box().export(tmp_path / 'meshes' / 'box.obj')
  result = _run('--mesh_directory', str(tmp_path / 'meshes'), '--dataset_directory', str(tmp_path / 'out'),
                '--noprogress')
  assert result.returncode == 2
  assert 'box.obj: mesh at the wrong depth' in result.stderr
  assert '<split>/<class>/<name>' in result.stderr


def _check_no_truncated_files(dataset):
  """Every visible file of every example has its full size; complete examples load."""
  from ldif.datasets import example  # pylint: disable=g-import-not-at-top
  complete = []
  animal = dataset / 'train' / 'animal'
  for d in sorted(animal.iterdir()) if animal.exists() else []:
    for name, size in FILE_SIZES.items():
      if (d / name).exists():
        assert os.path.getsize(d / name) == size, d / name
    if (d / 'depth_and_normals.npz').exists():
      example.read_depth_and_normals(d / 'depth_and_normals.npz')
    if example.is_complete(d):
      example.read_example_directory(d, seed=0)
      complete.append(d.name)
  return complete


def test_sigkill_then_resume_leaves_no_truncated_example(tmp_path):
  meshes = tmp_path / 'meshes' / 'train' / 'animal'
  meshes.mkdir(parents=True)
  names = [f'm{i}' for i in range(3)]
  for i, name in enumerate(names):
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5 + 0.1 * i)
    mesh.apply_scale([1.0, 1.0 + 0.2 * i, 1.0])
    mesh.export(meshes / f'{name}.ply')
  dataset = tmp_path / 'dataset'
  args = ['--mesh_directory', str(tmp_path / 'meshes'), '--dataset_directory', str(dataset),
          '--max_threads', '1', '--noprogress']
  proc = subprocess.Popen([sys.executable, SCRIPT, *args, '--nooptimize'], cwd=PROJECT_ROOT, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  first = dataset / 'train' / 'animal' / 'm0' / 'surface_samples_from_dodeca.pts'
  deadline = time.time() + 240
  try:
    while not first.exists() and proc.poll() is None and time.time() < deadline:
      time.sleep(0.005)
    # The next mesh is being processed now: kill the run in the middle of it.
    time.sleep(0.3)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait(timeout=60)
  assert killed, 'the run ended before it could be killed'
  assert proc.returncode == -signal.SIGKILL
  complete = _check_no_truncated_files(dataset)
  assert 'm0' in complete and len(complete) < len(names)
  sizes_before = os.stat(first).st_mtime_ns

  result = _run(*args)  # --skip_existing is the default; also writes the shards
  assert result.returncode == 0, result.stderr
  assert _check_no_truncated_files(dataset) == names
  assert os.stat(first).st_mtime_ns == sizes_before  # the finished example was skipped
  for d in (dataset / 'train' / 'animal').iterdir():
    assert not [n for n in os.listdir(d) if n.startswith('.')], f'temporary files left in {d}'
  assert open(dataset / 'train.txt').read().splitlines() == [f'{dataset}/train/animal/{n}/' for n in names]
  from ldif.datasets import tfrecords  # pylint: disable=g-import-not-at-top
  shards = tfrecords.list_shards(dataset, 'train')
  assert [os.path.basename(s) for s in shards] == ['train-00000-of-00001.tfrecords']
  records = list(tfrecords.read_shard(shards[0]))
  assert sorted(r['mesh_name'] for r in records) == [f'animal|{n}'.encode() for n in names]
  assert all(np.all(np.isfinite(r['grid'])) for r in records)

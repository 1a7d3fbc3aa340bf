"""Tests of the dataset builder: example directory contents, bad inputs, seeding, skip logic, split lists,
shards and stale-shard removal."""

import os
import re
import shutil

import numpy as np
import pytest
import trimesh

from gaps_py import io as gaps_io
from gaps_py import msh2msh
from ldif.datasets import example
from ldif.datasets import make_dataset
from ldif.datasets import tfrecords

EXPECTED_FILES = {'orig_to_gaps.txt', 'coarse_grid.grd', 'nss_points.sdf', 'uniform_points.sdf',
                  'depth_and_normals.npz', 'surface_samples_from_dodeca.pts'}


def _tree_bytes(root):
  """{relative path: bytes or ('link', target)} of every entry under root."""
  out = {}
  for dirpath, _, filenames in os.walk(root):
    for name in filenames:
      path = os.path.join(dirpath, name)
      rel = os.path.relpath(path, root)
      out[rel] = ('link', os.readlink(path)) if os.path.islink(path) else open(path, 'rb').read()
  return out


def test_example_directories_have_the_original_files(built_dataset):
  mesh_dir, out_dir, report = built_dataset
  assert sorted(report.written) == [f'{out_dir}/train/animal/sphere/', f'{out_dir}/train/chair/box/',
                                    f'{out_dir}/val/animal/tilted/']
  for (split, cls, name, ext) in [('train', 'animal', 'sphere', '.ply'), ('train', 'chair', 'box', '.obj'),
                                  ('val', 'animal', 'tilted', '.off')]:
    d = os.path.join(out_dir, split, cls, name)
    assert set(os.listdir(d)) == EXPECTED_FILES | {f'mesh_orig{ext}'}
    link = os.path.join(d, f'mesh_orig{ext}')
    target = os.readlink(link)
    assert os.path.isabs(target) and os.path.samefile(target, os.path.join(mesh_dir, split, cls, name + ext))
    assert os.path.getsize(os.path.join(d, 'coarse_grid.grd')) == 76 + 4 * 32**3
    assert os.path.getsize(os.path.join(d, 'nss_points.sdf')) == 100000 * 16
    assert os.path.getsize(os.path.join(d, 'uniform_points.sdf')) == 100000 * 16
    assert os.path.getsize(os.path.join(d, 'surface_samples_from_dodeca.pts')) == 100000 * 24
    text = open(os.path.join(d, 'orig_to_gaps.txt')).read()
    assert re.fullmatch(r'(\S+ ){16}', text), text
    vertices, faces = gaps_io.load_mesh(link)
    expected = np.array([float(f'{x:g}') for x in msh2msh.normalization_matrix(vertices, faces).ravel()])
    np.testing.assert_array_equal(gaps_io.read_matrix(os.path.join(d, 'orig_to_gaps.txt')).ravel(), expected)
    _, world2grid = gaps_io.read_grd(os.path.join(d, 'coarse_grid.grd'))
    np.testing.assert_allclose(np.diag(world2grid)[:3], 31 / 1.4, rtol=1e-6)
    np.testing.assert_allclose(world2grid[:3, 3], 15.5, rtol=1e-6)
    with np.load(os.path.join(d, 'depth_and_normals.npz')) as npz:
      assert npz.files == ['arr_0']
      arr = npz['arr_0']
    assert arr.shape == (20, 224, 224, 4) and arr.dtype == np.float32
    thousandths = arr[..., 0] * 1000
    assert np.max(np.abs(thousandths - np.round(thousandths))) < 1e-3  # PNG integers / 1000
    fg = arr[..., 0] > 0
    assert 0.3 < arr[..., 0][fg].min() and arr[..., 0].max() < 1.8  # cameras at distance 1.04, box +-0.7
    assert np.all(arr[..., 1:][fg] >= 0)  # undecoded normals quirk (reference 2.3)
  assert open(os.path.join(out_dir, 'train.txt')).read() == (
      f'{out_dir}/train/animal/sphere/\n{out_dir}/train/chair/box/\n')
  assert open(os.path.join(out_dir, 'val.txt')).read() == f'{out_dir}/val/animal/tilted/\n'
  assert sorted(os.listdir(os.path.join(out_dir, 'optimized'))) == ['train', 'val']
  assert os.listdir(os.path.join(out_dir, 'optimized', 'train')) == ['train-00000-of-00001.tfrecords']


def test_find_meshes_reports_structure_problems(tmp_path):
  root = tmp_path / 'meshes'
  sphere = trimesh.creation.icosphere(subdivisions=1)
  (root / 'train' / 'animal').mkdir(parents=True)
  (root / 'train' / 'deep' / 'er').mkdir(parents=True)
  sphere.export(root / 'train' / 'animal' / 'good.ply')
  sphere.export(root / 'train' / 'animal' / 'dup.ply')
  sphere.export(root / 'train' / 'animal' / 'dup.off')
  sphere.export(root / 'misplaced.ply')
  sphere.export(root / 'train' / 'deep' / 'er' / 'x.obj')
  (root / 'train' / 'animal' / 'notes.txt').write_text('hi')
  (root / 'train' / 'animal' / '.hidden.ply').write_text('ignored')
  (root / 'README.md').write_text('ignored with a warning')
  jobs, failures = make_dataset.find_meshes(str(root) + '/', 'out/')
  assert [j.relpath for j in jobs] == ['train/animal/good.ply']
  assert jobs[0].example_dir == 'out/train/animal/good/'
  assert jobs[0].mesh_path == os.path.abspath(root / 'train' / 'animal' / 'good.ply')
  by_name = {os.path.basename(f.path): f.message for f in failures}
  assert set(by_name) == {'dup.ply', 'dup.off', 'misplaced.ply', 'x.obj', 'notes.txt'}
  assert 'same example' in by_name['dup.ply'] and 'wrong depth' in by_name['misplaced.ply']
  assert 'wrong depth' in by_name['x.obj'] and "unsupported extension '.txt'" in by_name['notes.txt']
  assert '<split>/<class>/<name>' in by_name['x.obj']


def test_find_meshes_fatal_errors(tmp_path):
  with pytest.raises(ValueError, match='does not exist'):
    make_dataset.find_meshes(tmp_path / 'absent', 'out')
  (tmp_path / 'flat').mkdir()
  trimesh.creation.box().export(tmp_path / 'flat' / 'box.ply')
  with pytest.raises(ValueError,
                     match=r'(?s)no usable meshes found.*<split>/<class>/<name>.*box\.ply: mesh at the'):
    make_dataset.find_meshes(tmp_path / 'flat', 'out')
  (tmp_path / 'res' / 'optimized' / 'c').mkdir(parents=True)
  trimesh.creation.box().export(tmp_path / 'res' / 'optimized' / 'c' / 'box.ply')
  with pytest.raises(ValueError, match='reserved'):
    make_dataset.find_meshes(tmp_path / 'res', 'out')


def _write_bad_meshes(directory):
  directory.mkdir(parents=True, exist_ok=True)
  (directory / 'empty.ply').write_text('ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\n'
                                       'property float y\nproperty float z\nelement face 0\n'
                                       'property list uchar int vertex_indices\nend_header\n')
  (directory / 'nan.obj').write_text('v 0 0 0\nv 1 0 0\nv nan 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\n')
  (directory / 'degenerate.off').write_text('OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n')
  (directory / 'garbage.ply').write_bytes(b'\x00\x01 this is not a mesh \xff' * 10)
  (directory / 'cloud.xyz').write_text('0 0 0\n')


def test_bad_meshes_are_reported_and_the_rest_complete(tmp_path):
  meshes = tmp_path / 'meshes'
  good = meshes / 'train' / 'animal'
  good.mkdir(parents=True)
  trimesh.creation.icosphere(subdivisions=2).export(good / 'sphere.stl')
  holey = trimesh.creation.icosphere(subdivisions=2)
  holey.update_faces(np.arange(len(holey.faces)) % 7 != 0)  # a mesh with holes must still work
  holey.export(good / 'holey.ply')
  _write_bad_meshes(meshes / 'train' / 'bad')
  out = tmp_path / 'dataset'
  report = make_dataset.make_dataset(str(meshes), str(out), max_threads=1, optimize=False, progress=False)
  messages = {os.path.basename(f.path): f.message for f in report.failures}
  assert set(messages) == {'empty.ply', 'nan.obj', 'degenerate.off', 'garbage.ply', 'cloud.xyz'}
  for name, message in messages.items():
    assert name in message or name == 'cloud.xyz'
  assert 'no faces' in messages['empty.ply']
  assert 'NaN or inf' in messages['nan.obj']
  assert 'degenerate' in messages['degenerate.off']
  assert 'could not read' in messages['garbage.ply']
  assert "unsupported extension '.xyz'" in messages['cloud.xyz']
  assert sorted(report.written) == [f'{out}/train/animal/holey/', f'{out}/train/animal/sphere/']
  assert open(out / 'train.txt').read() == f'{out}/train/animal/holey/\n{out}/train/animal/sphere/\n'
  assert not (out / 'train' / 'bad').exists() or not any((out / 'train' / 'bad').iterdir())
  for d in report.written:
    example.read_example_directory(d, seed=0)


def test_runs_are_reproducible_and_independent_of_the_mesh_location(tmp_path):
  meshes_a = tmp_path / 'a'
  (meshes_a / 'train' / 'c').mkdir(parents=True)
  trimesh.creation.capsule(height=0.5, radius=0.3).export(meshes_a / 'train' / 'c' / 'capsule.ply')
  trimesh.creation.box(extents=(0.3, 0.5, 0.2)).export(meshes_a / 'train' / 'c' / 'box.stl')
  meshes_b = tmp_path / 'b'
  shutil.copytree(meshes_a, meshes_b)
  make_dataset.make_dataset(str(meshes_a), str(tmp_path / 'out_a'), max_threads=1, optimize=False,
                            progress=False)
  # Another location, and two worker processes (joblib) instead of in-process: the same bytes.
  make_dataset.make_dataset(str(meshes_b), str(tmp_path / 'out_b'), max_threads=2, optimize=False,
                            progress=False)
  a = _tree_bytes(tmp_path / 'out_a' / 'train')
  b = _tree_bytes(tmp_path / 'out_b' / 'train')
  for name, ext in [('capsule', '.ply'), ('box', '.stl')]:
    link = os.path.join('c', name, f'mesh_orig{ext}')
    assert a.pop(link)[1] == str(meshes_a / 'train' / 'c' / f'{name}{ext}')
    assert b.pop(link)[1] == str(meshes_b / 'train' / 'c' / f'{name}{ext}')
  assert a == b and len(a) == 12
  shutil.rmtree(meshes_a / 'train' / 'c')
  (meshes_a / 'train' / 'c').mkdir()
  shutil.copy(meshes_b / 'train' / 'c' / 'capsule.ply', meshes_a / 'train' / 'c')
  make_dataset.make_dataset(str(meshes_a), str(tmp_path / 'out_c'), max_threads=1, optimize=False,
                            progress=False, seed=1)
  c = _tree_bytes(tmp_path / 'out_c' / 'train')
  nss = os.path.join('c', 'capsule', 'nss_points.sdf')
  assert c[nss] != a[nss]
  grid = os.path.join('c', 'capsule', 'coarse_grid.grd')
  assert c[grid] == a[grid]


def test_skip_existing_only_recomputes_what_is_missing(dataset_copy):
  mesh_dir, out = dataset_copy
  sphere = os.path.join(out, 'train', 'animal', 'sphere')
  box = os.path.join(out, 'train', 'chair', 'box')
  samples = os.path.join(sphere, example.SURFACE_SAMPLES)
  before = open(samples, 'rb').read()
  os.remove(samples)
  box_nss = os.path.join(box, example.NSS_POINTS)
  box_mtime = os.stat(box_nss).st_mtime_ns
  report = make_dataset.make_dataset(mesh_dir, out, max_threads=1, optimize=False, progress=False)
  assert report.written == [f'{out}/train/animal/sphere/']  # resampled from the existing npz
  assert sorted(report.skipped) == [f'{out}/train/chair/box/', f'{out}/val/animal/tilted/']
  assert open(samples, 'rb').read() == before  # seeded: identical to the first run
  assert os.stat(box_nss).st_mtime_ns == box_mtime
  full = make_dataset.make_dataset(mesh_dir, out, max_threads=1, optimize=False, progress=False,
                                   skip_existing=False)
  assert len(full.written) == 3 and not full.skipped
  assert os.stat(box_nss).st_mtime_ns != box_mtime
  assert open(samples, 'rb').read() == before


def test_shards_hold_each_example_once_with_seeded_subsets(built_dataset):
  _, out, _ = built_dataset
  shard = os.path.join(out, 'optimized', 'train', 'train-00000-of-00001.tfrecords')
  records = list(tfrecords.read_shard(shard))
  assert sorted(r['mesh_name'] for r in records) == [b'03001627|box', b'animal|sphere']
  for r in records:
    name = r['mesh_name'].decode().split('|')[1]
    d = f'{out}/train/{"chair" if name == "box" else "animal"}/{name}/'
    key = '/'.join(example.example_identity(d))
    expected = example.read_example_directory(d, seed=example.derive_seed(make_dataset.DEFAULT_SEED,
                                                                           'surface_subset', key))
    for k, v in expected.items():
      np.testing.assert_array_equal(r[k], v)


def test_split_order_is_deterministic_and_per_split():
  dirs = [f'd/train/c/{i}/' for i in range(10)]
  order = make_dataset.shuffled_split(dirs, 'train', 2077)
  assert sorted(order) == sorted(dirs) and order != sorted(dirs)
  assert make_dataset.shuffled_split(dirs[::-1], 'train', 2077) == order
  assert make_dataset.shuffled_split(dirs, 'train', 2078) != order


def test_stale_shards_are_removed_when_a_split_shrinks(dataset_copy):
  _, out = dataset_copy
  lists = {'train': [f'{out}/train/animal/sphere/', f'{out}/train/chair/box/']}
  opt = os.path.join(out, 'optimized')
  open(os.path.join(opt, 'leftover.tfrecords'), 'wb').close()
  open(os.path.join(opt, 'train', 'train-00003-of-00005.tfrecords'), 'wb').close()
  shards = make_dataset.write_optimized(out, lists, examples_per_shard=1, progress=False)
  names = ['train-00000-of-00002.tfrecords', 'train-00001-of-00002.tfrecords']
  assert sorted(os.listdir(os.path.join(opt, 'train'))) == names
  assert [os.path.basename(p) for p in shards['train']] == names
  assert not os.path.exists(os.path.join(opt, 'leftover.tfrecords'))
  assert sorted(os.listdir(os.path.join(opt, 'val'))) == ['val-00000-of-00001.tfrecords']  # other split kept
  all_names = sorted(r['mesh_name'] for p in shards['train'] for r in tfrecords.read_shard(p))
  assert all_names == [b'03001627|box', b'animal|sphere']
  # Without trampling: current shards are kept as they are, stale ones still go.
  keep = os.path.join(opt, 'train', names[0])
  with open(keep, 'wb') as f:
    f.write(b'kept')
  open(os.path.join(opt, 'train', 'train-00000-of-00009.tfrecords'), 'wb').close()
  make_dataset.write_optimized(out, lists, examples_per_shard=1, trample=False, progress=False)
  assert sorted(os.listdir(os.path.join(opt, 'train'))) == names
  assert open(keep, 'rb').read() == b'kept'
  # The split shrinks to one example: one shard remains.
  make_dataset.write_optimized(out, {'train': lists['train'][:1]}, examples_per_shard=1, progress=False)
  assert os.listdir(os.path.join(opt, 'train')) == ['train-00000-of-00001.tfrecords']


def test_optimize_only_rebuilds_lists_and_shards(dataset_copy):
  _, out = dataset_copy
  os.remove(os.path.join(out, 'val.txt'))
  shutil.rmtree(os.path.join(out, 'optimized'))
  report = make_dataset.make_dataset('', out, optimize_only=True, max_threads=1, progress=False)
  assert sorted(report.split_lists) == ['train', 'val']
  assert open(os.path.join(out, 'val.txt')).read() == f'{out}/val/animal/tilted/\n'
  assert os.listdir(os.path.join(out, 'optimized', 'val')) == ['val-00000-of-00001.tfrecords']


def test_write_npz_is_a_numpy_npz(tmp_path, rng):
  arr = rng.standard_normal((2, 5, 4)).astype(np.float32)
  with open(tmp_path / 'a.npz', 'wb') as f:
    make_dataset.write_npz(f, arr)
  with np.load(tmp_path / 'a.npz', allow_pickle=False) as npz:
    assert npz.files == ['arr_0']
    np.testing.assert_array_equal(npz['arr_0'], arr)
    assert npz['arr_0'].dtype == np.float32
  with open(tmp_path / 'b.npz', 'wb') as f:
    make_dataset.write_npz(f, arr)
  assert (tmp_path / 'a.npz').read_bytes() == (tmp_path / 'b.npz').read_bytes()


def test_job_count_flag():
  assert make_dataset.resolve_job_count(3) == 3
  assert make_dataset.resolve_job_count(8, task_count=2) == 2
  assert make_dataset.resolve_job_count(-1) >= 1
  with pytest.raises(ValueError, match='max_threads'):
    make_dataset.resolve_job_count(0)

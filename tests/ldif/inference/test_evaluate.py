"""The evaluation loop on hand-made example directories with an analytic 'model' (a sphere SIF)."""

import os

import numpy as np
import pandas as pd
import pytest

from eval_testutil import MESH_CENTER
from eval_testutil import MESH_SCALE
from eval_testutil import make_example_directory
from eval_testutil import orig_to_gaps
from eval_testutil import SPHERE_GAPS_RADIUS
from eval_testutil import SphereEncoder
from gaps_py import io as gaps_io
from ldif.inference import evaluate
from ldif.inference import example as inference_example
from ldif.inference import predict

@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  rng = np.random.default_rng(7)
  root = str(tmp_path_factory.mktemp('dataset'))
  dirs = [make_example_directory(root, 'test', 'animal', 'ball', rng),
          make_example_directory(root, 'test', '02691156', 'plane', rng, gt_radius=0.25),
          make_example_directory(root, 'test', 'animal', 'pebble', rng, gt_radius=0.35)]
  with open(os.path.join(root, 'test.txt'), 'w') as f:
    f.write(''.join(d + '\n' for d in sorted(dirs)))
  return root


def test_inference_example_reads_a_directory(dataset):
  ball = os.path.join(dataset, 'test', 'animal', 'ball')
  ex = inference_example.InferenceExample.from_directory(ball, seed=3)
  assert ex.mesh_name == 'animal|ball' and (ex.split, ex.class_name, ex.name) == ('test', 'animal', 'ball')
  assert ex.depth_renders.shape == (20, 224, 224, 1)
  assert ex.surface_point_samples.shape == (10000, 6)
  assert ex.uniform_samples.shape == (100000, 4)
  np.testing.assert_allclose(ex.orig_to_gaps, orig_to_gaps(), atol=1e-6)
  gaps_mesh = ex.normalized_gt_mesh()
  np.testing.assert_allclose(np.linalg.norm(gaps_mesh.vertices, axis=1), SPHERE_GAPS_RADIUS, atol=1e-5)
  batch = ex.batch()
  assert batch['depth_renders'].shape == (1, 20, 224, 224, 1) and batch['mesh_name'].shape == (1,)


def test_evaluate_split_writes_tables_meshes_and_ldifs(dataset, tmp_path):
  encoder = SphereEncoder()
  options = evaluate.EvalOptions(result_directory=str(tmp_path / 'results'), save_meshes=True,
                                 save_ldifs=True, save_results=True, resolution=64, grid_positions='aligned',
                                 metric_sample_count=50000)
  result = evaluate.evaluate_split(encoder, dataset, 'test', options, progress=False)
  full = pd.read_csv(tmp_path / 'results' / 'full_results_test.csv', index_col=0)
  summary = pd.read_csv(tmp_path / 'results' / 'result_summary_test.csv', index_col=0)
  assert list(full.columns) == ['key', 'Normal Consistency', 'F-Score (tau)', 'F-Score (2*tau)', 'Chamfer',
                                'IoU']
  assert list(summary.columns)[0] == 'class'
  assert sorted(full['key']) == ['02691156|plane', 'animal|ball', 'animal|pebble']
  assert summary['class'].tolist() == ['airplane', 'animal', 'mean']
  row = full.set_index('key').loc['animal|ball']
  # Same sphere as the ground truth: near-perfect scores (marching cubes at 64^3 vs an icosphere).
  assert row['IoU'] > 99.5
  assert row['F-Score (tau)'] > 99.0
  assert row['Normal Consistency'] > 0.99
  assert row['Chamfer'] < 0.05
  # Ground truth radius 0.25 vs predicted 0.3 (gaps): IoU = (0.25 / 0.3)^3 and a 0.25 mesh-unit gap.
  plane = full.set_index('key').loc['02691156|plane']
  assert plane['IoU'] == pytest.approx(100.0 * (0.25 / 0.3)**3, abs=1.0)
  assert plane['F-Score (tau)'] < 1.0
  assert plane['Chamfer'] == pytest.approx(1000.0 * 2 * (0.05 / MESH_SCALE)**2, rel=0.05)
  # The summary's last row is the unweighted mean of the class means.
  means = summary.set_index('class')
  animal = full[full['key'].str.startswith('animal')]['IoU'].mean()
  assert means.loc['animal', 'IoU'] == pytest.approx(animal)
  assert means.loc['mean', 'IoU'] == pytest.approx((animal + plane['IoU']) / 2)
  # Meshes are in the mesh frame; ldifs in the gaps frame and readable.
  v, _ = gaps_io.load_mesh(tmp_path / 'results' / 'meshes' / 'test' / 'animal' / 'ball.ply')
  np.testing.assert_allclose(np.linalg.norm(v - MESH_CENTER, axis=1), SPHERE_GAPS_RADIUS / MESH_SCALE,
                             atol=0.02)
  loaded = predict.Decoder.from_files(tmp_path / 'results' / 'ldifs' / 'test' / 'animal' / 'ball.txt')
  # 'aa' radii are written with three zero angles and read back as 'cov'.
  np.testing.assert_allclose(loaded.packed(), np.concatenate([encoder.packed, np.zeros([1, 3])], axis=1),
                             rtol=1e-6, atol=1e-7)
  assert len(result.entries) == 3 and len(result.seconds_per_example) == 3


def test_compute_metrics_off_gives_nans(dataset):
  options = evaluate.EvalOptions(compute_metrics=False, resolution=32)
  result = evaluate.evaluate_split(SphereEncoder(), dataset, 'test', options, only_class='airplane',
                                   progress=False)
  assert result.tables.full['key'].tolist() == ['02691156|plane']
  assert result.tables.full['IoU'].isna().all()


def test_fallback_sphere_when_there_is_no_surface(dataset):
  class EmptyEncoder(SphereEncoder):

    def encode(self, ex):
      packed = np.array([[0.0, 0.0, 0.0, 0.0, 0.01, 0.01, 0.01]], np.float32)  # constant 0: F = 0 everywhere
      return predict.Decoder.from_packed(packed, radius_type='aa', symmetry_count=0)

  ex = inference_example.InferenceExample.from_directory(os.path.join(dataset, 'test', 'animal', 'ball'))
  result = evaluate.evaluate_example(EmptyEncoder(), ex, evaluate.EvalOptions(resolution=32,
                                                                             metric_sample_count=5000))
  assert not result.had_crossing
  assert result.row['IoU'] == 0.0
  # The fallback sphere (radius 0.5, gaps frame) is mapped to the mesh frame like any reconstruction.
  np.testing.assert_allclose(np.linalg.norm(result.mesh.vertices - MESH_CENTER, axis=1), 0.5 / MESH_SCALE,
                             rtol=1e-6)


def test_split_selection(dataset):
  items = evaluate.read_split(dataset, 'test')
  assert len(items) == 3
  assert evaluate.filter_by_class(items, 'airplane') == [i for i in items if '/02691156/' in i]
  assert len(evaluate.filter_by_class(items, 'animal')) == 2
  with pytest.raises(ValueError, match='chair'):
    evaluate.filter_by_class(items, 'chair')
  a = evaluate.filter_by_eval_frac(items, 0.5, seed=1)
  assert len(a) == 1 and a == evaluate.filter_by_eval_frac(items, 0.5, seed=1)
  assert sorted(evaluate.filter_by_eval_frac(items, 1.0, seed=5)) == sorted(items)
  assert len(evaluate.filter_by_eval_frac(items, 0.01)) == 1
  with pytest.raises(ValueError, match='eval_frac'):
    evaluate.filter_by_eval_frac(items, 0.0)


def test_missing_split_list_names_the_file(dataset):
  with pytest.raises(ValueError, match=r'val\.txt'):
    evaluate.read_split(dataset, 'val')
  with pytest.raises(ValueError, match='does not exist'):
    evaluate.read_split(os.path.join(dataset, 'nope'), 'test')


def test_result_directory_that_is_not_writable(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('x')
  with pytest.raises(ValueError, match=r'a_file.*(is a file|cannot create)'):
    evaluate.ensure_writable_directory(blocker)
  with pytest.raises(ValueError, match=r'a_file/results.*cannot create'):
    evaluate.ensure_writable_directory(blocker / 'results')
  if os.geteuid() != 0:  # root ignores directory permissions
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    try:
      with pytest.raises(ValueError, match=r'locked.*not writable'):
        evaluate.ensure_writable_directory(locked)
    finally:
      locked.chmod(0o700)
  evaluate.ensure_writable_directory(tmp_path / 'new' / 'results')
  assert (tmp_path / 'new' / 'results').is_dir()


def test_save_flags_need_a_result_directory():
  with pytest.raises(ValueError, match='result directory'):
    evaluate.EvalOptions(save_meshes=True).validate()
  with pytest.raises(ValueError, match='result directory'):
    evaluate.EvalOptions(visualize=True).validate()
  evaluate.EvalOptions().validate()


def test_incomplete_example_names_the_directory(tmp_path):
  directory = tmp_path / 'test' / 'animal' / 'broken'
  directory.mkdir(parents=True)
  with pytest.raises(ValueError, match='broken'):
    inference_example.InferenceExample.from_directory(directory)


def test_constant_baselines(dataset):
  ex = inference_example.InferenceExample.from_directory(os.path.join(dataset, 'test', 'animal', 'ball'))
  options = evaluate.EvalOptions(resolution=16, metric_sample_count=5000)
  outside = evaluate.evaluate_example(evaluate.ConstantEncoder('outside'), ex, options)
  inside = evaluate.evaluate_example(evaluate.ConstantEncoder('inside'), ex, options)
  assert outside.row['IoU'] == 0.0
  gt_inside = np.sum(ex.uniform_samples[:, 3] < 0)
  assert inside.row['IoU'] == pytest.approx(100.0 * gt_inside / (len(ex.uniform_samples) + 1e-5), rel=1e-9)
  assert not outside.had_crossing and not inside.had_crossing
  # Both score the fallback sphere (radius 0.5 gaps) against the radius-0.3 ball: 0.2 gaps = 0.25 mesh units
  # away.
  assert outside.row['Chamfer'] == pytest.approx(inside.row['Chamfer'])
  assert outside.row['Chamfer'] == pytest.approx(1000.0 * 2 * (0.2 / MESH_SCALE)**2, rel=0.05)
  with pytest.raises(ValueError, match='constant baseline'):
    evaluate.ConstantEncoder('half')

"""Metrics against cases computed by hand."""

import numpy as np
import pytest
import trimesh

from ldif.inference import metrics


def sphere(radius):
  return trimesh.creation.icosphere(subdivisions=6, radius=radius)


def test_mesh_against_itself_is_perfect():
  mesh = trimesh.creation.box(extents=(0.6, 0.4, 0.8))
  m = metrics.mesh_metrics(mesh, mesh, sample_count=20000)
  assert m['Chamfer'] == 0.0
  assert m['F-Score (tau)'] == pytest.approx(100.0)
  assert m['F-Score (2*tau)'] == pytest.approx(100.0)
  assert m['Normal Consistency'] == pytest.approx(1.0)
  inside = np.random.default_rng(0).random(1000) < 0.3
  assert metrics.point_iou(inside, inside) == pytest.approx(100.0, abs=1e-4)


def test_concentric_spheres():
  # Radii 0.5 and 0.512: every nearest-neighbour distance is about 0.012 (squared 1.44e-4), between tau (1e-4) and
  # 2 tau (2e-4). Chamfer = 1000 * 2 * 0.012^2 = 0.288; F(tau) = 0; F(2 tau) = 100; normals agree.
  m = metrics.mesh_metrics(sphere(0.5), sphere(0.512), sample_count=30000)
  assert m['Chamfer'] == pytest.approx(0.288, rel=0.03)
  assert m['F-Score (tau)'] < 1.0
  assert m['F-Score (2*tau)'] > 99.0
  assert m['Normal Consistency'] > 0.999


def test_shifted_cube():
  # A unit cube shifted by s along x, both sampled with the same seed: every sample of one lies within s of the
  # other surface (its twin is exactly s away), so all squared distances are <= s^2; the two x-faces (1/3 of the
  # area) are at distance exactly s. Hence F-scores are 100 for s <= 0.01 and
  # 1000 * 2 * s^2 / 3 <= Chamfer <= 1000 * 2 * s^2.
  cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
  s = 0.005
  shifted = cube.copy()
  shifted.apply_translation([s, 0.0, 0.0])
  m = metrics.mesh_metrics(shifted, cube, sample_count=30000)
  assert m['F-Score (tau)'] == pytest.approx(100.0)
  assert 1000 * 2 * s**2 / 3 <= m['Chamfer'] <= 1000 * 2 * s**2
  # Shifted by 0.05, the x-face samples are >= 0.05 from the other surface except within 0.01 of an edge (~4% of
  # a face), so at most 4/6 + 2/6 * 0.04 of each side can be within tau or 2 tau.
  far = cube.copy()
  far.apply_translation([0.05, 0.0, 0.0])
  m = metrics.mesh_metrics(far, cube, sample_count=30000)
  bound = 100 * (4 / 6 + 2 / 6 * 0.04)
  assert 30.0 < m['F-Score (tau)'] <= m['F-Score (2*tau)'] <= bound
  assert m['Chamfer'] > 1000 * 2 * 0.05**2 / 3


def test_iou_hand_case():
  pred = np.array([1, 1, 1, 0, 0, 0], bool)
  gt = np.array([1, 1, 0, 1, 0, 0], bool)
  assert metrics.point_iou(pred, gt) == pytest.approx(100 * 2 / 4, rel=1e-5)
  with pytest.raises(ValueError):
    metrics.point_iou(pred, gt[:3])


def test_result_tables():
  rows = [
      {'key': '03001627|a', 'IoU': 50.0, 'Chamfer': 1.0, 'F-Score (tau)': 10.0, 'F-Score (2*tau)': 20.0,
       'Normal Consistency': 0.5},
      {'key': '03001627|b', 'IoU': 70.0, 'Chamfer': 3.0, 'F-Score (tau)': 30.0, 'F-Score (2*tau)': 40.0,
       'Normal Consistency': 0.7},
      {'key': 'animal|bob', 'IoU': 90.0, 'Chamfer': 5.0, 'F-Score (tau)': 50.0, 'F-Score (2*tau)': 60.0,
       'Normal Consistency': 0.9},
  ]
  tables = metrics.result_tables(rows)
  assert list(tables.full.columns) == ['key', *metrics.METRIC_COLUMNS]
  summary = tables.summary.set_index('class')
  assert list(summary.index) == ['animal', 'chair', 'mean']
  assert summary.loc['chair', 'IoU'] == 60.0
  assert summary.loc['mean', 'IoU'] == pytest.approx((60.0 + 90.0) / 2)  # mean of class means
  assert 'chair' in metrics.format_table(tables.summary)
  assert metrics.class_of('02691156|x') == 'airplane'
  with pytest.raises(ValueError):
    metrics.class_of('no-separator')

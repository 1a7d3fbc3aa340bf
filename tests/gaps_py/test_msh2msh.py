"""gaps_py.msh2msh: PCA scale + centroid normalization (GAPS msh2msh)."""

import numpy as np
import pytest

from gaps_py import io as gaps_io
from gaps_py import msh2msh
import geometry_meshes


def _stretched_shifted_sphere():
  v, f = geometry_meshes.sphere(3)
  return v * [2.0, 0.5, 1.0] + [3.0, -1.0, 0.5], f


def _face_stats(v, f):
  """Independent loop implementation of GAPS's area-weighted face-centroid mean and covariance."""
  total, mean = 0.0, np.zeros(3)
  for a, b, c in v[f]:
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a))
    total += area
    mean += area * (a + b + c) / 3
  mean /= total
  cov = np.zeros((3, 3))
  for a, b, c in v[f]:
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a))
    d = (a + b + c) / 3 - mean
    cov += area * np.outer(d, d)
  return mean, cov / total


def test_matrix_is_scale_pca_translate():
  v, f = _stretched_shifted_sphere()
  m = msh2msh.normalization_matrix(v, f)
  mean, cov = _face_stats(v, f)
  l1 = np.linalg.eigvalsh(cov).max()
  want = np.eye(4)
  want[:3, :3] *= 0.25 / np.sqrt(l1)
  want[:3, 3] = -0.25 / np.sqrt(l1) * mean
  np.testing.assert_allclose(m, want, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(mean, [3.0, -1.0, 0.5], atol=1e-12)  # symmetric shape: centroid = centre


def test_normalized_mesh_has_zero_centroid_and_unit_scaled_variance():
  v, f = _stretched_shifted_sphere()
  vn = msh2msh.transform_vertices(v, msh2msh.normalization_matrix(v, f, scale=0.25))
  mean, cov = _face_stats(vn, f)
  np.testing.assert_allclose(mean, 0, atol=1e-12)
  assert np.linalg.eigvalsh(cov).max() == pytest.approx(0.25 ** 2, rel=1e-10)
  # Invariant to a similarity transform of the input (scale + translation).
  vn2 = msh2msh.transform_vertices(v * 7.5 - 3, msh2msh.normalization_matrix(v * 7.5 - 3, f))
  np.testing.assert_allclose(vn2, vn, atol=1e-12)


def test_flags():
  v, f = _stretched_shifted_sphere()
  m = msh2msh.normalization_matrix(v, f, scale=2.0, scale_by_pca=False, translate_by_centroid=False)
  np.testing.assert_allclose(m, np.diag([2, 2, 2, 1.0]))
  m = msh2msh.normalization_matrix(v, f, scale=1.0, scale_by_pca=False)
  np.testing.assert_allclose(m[:3, :3], np.eye(3))
  np.testing.assert_allclose(m[:3, 3], [-3.0, 1.0, -0.5], atol=1e-12)
  with pytest.raises(ValueError, match='zero total area'):
    msh2msh.normalization_matrix(np.zeros((3, 3)), np.array([[0, 1, 2]]))


def test_transform_vertices_homogeneous(rng):
  p = rng.normal(size=(10, 3))
  m = np.eye(4)
  m[3, 3] = 2.0
  np.testing.assert_allclose(msh2msh.transform_vertices(p, m), p / 2)
  with pytest.raises(ValueError):
    msh2msh.transform_vertices(p[:, :2], m)


def test_round_like_gaps_obj_equals_percent_g(rng):
  x = np.concatenate([rng.normal(size=5000) * 10.0 ** rng.integers(-9, 9, 5000),
                      [0.0, -0.0, 0.1234565, 123456.5, 999999.5, 1e300, -2.5e-320, 0.5]])
  np.testing.assert_array_equal(msh2msh.round_like_gaps_obj(x), [float('%g' % t) for t in x])
  assert msh2msh.round_like_gaps_obj(x.reshape(-1, 2)).shape == (len(x) // 2, 2)


def test_cli_writes_obj_and_matrix(tmp_path):
  v, f = _stretched_shifted_sphere()
  src = tmp_path / 'in.ply'
  gaps_io.write_mesh(src, v, f)
  v32, _ = gaps_io.load_mesh(src)  # float32 PLY precision
  rc = msh2msh.main([str(src), str(tmp_path / 'out.obj'), '-scale_by_pca', '-translate_by_centroid', '-scale',
                     '0.25', '-debug_matrix', str(tmp_path / 'm.txt')])
  assert rc == 0
  m = msh2msh.normalization_matrix(v32, f)
  np.testing.assert_allclose(gaps_io.read_matrix(tmp_path / 'm.txt'), m, rtol=1e-5, atol=1e-7)
  assert (tmp_path / 'm.txt').read_text() == ''.join('%g ' % x for x in m.ravel())
  v_out, f_out = gaps_io.load_mesh(tmp_path / 'out.obj')
  np.testing.assert_array_equal(f_out, f)
  np.testing.assert_array_equal(v_out, msh2msh.round_like_gaps_obj(msh2msh.transform_vertices(v32, m)))
  vn, m2 = msh2msh.normalize_mesh(v32, f)
  np.testing.assert_array_equal(vn, v_out)
  np.testing.assert_array_equal(m2, m)
  assert msh2msh.main([str(src)]) == 1
  assert msh2msh.main([str(tmp_path / 'missing.ply'), str(tmp_path / 'x.obj')]) == 1

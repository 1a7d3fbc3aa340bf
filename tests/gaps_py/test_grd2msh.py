"""gaps_py.grd2msh: marching cubes on GAPS grids (vertex placement as GAPS, outward faces, world mapping)."""

import numpy as np
import pytest

from gaps_py import grd2msh
from gaps_py import io as gaps_io
from gaps_py import msh2df
import geometry_meshes


def _analytic_sphere_grid(radius=0.5, n=40, extent=0.8):
  shape, w2g = msh2df.grid_geometry((-extent,) * 3 + (extent,) * 3, 2 * extent / (n - 1) * 1.0001, 0)
  points = geometry_meshes.grid_world_points(shape, w2g)
  return (np.linalg.norm(points, axis=-1) - radius).astype(np.float32), w2g.astype(np.float32)


def _signed_volume(v, f):
  t = v[f].astype(np.float64)
  return np.einsum('ij,ij->i', t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6


def test_sphere_radius_and_orientation():
  values, w2g = _analytic_sphere_grid()
  v, f = grd2msh.grid_to_mesh(values, w2g, threshold=0.0)
  assert v.dtype == np.float32 and f.dtype == np.int64 and len(f) > 1000
  r = np.linalg.norm(v.astype(np.float64), axis=1)
  # Linear interpolation of |p| - r along grid edges: error ~ h^2 / (8 r) with h = 0.041.
  np.testing.assert_allclose(r, 0.5, atol=1.5e-3)
  assert r.mean() == pytest.approx(0.5, abs=5e-4)
  assert _signed_volume(v, f) == pytest.approx(4 / 3 * np.pi * 0.125, rel=0.01)  # outward faces
  assert len(np.unique(v, axis=0)) == len(v)  # welded (GAPS writes a soup of the same positions)
  v2, _ = grd2msh.grid_to_mesh(values, w2g, threshold=0.1)
  np.testing.assert_allclose(np.linalg.norm(v2, axis=1), 0.6, atol=1.5e-3)


def test_vertices_are_linear_edge_interpolations(rng):
  values = rng.normal(size=(9, 10, 11)).astype(np.float32)
  w2g = np.diag([2.0, 4.0, 5.0, 1.0]).astype(np.float32)
  w2g[:3, 3] = [1.0, -2.0, 3.0]
  threshold = 0.3
  v, f = grd2msh.grid_to_mesh(values, w2g, threshold=threshold)
  g = v.astype(np.float64) @ w2g[:3, :3].T.astype(np.float64) + w2g[:3, 3]  # back to (i, j, k)
  frac = np.abs(g - np.round(g))
  on_grid = frac < 1e-4
  # Every vertex lies on a grid edge (classic tables: no cell-centre vertices).
  assert np.all(on_grid.sum(axis=1) >= 2)
  for p in g:
    axis = int(np.argmax(np.abs(p - np.round(p))))
    lo = np.round(p).astype(int)
    lo[axis] = int(np.floor(p[axis]))
    hi = lo.copy()
    hi[axis] += 1
    a, b = values[lo[2], lo[1], lo[0]], values[hi[2], hi[1], hi[0]]
    assert (a < threshold) != (b < threshold)
    assert p[axis] - lo[axis] == pytest.approx((threshold - a) / (b - a), abs=1e-4)


def test_mesh_grid_round_trip_recovers_sphere():
  v, f = geometry_meshes.sphere(4)
  values, w2g = msh2df.mesh_to_distance_field(v, f)  # LDIF's 32^3 grid over +-0.7
  mv, mf = grd2msh.grid_to_mesh(values, w2g)
  r = np.linalg.norm(mv.astype(np.float64), axis=1)
  assert r.mean() == pytest.approx(0.5, abs=2e-3) and np.abs(r - 0.5).max() < 6e-3


def test_no_crossing_gives_empty_mesh():
  values, w2g = _analytic_sphere_grid()
  for threshold in (-5.0, 5.0, float(values.max())):
    v, f = grd2msh.grid_to_mesh(values, w2g, threshold=threshold)
    assert v.shape == (0, 3) and f.shape == (0, 3)


def test_bad_input():
  with pytest.raises(ValueError, match='NaN'):
    grd2msh.grid_to_mesh(np.full((3, 3, 3), np.nan), np.eye(4))
  with pytest.raises(ValueError, match='singular'):
    grd2msh.grid_to_mesh(np.linspace(-1, 1, 27).reshape(3, 3, 3), np.zeros((4, 4)))
  with pytest.raises(ValueError, match='shape'):
    grd2msh.grid_to_mesh(np.zeros((3, 3)), np.eye(4))


def test_cli(tmp_path):
  values, w2g = _analytic_sphere_grid(n=20)
  gaps_io.write_grd(tmp_path / 'g.grd', values, w2g)
  assert grd2msh.main([str(tmp_path / 'g.grd'), str(tmp_path / 'm.ply'), '-threshold', '-0.07', '-v']) == 0
  v, f = gaps_io.load_mesh(tmp_path / 'm.ply')
  v_lib, f_lib = grd2msh.grid_to_mesh(*gaps_io.read_grd(tmp_path / 'g.grd'), threshold=-0.07)
  np.testing.assert_array_equal(v, v_lib)
  np.testing.assert_array_equal(f, f_lib)
  assert grd2msh.main([str(tmp_path / 'g.grd')]) == 1
  assert grd2msh.main([str(tmp_path / 'missing.grd'), str(tmp_path / 'm.ply')]) == 1


def test_reference_grid(reference_dir):
  values, w2g = gaps_io.read_grd(reference_dir / 'gaps' / 'bob' / 'coarse_grid.grd')
  v, f = grd2msh.grid_to_mesh(values, w2g)
  assert len(f) > 500
  assert np.all(np.abs(v) <= 0.7 + 1e-6)
  assert _signed_volume(v, f) > 0

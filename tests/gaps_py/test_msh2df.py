"""gaps_py.msh2df: GAPS grid geometry, exact distances, winding-number signs on closed and open meshes."""

import numpy as np
import pytest

from gaps_py import _reference
from gaps_py import io as gaps_io
from gaps_py import msh2df
import geometry_meshes


def test_ldif_grid_geometry_matches_gaps():
  shape, w2g = msh2df.grid_geometry((-0.7, -0.7, -0.7, 0.7, 0.7, 0.7), 0.044, 0)
  assert shape == (32, 32, 32)
  want = np.eye(4)
  want[:3, :3] *= 31 / 1.4
  want[:3, 3] = 15.5
  np.testing.assert_allclose(w2g, want, rtol=1e-12)
  origin, step = msh2df.grid_points_frame(w2g)
  np.testing.assert_allclose(origin, -0.7, rtol=1e-12)
  np.testing.assert_allclose(step, 1.4 / 31, rtol=1e-12)


def test_grid_geometry_border_and_uneven_box():
  # x: 2.0 + 2*3*0.1 = 2.6 -> 26 samples; y: 1.6 -> 16; z: 0.6 + 0.6 = 1.2 -> 12; one scale = min((N-1)/L).
  shape, w2g = msh2df.grid_geometry((-1, -0.5, 0, 1, 0.5, 0.6), 0.1, 3)
  assert shape == (12, 16, 26)
  scale = min(25 / 2.6, 15 / 1.6, 11 / 1.2)
  np.testing.assert_allclose(np.diag(w2g)[:3], scale)
  np.testing.assert_allclose(w2g[:3, 3], np.array([12.5, 7.5, 5.5]) - scale * np.array([0, 0, 0.3]))
  # max resolution clamps the spacing; min resolution 5 enlarges it.
  assert msh2df.grid_geometry((0, 0, 0, 1, 1, 1), 1e-4)[0] == (512, 512, 512)
  assert msh2df.grid_geometry((0, 0, 0, 1, 1, 1), 0.9)[0] == (5, 5, 5)
  with pytest.raises(ValueError):
    msh2df.grid_geometry((0, 0, 0, 1, 1, 1), 0.0)


def test_box_sdf_is_exact():
  v, f = geometry_meshes.box()
  values, w2g = msh2df.mesh_to_distance_field(v, f, bbox=(-0.6, -0.5, -0.7, 0.6, 0.5, 0.7), spacing=0.05)
  assert values.dtype == np.float32 and w2g.dtype == np.float32
  points = geometry_meshes.grid_world_points(values.shape, w2g.astype(np.float64))
  np.testing.assert_allclose(values, geometry_meshes.box_sdf(points), atol=2e-6)
  assert (values < 0).any() and (values > 0).any()


@pytest.mark.parametrize('variant', ['welded', 'soup', 'inward'])
def test_sphere_sdf(variant):
  v, f = geometry_meshes.sphere(3)
  if variant == 'soup':
    v, f = geometry_meshes.soup(v, f)
  elif variant == 'inward':
    f = f[:, ::-1]  # globally inverted orientation: still inside where |winding number| ~ 1
  values, w2g = msh2df.mesh_to_distance_field(v, f, bbox=(-0.8,) * 3 + (0.8,) * 3, spacing=0.1)
  points = geometry_meshes.grid_world_points(values.shape, w2g.astype(np.float64))
  r = np.linalg.norm(points, axis=-1)
  # The icosphere lies within 0.005 of the sphere; distances are exact to the polyhedron.
  np.testing.assert_allclose(values, r - 0.5, atol=6e-3)
  mismatch = (values < 0) != (r < 0.5)
  assert np.all(np.abs(r[mismatch] - 0.5) < 6e-3)
  subset = np.random.default_rng(0).choice(values.size, 300, replace=False)
  d2, _, _ = _reference.closest_points(points.reshape(-1, 3)[subset], v[f])
  np.testing.assert_allclose(np.abs(values).ravel()[subset], np.sqrt(d2), rtol=1e-6, atol=1e-7)


def test_sphere_with_hole_keeps_inside_inside():
  v, f = geometry_meshes.sphere_with_hole(cap_height=0.7)
  values, w2g = msh2df.mesh_to_distance_field(v, f, bbox=(-0.8,) * 3 + (0.8,) * 3, spacing=0.05)
  points = geometry_meshes.grid_world_points(values.shape, w2g.astype(np.float64))
  r = np.linalg.norm(points, axis=-1)
  z = points[..., 2]
  # Inside points that do not face the hole closely, and all outside points, keep their sign (a flood fill
  # from outside would leak through the hole and call everything outside).
  assert np.all(values[(r < 0.4) & (z < 0.2)] < 0)
  assert np.all(values[r > 0.55] > 0)
  assert np.mean((values < 0) == (r < 0.5)) > 0.98


def test_unsigned_and_default_bbox():
  v, f = geometry_meshes.box()
  values, w2g = msh2df.mesh_to_distance_field(v, f, bbox=None, spacing=0.1, border=2, estimate_sign=False)
  assert np.all(values >= 0)
  shape, want = msh2df.grid_geometry((-0.3, -0.2, -0.4, 0.3, 0.2, 0.4), 0.1, 2)
  assert values.shape == shape
  np.testing.assert_allclose(w2g, want.astype(np.float32))


def test_signed_distance_at_points(rng):
  v, f = geometry_meshes.box()
  p = rng.uniform(-0.6, 0.6, (2000, 3))
  np.testing.assert_allclose(msh2df.signed_distance(v, f, p), geometry_meshes.box_sdf(p), atol=1e-12)


def test_cli(tmp_path):
  v, f = geometry_meshes.sphere(2)
  gaps_io.write_mesh(tmp_path / 's.obj', v, f)
  out = tmp_path / 'g.grd'
  rc = msh2df.main([str(tmp_path / 's.obj'), str(out), '-bbox', '-0.7', '-0.7', '-0.7', '0.7', '0.7', '0.7',
                    '-border', '0', '-spacing', '0.044', '-estimate_sign', '-v'])
  assert rc == 0
  values, w2g = gaps_io.read_grd(out)
  vo, fo = gaps_io.load_mesh(tmp_path / 's.obj')
  want, want_w2g = msh2df.mesh_to_distance_field(vo, fo)
  np.testing.assert_array_equal(values, want)
  np.testing.assert_array_equal(w2g, want_w2g)
  # GAPS defaults: bbox = mesh box, border 3, spacing 0.01 -> resolution int(L/0.01 + 0.5) + 6 per axis.
  assert msh2df.main([str(tmp_path / 's.obj'), str(out), '-spacing', '0.1']) == 0
  values, _ = gaps_io.read_grd(out)
  assert values.shape == (16, 16, 16) and np.all(values >= 0)
  assert msh2df.main([str(tmp_path / 's.obj')]) == 1
  assert msh2df.main([str(tmp_path / 'missing.obj'), str(out)]) == 1

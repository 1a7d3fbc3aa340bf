"""gaps_py.msh2pts: near-surface (+1/-1 pairs along normals) and uniform-in-box SDF samples (GAPS msh2pts)."""

import numpy as np
import pytest

from gaps_py import io as gaps_io
from gaps_py import msh2df
from gaps_py import msh2pts
import geometry_meshes


def _plate(thickness):
  """A closed 1 x 1 x thickness box (rays across it are capped by the opposite side)."""
  return geometry_meshes.box((1.0, 1.0, thickness))


def test_near_surface_on_box_soup_labels_and_offsets():
  v, f = geometry_meshes.soup(*geometry_meshes.box())
  s = msh2pts.near_surface_samples(v, f, num_points=4000, max_distance=0.04, seed=3)
  assert s.shape == (4000, 4) and s.dtype == np.float32
  assert set(np.unique(s[:, 3])) == {-1.0, 1.0}
  sd = geometry_meshes.box_sdf(s[:, :3].astype(np.float64))
  # Flat faces: the +1 point is outside and the -1 point inside, at most max_distance from the surface.
  far = np.abs(sd) > 1e-6
  assert np.all(np.sign(sd[far]) == s[far, 3])
  assert np.abs(sd).max() <= 0.04 + 1e-6
  assert abs((s[:, 3] < 0).mean() - 0.5) < 0.02


def test_offset_distribution_is_max_distance_times_u_squared():
  # Faces far apart (no ray is cut short); a soup, so the offset directions are the face normals.
  v, f = geometry_meshes.soup(*geometry_meshes.box((2.0, 2.0, 2.0)))
  s = msh2pts.near_surface_samples(v, f, num_points=20000, max_distance=0.04, seed=0)
  d = np.abs(geometry_meshes.box_sdf(s[:, :3].astype(np.float64), (2.0, 2.0, 2.0)))
  interior = np.sort(np.abs(s[:, :3]), axis=1)[:, 1] < 0.95  # away from edges, |sdf| = offset
  # t = 0.04 u^2: mean 0.04/3, median 0.01, P(t < 0.04/4) = 1/2.
  assert np.mean(d[interior]) == pytest.approx(0.04 / 3, rel=0.05)
  assert np.median(d[interior]) == pytest.approx(0.01, rel=0.08)


def test_offset_directions_blend_vertex_normals():
  v, f = geometry_meshes.box()
  for mesh, flat in [((v, f), False), (geometry_meshes.soup(v, f), True)]:
    s = msh2pts.near_surface_samples(*mesh, num_points=2000, seed=8, exact_count=False)
    step = (s[0::2, :3] - s[1::2, :3]).astype(np.float64)  # outside minus inside point: 2 t n
    step = step[np.linalg.norm(step, axis=1) > 1e-3]  # float32 positions: keep well-resolved directions
    n = step / np.linalg.norm(step, axis=1, keepdims=True)
    axis_aligned = np.isclose(np.abs(n).max(axis=1), 1.0, atol=1e-5)
    # Welded: GAPS vertex normals are the sums of incident face normals, so the blend tilts towards corners.
    assert axis_aligned.all() == flat
    if not flat:
      assert axis_aligned.mean() < 0.01


def test_rays_cap_offsets_at_the_opposite_surface():
  thickness = 0.01
  v, f = geometry_meshes.soup(*_plate(thickness))
  s = msh2pts.near_surface_samples(v, f, num_points=5000, max_distance=0.04, seed=1)
  big_faces = np.abs(s[:, :2]).max(axis=1) < 0.45  # samples from the two large faces, away from the rim
  inside = big_faces & (s[:, 3] < 0)
  # Inward offsets are capped by the other face: the point never leaves the plate.
  assert np.all(np.abs(s[inside, 2]) <= thickness / 2 + 1e-6)
  outward = big_faces & (s[:, 3] > 0)
  # Outward rays also see the plate's other side behind them: t <= min(hit distances) = thickness.
  assert np.all(np.abs(s[outward, 2]) <= thickness * 1.5 + 1e-6)


def test_face_counts_follow_area():
  # Two separate triangles, areas 1:9.
  v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 0, 0], [8, 0, 0], [5, 3, 0]], np.float64)
  f = np.array([[0, 1, 2], [3, 4, 5]])
  s = msh2pts.near_surface_samples(v, f, num_points=20000, max_distance=0.04, seed=2, exact_count=False)
  near_small = (s[:, 0] < 2).sum()
  assert len(s) == pytest.approx(1.1 * 20000, abs=4)
  assert near_small / len(s) == pytest.approx(0.1, abs=0.01)


def test_seeds_and_counts():
  v, f = geometry_meshes.sphere(2)
  a = msh2pts.near_surface_samples(v, f, num_points=3000, seed=5)
  b = msh2pts.near_surface_samples(v, f, num_points=3000, seed=5)
  c = msh2pts.near_surface_samples(v, f, num_points=3000, seed=6)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  loose = msh2pts.near_surface_samples(v, f, num_points=3000, seed=5, exact_count=False)
  assert abs(len(loose) - 3300) < 30 and len(loose) % 2 == 0
  np.testing.assert_array_equal(loose[::2, 3], 1)  # (outside, inside) pairs in face order
  np.testing.assert_array_equal(loose[1::2, 3], -1)


def test_padding_with_zero_valued_surface_points():
  v, f = geometry_meshes.sphere(2)
  # Only the upper half of the offset points survive the box, so padding fills the rest.
  s = msh2pts.near_surface_samples(v, f, num_points=2000, seed=4, bbox=(-1, -1, 0, 1, 1, 1))
  assert len(s) == 2000
  pad = s[:, 3] == 0
  assert 0.3 < pad.mean() < 0.6
  r = np.linalg.norm(s[pad, :3], axis=1)
  assert np.all(np.abs(r - 0.5) < 0.01)  # on the (polygonal) surface
  assert np.all(s[~pad, 2] >= 0)


def test_non_binary_values_are_signed_distances():
  v, f = geometry_meshes.box()
  s = msh2pts.near_surface_samples(v, f, num_points=2000, seed=7, binary_sdf=False)
  sd = geometry_meshes.box_sdf(s[:, :3].astype(np.float64))
  np.testing.assert_allclose(s[:, 3], sd, atol=1e-6)


def test_uniform_samples():
  v, f = geometry_meshes.sphere(3)
  s = msh2pts.uniform_samples(v, f, num_points=20000, seed=0)
  assert s.shape == (20000, 4) and s.dtype == np.float32
  assert np.all(np.abs(s[:, :3]) <= 0.7)
  r = np.linalg.norm(s[:, :3].astype(np.float64), axis=1)
  err = np.abs(s[:, 3] - (r - 0.5))
  # Exact (to the polyhedron, within 0.002 of the sphere) near the surface; interpolated farther out, where
  # the kink of the distance at the centre costs up to about a grid spacing.
  assert err[np.abs(r - 0.5) < 0.1].max() < 3e-3
  assert err.max() < 0.03 and np.median(err) < 2e-3
  exact = msh2pts.uniform_samples(v, f, num_points=20000, seed=0, exact_within=np.inf)
  np.testing.assert_array_equal(exact[:, :3], s[:, :3])
  np.testing.assert_allclose(exact[:, 3], r - 0.5, atol=3e-3)
  far = np.abs(r - 0.5) > 5e-3
  assert np.all((s[far, 3] < 0) == (r[far] < 0.5))
  assert (s[:, 3] < 0).mean() == pytest.approx(4 / 3 * np.pi * 0.125 / 1.4 ** 3, abs=0.01)
  np.testing.assert_array_equal(s, msh2pts.uniform_samples(v, f, num_points=20000, seed=0))
  # bbox None: the mesh box inflated by 1.1 about its centre.
  t = msh2pts.uniform_samples(v, f, bbox=None, num_points=5000, seed=1)
  lo, hi = v.min(axis=0), v.max(axis=0)
  c, h = (lo + hi) / 2, 0.55 * (hi - lo)
  assert np.all(t[:, :3] >= (c - h - 1e-6)) and np.all(t[:, :3] <= (c + h + 1e-6))
  assert np.any(np.abs(t[:, :3]) > np.abs(hi) + 1e-3)


def test_uniform_signs_on_soup_and_open_mesh():
  v, f = geometry_meshes.soup(*geometry_meshes.box())
  s = msh2pts.uniform_samples(v, f, num_points=5000, seed=2, bbox=(-0.5,) * 3 + (0.5,) * 3,
                              exact_within=np.inf)
  np.testing.assert_allclose(s[:, 3], geometry_meshes.box_sdf(s[:, :3].astype(np.float64)), atol=1e-6)
  v, f = geometry_meshes.sphere_with_hole(cap_height=0.8)
  s = msh2pts.uniform_samples(v, f, num_points=5000, seed=3)
  r = np.linalg.norm(s[:, :3], axis=1)
  assert np.all(s[(r < 0.4) & (s[:, 2] < 0.2), 3] < 0) and np.all(s[r > 0.55, 3] > 0)


def test_bad_arguments():
  v, f = geometry_meshes.box()
  with pytest.raises(ValueError, match='max_distance'):
    msh2pts.near_surface_samples(v, f, num_points=10, max_distance=0, seed=0)
  with pytest.raises(ValueError, match='zero total area'):
    msh2pts.near_surface_samples(np.zeros((3, 3)), [[0, 1, 2]], num_points=10, seed=0)
  with pytest.raises(ValueError, match='bounding box'):
    msh2pts.uniform_samples(v, f, bbox=(1, 1, 1, 0, 0, 0), num_points=10, seed=0)


def test_cli(tmp_path):
  v, f = geometry_meshes.sphere(2)
  mesh = tmp_path / 's.obj'
  gaps_io.write_mesh(mesh, v, f)
  vo, fo = gaps_io.load_mesh(mesh)
  out = tmp_path / 'nss.sdf'
  assert msh2pts.main([str(mesh), str(out), '-near_surface', '-max_distance', '0.04', '-num_points', '1000',
                       '-binary_sdf', '-seed', '9', '-v']) == 0
  np.testing.assert_array_equal(gaps_io.read_sdf(out),
                                msh2pts.near_surface_samples(vo, fo, num_points=1000, seed=9))
  out = tmp_path / 'uniform.sdf'
  assert msh2pts.main([str(mesh), str(out), '-uniform_in_bbox', '-bbox', '-0.7', '-0.7', '-0.7', '0.7', '0.7',
                       '0.7', '-npoints', '1000', '-binary_sdf', '-seed', '9']) == 0
  np.testing.assert_array_equal(gaps_io.read_sdf(out),
                                msh2pts.uniform_samples(vo, fo, num_points=1000, seed=9))
  assert msh2pts.main([str(mesh), str(out)]) == 1  # no mode
  assert msh2pts.main([str(mesh), str(tmp_path / 'x.pts'), '-uniform_in_bbox']) == 1
  assert msh2pts.main([str(tmp_path / 'missing.obj'), str(out), '-uniform_in_bbox']) == 1
  assert msh2df.LDIF_BBOX == msh2pts.LDIF_BBOX

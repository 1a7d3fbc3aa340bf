"""gaps_py.msh2df: GAPS grid geometry and distance stages, exact mode, winding-number signs on closed and open
meshes."""

import numpy as np
import pytest

from gaps_py import _kernels
from gaps_py import _reference
from gaps_py import io as gaps_io
from gaps_py import msh2df
from gaps_py import msh2pts
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
  values, w2g = msh2df.mesh_to_distance_field(v, f, bbox=(-0.6, -0.5, -0.7, 0.6, 0.5, 0.7), spacing=0.05,
                                              exact=True)
  assert values.dtype == np.float32 and w2g.dtype == np.float32
  points = geometry_meshes.grid_world_points(values.shape, w2g.astype(np.float64))
  np.testing.assert_allclose(values, geometry_meshes.box_sdf(points), atol=2e-6)
  assert (values < 0).any() and (values > 0).any()


def test_box_sdf_like_gaps():
  # A big box around a small closed mesh: exact near the surface (refined, manifold: no interior pass),
  # GAPS's voxel distance transform + smoothing far away.
  v, f = geometry_meshes.box()
  values, w2g = msh2df.mesh_to_distance_field(v, f, bbox=(-1.2,) * 3 + (1.2,) * 3, spacing=0.05)
  h = msh2df.gaps_grid_spacing(w2g)
  points = geometry_meshes.grid_world_points(values.shape, w2g.astype(np.float64))
  exact = geometry_meshes.box_sdf(points)
  np.testing.assert_array_equal(values < 0, exact < 0)
  near = np.abs(exact) < 6 * h
  np.testing.assert_allclose(values[near], exact[near], atol=2e-6)
  err = np.abs(values - exact)
  assert err.max() < 2 * h
  far = np.abs(exact) > 12 * h  # beyond the smoothing band: pure voxel distances, h * sqrt(integer)
  assert far.sum() > 1000 and np.mean(err[far] > 0.1 * h) > 0.3
  steps = (values[far].astype(np.float64) / h) ** 2
  np.testing.assert_allclose(steps, np.round(steps), atol=2e-3 * steps.max())


def _sphere_variant(variant):
  v, f = geometry_meshes.sphere(3)
  if variant == 'soup':
    v, f = geometry_meshes.soup(v, f)
  elif variant == 'inward':
    f = f[:, ::-1]  # globally inverted orientation: still inside where |winding number| ~ 1
  return v, f


@pytest.mark.parametrize('variant', ['welded', 'soup', 'inward'])
def test_sphere_sdf_exact(variant):
  v, f = _sphere_variant(variant)
  values, w2g = msh2df.mesh_to_distance_field(v, f, bbox=(-0.8,) * 3 + (0.8,) * 3, spacing=0.1, exact=True)
  points = geometry_meshes.grid_world_points(values.shape, w2g.astype(np.float64))
  r = np.linalg.norm(points, axis=-1)
  # The icosphere lies within 0.005 of the sphere; distances are exact to the polyhedron.
  np.testing.assert_allclose(values, r - 0.5, atol=6e-3)
  mismatch = (values < 0) != (r < 0.5)
  assert np.all(np.abs(r[mismatch] - 0.5) < 6e-3)
  subset = np.random.default_rng(0).choice(values.size, 300, replace=False)
  d2, _, _ = _reference.closest_points(points.reshape(-1, 3)[subset], v[f])
  np.testing.assert_allclose(np.abs(values).ravel()[subset], np.sqrt(d2), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('variant', ['welded', 'soup', 'inward'])
def test_sphere_sdf_like_gaps(variant):
  v, f = _sphere_variant(variant)
  box = (-1.0,) * 3 + (1.0,) * 3
  values, w2g = msh2df.mesh_to_distance_field(v, f, bbox=box, spacing=0.05)
  exact, _ = msh2df.mesh_to_distance_field(v, f, bbox=box, spacing=0.05, exact=True)
  h = msh2df.gaps_grid_spacing(w2g)
  np.testing.assert_array_equal(values < 0, exact < 0)  # same sign logic
  err = np.abs(values - exact)
  near = np.abs(exact) < 6 * h
  outside = near & (exact > 0)
  np.testing.assert_allclose(values[outside], exact[outside], atol=1e-6)
  inside = near & (exact < 0)  # (deeper voxels of this sphere reach the smoothing band)
  if variant == 'soup':
    # Not manifold to GAPS: interior distances come from disks around surface samples (too long by < h/2).
    assert not msh2df.is_manifold(f)
    assert np.all(err[inside] < h / 2) and np.mean(err[inside] > 1e-4) > 0.2
    assert np.all(values[inside] <= exact[inside] + 1e-6)
  else:
    assert msh2df.is_manifold(f)
    np.testing.assert_allclose(values[inside], exact[inside], atol=1e-6)
  assert err.max() < 2 * h and np.mean(err <= h / 2) > 0.8


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


def test_uniform_samples_keep_exact_distances_after_msh2df():
  # msh2df leaves its exact distances on the shared search tree; msh2pts.uniform_samples must still
  # interpolate the exact grid (not GAPS's far field) and give the same samples as on its own.
  v, f = geometry_meshes.soup(*geometry_meshes.sphere(2))
  tree = _kernels.MeshSearchTree(v, f)
  msh2df.mesh_to_distance_field(v, f, tree=tree)
  shared = msh2pts.uniform_samples(v, f, num_points=3000, seed=5, tree=tree)
  alone = msh2pts.uniform_samples(v, f, num_points=3000, seed=5, tree=_kernels.MeshSearchTree(v, f))
  np.testing.assert_array_equal(shared, alone)
  exact, _ = msh2df.mesh_to_distance_field(v, f, tree=tree, exact=True)
  fresh, _ = msh2df.mesh_to_distance_field(v, f, tree=_kernels.MeshSearchTree(v, f), exact=True)
  np.testing.assert_array_equal(exact, fresh)


def test_gaps_grid_spacing():
  _, w2g = msh2df.grid_geometry(msh2df.LDIF_BBOX, 0.044)
  h = msh2df.gaps_grid_spacing(w2g)
  assert h != 1.4 / 31 and abs(h / (1.4 / 31) - 1) < 1e-8  # GAPS measures a rounded 1/sqrt(3) probe vector


def test_is_manifold():
  v, f = geometry_meshes.sphere(1)
  assert msh2df.is_manifold(f) and msh2df.is_manifold(f[:, ::-1])
  assert not msh2df.is_manifold(geometry_meshes.soup(v, f)[1])  # every edge on a boundary
  assert not msh2df.is_manifold(geometry_meshes.sphere_with_hole(1)[1])
  assert not msh2df.is_manifold(np.concatenate([f, f + len(v)]))  # two components
  # A face against its neighbours: GAPS's reader flips it back when it comes after them (it is retried at
  # the end), but a first face wins and pushes its neighbours out.
  late = f.copy()
  late[-1] = late[-1, ::-1]
  assert msh2df.is_manifold(late)
  early = f.copy()
  early[0] = early[0, ::-1]
  assert not msh2df.is_manifold(early)
  assert not msh2df.is_manifold(np.concatenate([f, f[:1]]))  # edges with three faces
  assert msh2df.is_manifold(np.concatenate([f, [[0, 0, 1]]]))  # repeated vertices: skipped, as GAPS's readers
  assert not msh2df.is_manifold(f[:1])


def test_voxel_distance_transform():
  # One small triangle inside voxel (2, 3, 1): distances are h * |voxel offset|.
  tri = np.array([[[1.9, 3.1, 0.8], [2.2, 3.0, 1.1], [2.0, 2.8, 1.0]]])
  dist = msh2df.voxel_distance_transform(tri, (4, 5, 6), 0.1)
  kk, jj, ii = np.meshgrid(np.arange(4), np.arange(5), np.arange(6), indexing='ij')
  np.testing.assert_allclose(dist, 0.1 * np.sqrt((ii - 2) ** 2 + (jj - 3) ** 2 + (kk - 1) ** 2), rtol=1e-12)


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
  assert msh2df.main([str(tmp_path / 's.obj'), str(out), '-bbox', '-0.7', '-0.7', '-0.7', '0.7', '0.7', '0.7',
                      '-border', '0', '-spacing', '0.044', '-estimate_sign', '-exact']) == 0
  want_exact, _ = msh2df.mesh_to_distance_field(vo, fo, exact=True)
  np.testing.assert_array_equal(gaps_io.read_grd(out)[0], want_exact)
  # GAPS defaults: bbox = mesh box, border 3, spacing 0.01 -> resolution int(L/0.01 + 0.5) + 6 per axis.
  assert msh2df.main([str(tmp_path / 's.obj'), str(out), '-spacing', '0.1']) == 0
  values, _ = gaps_io.read_grd(out)
  assert values.shape == (16, 16, 16) and np.all(values >= 0)
  assert msh2df.main([str(tmp_path / 's.obj')]) == 1
  assert msh2df.main([str(tmp_path / 'missing.obj'), str(out)]) == 1


def test_bad_mesh_arrays_raise():
  v, f = geometry_meshes.box()
  with pytest.raises(ValueError, match='indices'):
    msh2df.mesh_to_distance_field(v, f + 100)
  with pytest.raises(ValueError, match='NaN'):
    msh2df.mesh_to_distance_field(np.where(np.arange(len(v))[:, None] == 0, np.nan, v), f)
  with pytest.raises(ValueError, match=r'\[F,3\]'):
    msh2df.mesh_to_distance_field(v, f[:, :2])

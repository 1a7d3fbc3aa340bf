"""The numba kernels of gaps_py._kernels against their numpy twins in gaps_py._reference."""

import numpy as np
import pytest

from gaps_py import _grid_kernels
from gaps_py import _kernels
from gaps_py import _reference
import geometry_meshes


def _random_soup(rng, count=150, scale=0.3):
  centers = rng.uniform(-0.5, 0.5, (count, 1, 3))
  tris = centers + rng.normal(scale=scale / 3, size=(count, 3, 3))
  return tris.reshape(-1, 3), np.arange(3 * count).reshape(-1, 3)


def test_closest_point_on_triangle_matches_twin(rng):
  tris = rng.normal(size=(3000, 3, 3))
  # Degenerate ones: collinear corners, two equal corners, all equal.
  tris[:50, 2] = tris[:50, 0] + 0.3 * (tris[:50, 1] - tris[:50, 0])
  tris[50:100, 1] = tris[50:100, 0]
  tris[100:120, 1:] = tris[100:120, :1]
  points = rng.normal(scale=1.5, size=(3000, 3))
  q, d2 = _kernels.closest_points_on_triangles(points, tris)
  q_ref, d2_ref = _reference.closest_points_on_triangles(points, tris)
  np.testing.assert_allclose(d2, d2_ref, rtol=1e-9, atol=1e-12)
  regular = slice(120, None)  # degenerate triangles may have several closest points
  np.testing.assert_allclose(q[regular], q_ref[regular], atol=1e-9)
  np.testing.assert_allclose(np.sum((points - q) ** 2, axis=1), d2, rtol=1e-9, atol=1e-12)


def test_bvh_build_matches_twin_and_is_consistent(rng):
  v, f = _random_soup(rng, 300)
  tris = v[f]
  lo, hi, cen = tris.min(axis=1), tris.max(axis=1), tris.mean(axis=1)
  got = _kernels.build_bvh(lo, hi, cen, 4)
  want = _reference.build_bvh(lo, hi, cen, 4)
  for a, b in zip(got, want):
    np.testing.assert_array_equal(a, b)
  node_lo, node_hi, left, right, start, count, order = got
  np.testing.assert_array_equal(np.sort(order), np.arange(len(f)))
  leaves = count > 0
  assert count.sum() == len(f) and count.max() <= 4
  covered = np.concatenate([np.arange(s, s + c) for s, c in zip(start[leaves], count[leaves])])
  np.testing.assert_array_equal(np.sort(covered), np.arange(len(f)))
  for node in np.flatnonzero(leaves):
    members = order[start[node]:start[node] + count[node]]
    assert np.all(lo[members] >= node_lo[node]) and np.all(hi[members] <= node_hi[node])
  for node in np.flatnonzero(~leaves):
    for child in (left[node], right[node]):
      assert child > node
      assert np.all(node_lo[child] >= node_lo[node]) and np.all(node_hi[child] <= node_hi[node])


def test_bvh_depth_matches_twin_and_deep_trees_work(rng):
  v, f = _random_soup(rng, 300)
  tree = _kernels.MeshSearchTree(v, f, leaf_size=1)
  assert _kernels.bvh_depth(tree.left, tree.right) == _reference.bvh_depth(tree.left, tree.right) >= 8
  # Triangles at exponentially growing distances: binned SAH peels off one triangle per level, giving a tree
  # far deeper than log2(F); queries must still be exact (traversal stacks are sized by the depth).
  x = 10.0 ** np.arange(300)
  zero, one = np.zeros(300), np.ones(300)
  tris = np.stack([np.stack([x, zero, zero], 1), np.stack([x, one, zero], 1), np.stack([x, zero, one], 1)], 1)
  deep = _kernels.MeshSearchTree(tris.reshape(-1, 3), np.arange(900).reshape(-1, 3), leaf_size=1)
  assert _kernels.bvh_depth(deep.left, deep.right) > 150
  points = np.stack([x[:12] + 0.25, np.full(12, 0.2), np.full(12, 0.3)], 1)  # x + 0.25 exact in float64
  np.testing.assert_allclose(deep.closest(points)[0], 0.25)
  t, _ = deep.first_hit(points, np.tile([-1.0, 0.0, 0.0], (12, 1)))
  np.testing.assert_allclose(t, 0.25)
  assert np.all(np.isfinite(deep.winding_numbers(points)))


def test_bvh_dipoles_match_twin(rng):
  v, f = _random_soup(rng, 200)
  tree = _kernels.MeshSearchTree(v, f)
  got = _kernels.bvh_dipoles(tree.tris, tree.left, tree.right, tree.start, tree.count, tree.node_lo,
                             tree.node_hi)
  want = _reference.bvh_dipoles(tree.tris, tree.left, tree.right, tree.start, tree.count, tree.node_lo,
                                tree.node_hi)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('leaf_size', [1, 4, 9])
def test_closest_query_matches_brute_force(rng, leaf_size):
  v, f = _random_soup(rng, 200)
  points = rng.uniform(-1.2, 1.2, (700, 3))
  tree = _kernels.MeshSearchTree(v, f, leaf_size=leaf_size)
  dist, face, q = tree.closest(points)
  d2_ref, _, _ = _reference.closest_points(points, v[f])
  np.testing.assert_allclose(dist ** 2, d2_ref, rtol=1e-9, atol=1e-14)
  # The reported face and point are consistent with the distance.
  _, d2_face = _reference.closest_points_on_triangles(points, v[f][face])
  np.testing.assert_allclose(d2_face, dist ** 2, rtol=1e-9, atol=1e-14)
  np.testing.assert_allclose(np.linalg.norm(points - q, axis=1), dist, rtol=1e-9, atol=1e-12)
  # Hints change nothing but speed, including bad ones.
  hints = rng.integers(-1, len(f), len(points))
  dist_h, _, _ = tree.closest(points, hint_faces=hints)
  np.testing.assert_allclose(dist_h, dist, rtol=1e-12)


def test_grid_closest_matches_twin():
  v, f = geometry_meshes.sphere(2)
  tree = _kernels.MeshSearchTree(v, f)
  origin, step, shape = np.array([-0.8, -0.7, -0.9]), np.array([0.21, 0.2, 0.19]), (9, 8, 7)
  dist, face = tree.distance_grid(origin, step, shape)
  dist_ref, _ = _reference.grid_closest(origin, step, shape, v[f])
  np.testing.assert_allclose(dist, dist_ref, rtol=1e-9, atol=1e-14)
  assert face.shape == shape and face.min() >= 0 and face.max() < len(f)



def _tie_sets(voxel, face):
  out = {}
  for vx, fc in zip(voxel.tolist(), face.tolist()):
    out.setdefault(vx, set()).add(fc)
  return out


@pytest.mark.parametrize('soup', [False, True])
def test_grid_closest_within_matches_twin(rng, soup):
  v, f = geometry_meshes.sphere(1)
  if soup:  # shared corners: a grid point nearest to a vertex has several faces at the same distance
    v, f = geometry_meshes.soup(v, f)
  tree = _kernels.MeshSearchTree(v, f)
  origin, step, shape = np.array([-0.75, -0.7, -0.8]), np.array([0.17, 0.2, 0.16]), (11, 8, 9)
  radii = rng.uniform(0.0, 0.6, shape)
  radii[rng.random(shape) < 0.2] = 0.0  # skipped points
  ties = rng.random(shape) < 0.7
  dist, face, (tv, tf, tp) = tree.grid_distances_within(origin, step, radii, ties=ties, tie_eps=1e-6)
  want, want_face, (wv, wf, wp) = _reference.grid_closest_within(origin, step, radii, ties, 1e-6, v[f])
  np.testing.assert_array_equal(np.isnan(dist), np.isnan(want))
  assert np.isfinite(dist).sum() > 100 and np.isnan(dist[radii > 0]).sum() > 20
  np.testing.assert_allclose(dist[np.isfinite(dist)], want[np.isfinite(want)], rtol=1e-12)
  np.testing.assert_array_equal(face == -1, np.isnan(dist))
  assert _tie_sets(tv, tf) == _tie_sets(wv, wf)
  # Each tie's closest point lies on its face at the voxel's distance (+ 1e-6).
  kk, jj, ii = np.unravel_index(tv, shape)
  pts = origin + np.stack([ii, jj, kk], -1) * step
  gap = np.linalg.norm(pts - tp, axis=1) - dist.ravel()[tv]
  assert np.all(gap > -1e-12) and np.all(gap < 1e-6)
  _, d2 = _reference.closest_points_on_triangles(tp, v[f][tf])
  assert np.all(d2 < 1e-24)
  if soup:
    assert max(len(s) for s in _tie_sets(tv, tf).values()) >= 3
  # Without ties: same distances, nothing listed.
  dist2, _, (tv2, _, _) = tree.grid_distances_within(origin, step, radii)
  np.testing.assert_array_equal(dist2, dist)
  assert len(tv2) == 0


def test_faces_within_matches_twin(rng):
  v, f = _random_soup(rng, 120)
  tree = _kernels.MeshSearchTree(v, f)
  points = rng.uniform(-0.8, 0.8, (150, 3))
  radii = rng.uniform(0.0, 0.4, 150)
  radii[:10] = 0.0
  offsets, face, closest = tree.faces_within(points, radii)
  w_off, w_face, w_closest = _reference.faces_within(points, radii, v[f])
  np.testing.assert_array_equal(offsets, w_off)
  assert offsets[-1] > 200
  for n in range(150):
    got = np.argsort(face[offsets[n]:offsets[n + 1]])
    np.testing.assert_array_equal(face[offsets[n]:offsets[n + 1]][got], w_face[w_off[n]:w_off[n + 1]])
    np.testing.assert_allclose(closest[offsets[n]:offsets[n + 1]][got], w_closest[w_off[n]:w_off[n + 1]],
                               atol=1e-12)
  with pytest.raises(ValueError, match='radii'):
    tree.faces_within(points, radii[:5])


def test_first_hit_matches_brute_force(rng):
  v, f = _random_soup(rng, 150)
  tree = _kernels.MeshSearchTree(v, f)
  origins = rng.uniform(-1, 1, (600, 3))
  directions = rng.normal(size=(600, 3))
  directions[:20] = [1.0, 0.0, 0.0]  # axis-parallel rays exercise the slab test's infinite inverses
  for tmin, tmax in [(0.0, np.inf), (1e-6, 0.3), (0.2, 0.5)]:
    t, face = tree.first_hit(origins, directions, tmin, tmax)
    t_ref, face_ref = _reference.first_hits(origins, directions, tmin, tmax, v[f])
    np.testing.assert_array_equal(np.isfinite(t), np.isfinite(t_ref))
    hit = np.isfinite(t)
    assert hit.sum() > 20
    np.testing.assert_allclose(t[hit], t_ref[hit], rtol=1e-9)
    np.testing.assert_array_equal(face[~hit], -1)
    assert np.all(t[hit] >= tmin) and np.all(t[hit] <= tmax)


def test_exact_solid_angles_match_twin(rng):
  v, f = _random_soup(rng, 80)
  points = rng.uniform(-1, 1, (200, 3))
  np.testing.assert_allclose(_kernels.triangle_solid_angles(points, v[f]),
                             _reference.winding_numbers(points, v[f]), rtol=1e-10, atol=1e-12)


def test_winding_numbers_approximate_exact_values(rng):
  v, f = geometry_meshes.sphere(3)
  v = v * [1.0, 0.7, 1.2]
  tree = _kernels.MeshSearchTree(v, f)
  points = rng.uniform(-0.8, 0.8, (800, 3))
  exact = _reference.winding_numbers(points, v[f])
  err2 = np.abs(tree.winding_numbers(points, beta=2.0) - exact)
  assert err2.max() < 0.06 and err2.mean() < 0.006
  np.testing.assert_allclose(tree.winding_numbers(points, beta=4.0), exact, atol=0.012)
  np.testing.assert_allclose(tree.winding_numbers(points, beta=1e9), exact, atol=1e-9)
  # A closed outward surface: 1 inside, 0 outside.
  inside = np.sum((points / [0.5, 0.35, 0.6]) ** 2, axis=1) < 0.9
  outside = np.sum((points / [0.5, 0.35, 0.6]) ** 2, axis=1) > 1.1
  assert np.all(np.abs(exact[inside] - 1) < 1e-9) and np.all(np.abs(exact[outside]) < 1e-9)


def test_swap_remove_matches_twin(rng):
  u = rng.random(300)
  u[:3] = [0.0, 0.999999999, 0.5]
  got = _kernels.swap_remove(1000, u)
  np.testing.assert_array_equal(got, _reference.swap_remove(1000, u))
  assert len(got) == 700 and len(np.unique(got)) == 700


def test_morton_order_is_a_permutation(rng):
  pts = rng.normal(size=(1000, 3))
  perm = _kernels.morton_order(pts)
  np.testing.assert_array_equal(np.sort(perm), np.arange(1000))
  assert len(_kernels.morton_order(np.zeros((0, 3)))) == 0


def test_search_tree_rejects_bad_input():
  v, f = geometry_meshes.box()
  with pytest.raises(ValueError, match='NaN'):
    _kernels.MeshSearchTree(np.where(np.arange(len(v))[:, None] == 0, np.nan, v), f)
  with pytest.raises(ValueError, match='out of range|must lie'):
    _kernels.MeshSearchTree(v, f + 100)
  with pytest.raises(ValueError, match='F >= 1'):
    _kernels.MeshSearchTree(v, np.zeros((0, 3), np.int64))
  tree = _kernels.MeshSearchTree(v, f)
  with pytest.raises(ValueError, match=r'\[N, 3\]'):
    tree.closest(np.zeros((4, 2)))
  with pytest.raises(ValueError, match='NaN'):
    tree.winding_numbers(np.full((1, 3), np.inf))


def test_search_tree_cache_and_grid_memo():
  v, f = geometry_meshes.sphere(1)
  tree = _kernels.search_tree(v, f)
  assert _kernels.search_tree(v.copy(), f.astype(np.int32)) is tree  # same content, other arrays
  assert _kernels.search_tree(v + 1e-9, f) is not tree
  args = (np.full(3, -0.6), np.full(3, 0.3), (5, 5, 5))
  d1, face1 = tree.distance_grid(*args)
  d2, _ = tree.distance_grid(*args)
  assert d1 is d2 and not d1.flags.writeable and not face1.flags.writeable
  fresh, _ = _kernels.MeshSearchTree(v, f).distance_grid(*args)
  np.testing.assert_array_equal(fresh, d1)


# ------------------------------------------------------------------------------------------------------------
# msh2df grid kernels (gaps_py._grid_kernels)
# ------------------------------------------------------------------------------------------------------------


def test_rasterize_triangles_matches_twin(rng):
  shape = np.array([9, 11, 10])
  tris = rng.uniform(-3.0, 13.0, (120, 3, 3))
  tris[:20] = rng.uniform(-0.9, 0.9, (20, 1, 3)) + rng.uniform(0, 9, (20, 1, 3)).round()  # near voxel centres
  tris[20:30, 2] = tris[20:30, 0] + 0.5 * (tris[20:30, 1] - tris[20:30, 0])  # collinear corners
  tris[30:40, 1:] = tris[30:40, :1]  # all corners equal
  tris[40:50, :, 2] = 4.2  # flat in z
  for tri in tris:  # one at a time: any single-voxel difference shows
    np.testing.assert_array_equal(_grid_kernels.rasterize_triangles(tri[None], shape),
                                  _reference.rasterize_triangles(tri[None], shape))
  both = _grid_kernels.rasterize_triangles(tris, shape)
  np.testing.assert_array_equal(both, _reference.rasterize_triangles(tris, shape))
  assert both.dtype == np.bool_ and both.shape == tuple(shape) and 50 < both.sum() < both.size
  far = tris[:5] + [1e3, 0, 0]  # nowhere near the grid (skipped without sweeping)
  assert not _grid_kernels.rasterize_triangles(far, shape).any()


def test_rasterize_triangle_by_hand():
  # Swept along x (ties between x and y extents go to x), spans down to the y edge: a full staircase.
  mask = _grid_kernels.rasterize_triangles(np.array([[[0, 0, 0], [4, 0, 0], [0, 4, 0]]], np.float64),
                                           np.array([1, 6, 6]))
  want = np.array([[1 if x + y <= 4 else 0 for x in range(6)] for y in range(6)], bool)
  np.testing.assert_array_equal(mask[0], want)
  # Corners round with C's (int)(g + 0.5): -0.9 goes to voxel 0 (floor rounding would drop it at -1).
  mask = _grid_kernels.rasterize_triangles(np.full((1, 3, 3), [-0.9, 2.2, 1.6]), np.array([4, 4, 4]))
  assert mask.sum() == 1 and mask[2, 2, 0]


@pytest.mark.parametrize('shape, density', [((7, 12, 9), 0.02), ((10, 10, 10), 0.2), ((5, 6, 8), 0.0005),
                                            ((16, 3, 4), 0.1)])
def test_squared_distance_transform_matches_exact_edt(rng, shape, density):
  marked = rng.random(shape) < density
  marked.ravel()[rng.integers(marked.size)] = True
  got = _grid_kernels.squared_distance_transform(marked)
  np.testing.assert_array_equal(got, _reference.squared_distance_transform(marked))
  assert np.all(got[marked] == 0) and np.all(got[~marked] >= 1)


def test_squared_distance_transform_of_nothing():
  got = _grid_kernels.squared_distance_transform(np.zeros((3, 5, 4), bool))
  np.testing.assert_array_equal(got, np.full((3, 5, 4), 3.0 * 36))


def test_refinement_radii_matches_twin_and_gaps_rule(rng):
  h, big = 0.05, 0.45
  g = h * np.sqrt(rng.integers(0, 120, (6, 7, 8)).astype(np.float64))
  g[0, 0, :4] = [9 * h, 0.0, 0.5 * h, 8.9 * h]
  got = _grid_kernels.refinement_radii(g, h, 9 * h)
  np.testing.assert_array_equal(got, _reference.refinement_radii(g, h, 9 * h))
  assert got[0, 0, 0] == 0.0  # a voxel exactly at the radius is not refined (GAPS: while r < R)
  np.testing.assert_allclose([got[0, 0, 1], got[0, 0, 2]], h * 1.25 ** 10, rtol=1e-12)  # from one spacing on
  np.testing.assert_allclose(got[0, 0, 3], 8.9 * h * 1.25, rtol=1e-12)
  assert np.all(got[g > 9 * h] == 0) and np.all(got[(g < 9 * h)] >= 9 * h)
  assert np.all(got[g < 9 * h] < 1.25 * 9 * h)
  np.testing.assert_array_equal(_grid_kernels.refinement_radii(g, h, big),
                                _reference.refinement_radii(g, h, big))


def test_smooth_band_matches_twin_and_is_asymmetric(rng):
  values = rng.uniform(-1.0, 1.0, (6, 7, 8))
  got = _grid_kernels.smooth_band(values, 0.3, 0.7)
  np.testing.assert_allclose(got, _reference.smooth_band(values, 0.3, 0.7), rtol=1e-12)
  band = (np.abs(values) >= 0.3) & (np.abs(values) <= 0.7)
  np.testing.assert_array_equal(got[~band], values[~band])
  assert np.all(got[band] != values[band])
  # On a ramp v = x the weights 2^-(dx+dy+dz) pull an interior voxel to x - 3/7 (weights 2 : 1 : 1/2 along x).
  ramp = np.broadcast_to(np.arange(5.0), (5, 5, 5)).copy()
  np.testing.assert_allclose(_grid_kernels.smooth_band(ramp, 1.5, 3.5)[2, 2, 2], 2 - 3 / 7, rtol=1e-12)


def test_fill_holes_matches_twin(rng):
  values = rng.uniform(-1.0, 1.0, (7, 8, 9))
  values[rng.random(values.shape) < 0.6] = 0.0
  want = _reference.fill_holes(values)
  got = _grid_kernels.fill_holes(values.copy())
  np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
  line = np.zeros((1, 1, 7))
  line[0, 0, [1, 4]] = [2.0, 5.0]
  np.testing.assert_allclose(_grid_kernels.fill_holes(line)[0, 0], [0, 2, 3, 4, 5, 0, 0])


def test_disk_distances_match_twin(rng):
  n = 500
  points = rng.normal(size=(n, 3))
  centers = rng.normal(size=(n, 3))
  normals = rng.normal(size=(n, 3))
  normals /= np.linalg.norm(normals, axis=1, keepdims=True)
  radii = rng.uniform(0, 0.5, n)
  points[:5] = centers[:5] + 0.3 * normals[:5]  # straight above the centre: the height
  got = _grid_kernels.disk_distances(points, centers, normals, radii)
  np.testing.assert_allclose(got, _reference.disk_distances(points, centers, normals, radii), rtol=1e-12)
  np.testing.assert_allclose(got[:5], 0.3, rtol=1e-12)
  # In the plane, beyond the rim: distance to the rim; radius 0: distance to the centre.
  assert _grid_kernels.disk_distances(np.array([[2.0, 0, 0]]), np.zeros((1, 3)), np.array([[0, 0, 1.0]]),
                                      np.array([0.5]))[0] == 1.5
  assert _grid_kernels.disk_distances(np.array([[3.0, 4, 0]]), np.zeros((1, 3)), np.array([[0, 0, 1.0]]),
                                      np.array([0.0]))[0] == 5.0


def test_offered_distances_are_reused_and_complete_the_exact_grid(rng):
  v, f = geometry_meshes.sphere(2)
  origin, step, shape = np.array([-0.8, -0.7, -0.9]), np.array([0.11, 0.1, 0.09]), (17, 15, 16)
  want, _ = _kernels.MeshSearchTree(v, f).distance_grid(origin, step, shape)
  tree = _kernels.MeshSearchTree(v, f)
  radii = np.where(rng.random(shape) < 0.6, 0.3, 0.0)
  known, face, _ = tree.grid_distances_within(origin, step, radii)
  assert np.isfinite(known).sum() > 1000 and np.isnan(known).sum() > 1000
  # Poison one offered value: reuse (not recomputation) shows through.
  flat = np.flatnonzero(np.isfinite(known))[5]
  poisoned = known.copy()
  poisoned.ravel()[flat] = 123.0
  tree.offer_distance_grid(origin, step, poisoned, face)
  got, got_face = tree.distance_grid(origin, step, shape)
  assert got.ravel()[flat] == 123.0
  keep = np.arange(got.size) != flat
  np.testing.assert_array_equal(got.ravel()[keep], want.ravel()[keep])
  twin, _ = _reference.grid_closest(origin, step, shape, v[f])
  np.testing.assert_allclose(got.ravel()[keep], twin.ravel()[keep], rtol=1e-9, atol=1e-14)
  assert got_face.min() >= 0
  # Once memoized, offers are ignored; bad offers are rejected.
  tree.offer_distance_grid(origin, step, known * 0, face)
  assert tree.distance_grid(origin, step, shape)[0] is got
  with pytest.raises(ValueError, match='face'):
    tree.offer_distance_grid(origin, step, known, face[:-1])


def test_gaps_face_insertion_matches_twin(rng):
  # Random small "meshes" over few vertices: lots of shared, reused and clashing edges.
  seen = set()
  for trial in range(20):
    v_count = 6 + trial
    faces = np.array([rng.choice(v_count, 3, replace=False) for _ in range(3 * v_count)], np.int64)
    tails = faces[:, [1, 2, 0]]
    lo, hi = np.minimum(faces, tails), np.maximum(faces, tails)
    keys, edges = np.unique(lo * v_count + hi, return_inverse=True)
    edges = edges.reshape(-1, 3).astype(np.int64)
    forward = np.ascontiguousarray(faces < tails)
    status, occupied = _kernels.gaps_face_insertion(edges, forward, len(keys))
    want_status, want_occupied = _reference.gaps_face_insertion(edges, forward, len(keys))
    np.testing.assert_array_equal(status, want_status)
    np.testing.assert_array_equal(occupied, want_occupied)
    seen.update(status.tolist())
  assert seen == {0, 1, 2}

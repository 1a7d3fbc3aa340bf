"""The numba kernels of gaps_py._kernels against their numpy twins in gaps_py._reference."""

import numpy as np
import pytest

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

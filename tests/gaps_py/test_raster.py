"""Numba kernels of gaps_py._raster against their plain-numpy twins, and the PCA eigen-solver against
numpy."""

import fractions
import math

import numpy as np
import pytest
import trimesh

from gaps_py import _raster
from gaps_py import scn2img


def _mesh(kind):
  if kind == 'sphere':
    m = trimesh.creation.icosphere(subdivisions=2, radius=0.45)
  elif kind == 'box':
    m = trimesh.creation.box(extents=(0.5, 0.7, 0.4))
    m.apply_transform(trimesh.transformations.euler_matrix(0.3, 0.5, 0.2))
  else:  # an open, twisted sheet: shows back faces
    u, v = np.meshgrid(np.linspace(-0.5, 0.5, 7), np.linspace(-0.4, 0.4, 6))
    vertices = np.stack([u, v, 0.3 * u * v], axis=-1).reshape(-1, 3)
    quads = [(r * 7 + c, r * 7 + c + 1, (r + 1) * 7 + c + 1, (r + 1) * 7 + c)
             for r in range(5) for c in range(6)]
    faces = [(a, b, c) for a, b, c, _ in quads] + [(a, c, d) for a, _, c, d in quads]
    return vertices, np.array(faces, np.int64)
  return np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64)


def _cameras():
  """Four cameras: three around the object, one so close that triangles cross the near plane."""
  rows = []
  for eye in ((0.0, 0.2, 1.6), (1.1, 0.7, -0.9), (-0.4, -1.3, 0.5)):
    eye = np.array(eye)
    towards = -eye / np.linalg.norm(eye)
    rows.append(np.concatenate([eye, towards, [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]))
  rows.append(np.array([0.05, 0.0, 0.3, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0, 0.9, 0.9, 0.0]))
  return np.array(rows)


def _render_both(vertices, faces, cameras, width, height):
  near, far = scn2img.clip_planes(vertices, faces)
  modelviews, projections = scn2img.gl_matrices(cameras, width, height, near, far)
  out = np.zeros((len(cameras), height, width), np.uint16)
  _raster.depth_views_kernel(vertices, faces, modelviews, projections, width, height, out)
  return out, _raster.depth_views_numpy(vertices, faces, modelviews, projections, width, height)


@pytest.mark.parametrize('kind', ['sphere', 'box', 'sheet'])
def test_depth_kernel_matches_numpy_twin(kind):
  vertices, faces = _mesh(kind)
  out, twin = _render_both(vertices, faces, _cameras(), 48, 40)
  assert (out > 0).sum() > 500
  np.testing.assert_array_equal(out, twin)


def _exact_fma32(a, b, c):
  """Correctly rounded float32 of a * b + c, via exact rational arithmetic."""
  exact = fractions.Fraction(float(a)) * fractions.Fraction(float(b)) + fractions.Fraction(float(c))
  lower = np.float32(float(exact))  # nearest double, then float32: may be off by one ulp; fix below
  candidates = [np.nextafter(lower, np.float32(-np.inf)), lower, np.nextafter(lower, np.float32(np.inf))]
  errors = [abs(fractions.Fraction(float(x)) - exact) for x in candidates]
  best = min(errors)
  ties = [x for x, e in zip(candidates, errors) if e == best]
  if len(ties) == 1:
    return ties[0]
  return next(x for x in ties if int(np.array(x).view(np.int32)) % 2 == 0)  # ties to even


def test_fma32_rounds_once():
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, 400)
  b = rng.uniform(-1, 1, 400) * 10.0 ** rng.integers(-12, 3, 400)
  c = rng.uniform(-1, 1, 400)
  # Sums that a float64 intermediate rounds onto a float32 midpoint (1 + 3 2^-24 and 1 + 5 2^-24) although
  # the exact value is 2^-70 below / above it: rounding that midpoint again (ties to even) goes the wrong way.
  below_one = 2.0 ** -24 * (1 - 2.0 ** -23)
  a = np.concatenate([a, [1 + 2.0 ** -23, -(1 + 2.0 ** -23)]]).astype(np.float32)
  b = np.concatenate([b, [below_one, below_one]]).astype(np.float32)
  c = np.concatenate([c, [1 + 2.0 ** -23, 1 + 3 * 2.0 ** -23]]).astype(np.float32)
  expected = np.array([_exact_fma32(x, y, z) for x, y, z in zip(a, b, c)], np.float32)
  np.testing.assert_array_equal(expected[-2:], np.float32([1 + 2.0 ** -23, 1 + 3 * 2.0 ** -23]))
  kernel = np.array([_raster.fma32(x, y, z) for x, y, z in zip(a, b, c)], np.float32)
  np.testing.assert_array_equal(kernel, expected)
  np.testing.assert_array_equal(_raster.fma32_numpy(a, b, c), expected)
  # The plain float64 route gets both constructed cases wrong.
  naive = (a.astype(np.float64) * b + c).astype(np.float32)
  assert np.all(naive[-2:] != expected[-2:])


def test_near_plane_clipping_keeps_the_visible_part():
  # A large floor under a camera standing on it: most triangles reach behind the camera.
  floor = np.array([[-5.0, -0.5, -5.0], [5.0, -0.5, -5.0], [5.0, -0.5, 5.0], [-5.0, -0.5, 5.0]])
  faces = np.array([[0, 2, 1], [0, 3, 2]])  # normal +y (seen from above)
  camera = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.0]])
  width = height = 32
  out, twin = _render_both(floor, faces, camera, width, height)
  np.testing.assert_array_equal(out, twin)
  # Rows below the horizon see the floor at planar depth 0.5 / (-y_ndc tan(yfov)), up to its far edge z=-5.
  y_ndc = 1.0 - 2.0 * (np.arange(height) + 0.5) / height
  expected_rows = np.where(y_ndc < 0, 0.5 / (-y_ndc * math.tan(0.5) + 1e-300), 0.0)
  expected_rows[expected_rows > 5.0] = 0.0  # beyond the floor's far edge
  got = out[0, :, width // 2].astype(np.float64) / 1000.0
  assert np.all((got > 0) == (expected_rows > 0))
  np.testing.assert_allclose(got[got > 0], expected_rows[got > 0], atol=1.5e-3)


@pytest.mark.parametrize('seed', [0, 1])
def test_fill_holes_kernel_matches_twin(seed):
  rng = np.random.default_rng(seed)
  grid = np.full((30, 26), _raster.UNKNOWN)
  yy, xx = np.mgrid[0:30, 0:26]
  blob = (yy - 14) ** 2 / 60.0 + (xx - 11) ** 2 / 40.0 < 1.0
  grid[blob] = 0.8 + 0.3 * rng.random(blob.sum())
  grid[3:6, 20:23] = 1.5
  filled = grid.copy()
  _raster.fill_holes_kernel(filled)
  # Same fill order; the twin sums the Gaussian weights in another order (last-bit differences only).
  np.testing.assert_allclose(filled, _raster.fill_holes_numpy(grid), rtol=1e-12, atol=0)
  assert np.all(filled != _raster.UNKNOWN)
  np.testing.assert_array_equal(filled[blob], grid[blob])


def _synthetic_depth_png(seed, width=40, height=36):
  """Two overlapping bumps at different depths (silhouettes and shadows), as uint16 PNG values."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
  depth = np.zeros((height, width))
  near_blob = (xx - 14) ** 2 + (yy - 15) ** 2 < 100
  far_blob = (xx - 25) ** 2 / 1.5 + (yy - 20) ** 2 < 120
  depth[far_blob] = 1.3 + 0.004 * (xx[far_blob] - 25) + 0.002 * yy[far_blob]
  depth[near_blob] = 0.9 - 0.002 * np.sqrt(100 - (xx[near_blob] - 14) ** 2 - (yy[near_blob] - 15) ** 2)
  depth[(xx == 30) & (yy > 5)] = 1.0  # a one-pixel-wide line: too few neighbours except along it
  depth += np.where(depth > 0, rng.uniform(0, 0.002, depth.shape), 0.0)
  return np.floor(depth * 1000.0).astype(np.uint16)


@pytest.mark.parametrize('seed', [0, 3])
def test_boundary_kernel_matches_twin(seed):
  png = _synthetic_depth_png(seed)
  depth = np.where(png[::-1] == 0, _raster.UNKNOWN, png[::-1] * 0.001)
  filled = depth.copy()
  _raster.fill_holes_kernel(filled)
  labels = _raster.boundary_kernel(depth, filled, 0.1)
  np.testing.assert_array_equal(labels, _raster.boundary_numpy(depth, filled, 0.1))
  assert np.any(labels == _raster.SILHOUETTE_BOUNDARY) and np.any(labels == _raster.SHADOW_BOUNDARY)


@pytest.mark.parametrize('pixel_radius', [1, 2])
def test_normals_kernel_matches_numpy_twin(pixel_radius):
  png = _synthetic_depth_png(7)
  height, width = png.shape
  focal = 0.5 * width / math.tan(0.5)
  args = (focal, focal, width / 2, height / 2, 0.1, pixel_radius, 2, 0.1, 4000.0)
  out = np.zeros((4, height, width), np.uint16)
  _raster.normals_kernel(png, *args, pixel_radius != 1, out)
  twin = _raster.normals_numpy(png, *args)
  np.testing.assert_array_equal(out > 0, twin > 0)
  assert (out[2] > 0).sum() > 300
  diff = np.abs(out.astype(np.int64) - twin).max(axis=0)
  # The one-pixel-wide vertical line fits planes through the camera centre: n . p = 0 and the orientation
  # test is decided by rounding, so there the two may disagree in sign only.
  flipped = diff > 2
  assert np.all(np.nonzero(flipped)[1] == 30)
  np.testing.assert_allclose(out[:3, flipped].astype(np.int64) + twin[:3, flipped], 65536, atol=3)
  assert np.abs(out[3].astype(np.int64) - twin[3]).max() <= 1


def test_normals_fast_path_equals_search():
  png = _synthetic_depth_png(11)
  height, width = png.shape
  args = (180.0, 180.0, width / 2, height / 2, 0.1, 1, 2, 0.1, 4000.0)
  fast = np.zeros((4, height, width), np.uint16)
  search = np.zeros((4, height, width), np.uint16)
  _raster.normals_kernel(png, *args, False, fast)
  _raster.normals_kernel(png, *args, True, search)
  np.testing.assert_array_equal(fast, search)


def test_smallest_axis_matches_eigh():
  rng = np.random.default_rng(5)
  matrix, values, vectors = np.empty((3, 3)), np.empty(3), np.empty((3, 3))
  cases = [rng.normal(size=(5, 3)) * [1.0, 0.5, 0.01] for _ in range(200)]
  cases += [np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float)]            # exactly planar
  cases += [np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], float) + [0, 0, 1e-9 * k] for k in range(2)]
  for points in cases:
    centred = points - points.mean(axis=0)
    cov = centred.T @ centred / len(points)
    upper = (cov[0, 0], cov[0, 1], cov[0, 2], cov[1, 1], cov[1, 2], cov[2, 2])
    lmax, nx, ny, nz = _raster._smallest_axis(*upper, matrix, values, vectors)
    w, v = np.linalg.eigh(cov)
    assert lmax == pytest.approx(w[2], rel=1e-9, abs=1e-15)
    assert np.linalg.norm([nx, ny, nz]) == pytest.approx(1.0)
    if w[1] - w[0] > 1e-6 * (w[2] - w[0]):  # the smallest axis is well defined
      assert abs(np.dot([nx, ny, nz], v[:, 0])) == pytest.approx(1.0, abs=1e-9)
    else:
      assert abs(np.dot([nx, ny, nz], v[:, 2])) < 1e-6  # any axis orthogonal to the dominant one

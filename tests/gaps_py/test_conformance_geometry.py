"""Conformance of gaps_py's geometry steps with real GAPS outputs for LDIF's bob and blub.

Reads ../shared/reference (meshes/<name>.ply and gaps/<name>/{orig_to_gaps.txt, coarse_grid.grd,
nss_points.sdf, uniform_points.sdf}). As in the pipeline, msh2df/msh2pts run on the normalized mesh: the mesh
with GAPS's matrix applied and its vertices rounded to 6 significant digits (GAPS re-reads its own %g OBJ).
GAPS's sampling is random (clock-seeded), so samples are compared as distributions and by evaluating our
signed distance at GAPS's own sample positions.
"""

import numpy as np
import pytest
from scipy import stats

from gaps_py import _kernels
from gaps_py import io as gaps_io
from gaps_py import msh2df
from gaps_py import msh2msh
from gaps_py import msh2pts

MESHES = ['bob', 'blub']
_CACHE = {}


@pytest.fixture
def case(reference_dir, request):
  """Per mesh (cached across tests): inputs, GAPS outputs and our outputs."""
  name = request.param
  if name not in _CACHE:
    ref = reference_dir / 'gaps' / name
    vertices, faces = gaps_io.load_mesh(reference_dir / 'meshes' / f'{name}.ply')
    gaps_matrix = gaps_io.read_matrix(ref / 'orig_to_gaps.txt')
    normalized = msh2msh.round_like_gaps_obj(msh2msh.transform_vertices(vertices, gaps_matrix))
    tree = _kernels.MeshSearchTree(normalized, faces)
    grid, world2grid = msh2df.mesh_to_distance_field(normalized, faces, tree=tree)
    exact_grid, _ = msh2df.mesh_to_distance_field(normalized, faces, tree=tree, exact=True)
    _CACHE[name] = dict(
        vertices=vertices, faces=faces, normalized=normalized, tree=tree, gaps_matrix=gaps_matrix,
        gaps_grid=gaps_io.read_grd(ref / 'coarse_grid.grd'), grid=(grid, world2grid), exact_grid=exact_grid,
        gaps_nss=gaps_io.read_sdf(ref / 'nss_points.sdf'),
        gaps_uniform=gaps_io.read_sdf(ref / 'uniform_points.sdf'),
        nss=msh2pts.near_surface_samples(normalized, faces, seed=11, tree=tree),
        uniform=msh2pts.uniform_samples(normalized, faces, seed=12, tree=tree))
  return _CACHE[name]


@pytest.mark.parametrize('case', MESHES, indirect=True)
def test_normalization_matrix(case):
  ours = msh2msh.normalization_matrix(case['vertices'], case['faces'], scale=0.25)
  gaps = case['gaps_matrix']
  np.testing.assert_allclose(ours, gaps, rtol=1e-4, atol=1e-4 * np.abs(gaps).max())
  assert np.array_equal(ours[:3, :3], np.diag(np.diag(ours[:3, :3])))  # no rotation, like GAPS


@pytest.mark.parametrize('case', MESHES, indirect=True)
def test_coarse_grid(case):
  """The issue's criterion, literally: >= 99% of ALL cells within h/2 of GAPS's value, >= 99% same sign."""
  (ours, w2g), (gaps, gaps_w2g) = case['grid'], case['gaps_grid']
  assert ours.shape == gaps.shape == (32, 32, 32)
  np.testing.assert_array_equal(w2g, gaps_w2g)  # identical grid geometry (float32 header bytes)
  spacing = 1.4 / 31
  diff = np.abs(ours.astype(np.float64) - gaps)
  within = np.mean(diff <= spacing / 2)
  assert within >= 0.99, within
  sign_agreement = np.mean((ours < 0) == (gaps < 0))
  assert sign_agreement >= 0.99, sign_agreement
  # The port reproduces GAPS's stages: outside (voxel distance transform, refinement radius, smoothing band)
  # to float32 rounding; inside (the non-manifold pass from surface samples) up to the nearest-sample ties
  # GAPS's kd-tree breaks its own way. The largest differences are the ~0.1% of cells just outside the surface
  # that GAPS's flood fill calls inside (we sign by winding number).
  outside = (ours > 0) & (gaps > 0)
  assert diff[outside].max() <= 1e-5, diff[outside].max()
  inside = (ours < 0) & (gaps < 0)
  assert diff[inside].max() <= 0.1 * spacing, diff[inside].max()
  assert np.mean(diff <= 1e-5) >= 0.99, np.mean(diff <= 1e-5)
  assert diff.max() <= spacing / 2 and diff.mean() <= 1e-4, (diff.max(), diff.mean())


@pytest.mark.parametrize('case', MESHES, indirect=True)
def test_coarse_grid_exact(case):
  ours, gaps = case['exact_grid'], case['gaps_grid'][0]
  sign_agreement = np.mean((ours < 0) == (gaps < 0))
  assert sign_agreement >= 0.99, sign_agreement
  spacing = 1.4 / 31
  diff = np.abs(ours - gaps)
  # GAPS computes exact distances (kd-tree refinement) up to ~6 spacings from the surface; there the exact
  # grid agrees within half a spacing (GAPS's interior pass for non-manifold input is off by up to ~0.027
  # right at the surface). Farther out GAPS keeps a voxel distance transform blended by a smoothing band
  # (error up to ~0.07 against the exact distance), so only ~79% of all cells are within h/2.
  band = np.abs(gaps) < 6 * spacing
  assert np.mean(diff[band] <= spacing / 2) >= 0.99, np.mean(diff[band] <= spacing / 2)
  assert diff.max() <= 1.75 * spacing, diff.max()
  assert np.mean(diff) <= spacing / 2
  assert np.mean(diff <= spacing / 2) < 0.9  # the default (GAPS-faithful) grid is what matches GAPS


@pytest.mark.parametrize('case', MESHES, indirect=True)
def test_near_surface_samples(case):
  ours, gaps, tree = case['nss'], case['gaps_nss'], case['tree']
  assert ours.shape == gaps.shape == (100000, 4)
  assert set(np.unique(ours[:, 3])) == {-1.0, 1.0}
  assert abs(np.mean(ours[:, 3] < 0) - np.mean(gaps[:, 3] < 0)) <= 0.005
  d_ours = tree.closest(ours[:, :3])[0]
  d_gaps = tree.closest(gaps[:, :3])[0]
  ks = stats.ks_2samp(d_ours, d_gaps).statistic
  assert ks <= 0.05, ks
  assert d_ours.max() <= 0.04 + 1e-6
  # Our signed distance at GAPS's positions has GAPS's label away from the surface.
  sd = msh2df.signed_distance(None, None, gaps[:, :3], tree=tree)
  far = np.abs(sd) > 2e-3
  agreement = np.mean((sd[far] < 0) == (gaps[far, 3] < 0))
  assert agreement >= 0.995, agreement
  # And our own labels agree with our signed distance the same way.
  sd_ours = msh2df.signed_distance(None, None, ours[:, :3], tree=tree)
  far = np.abs(sd_ours) > 2e-3
  assert np.mean((sd_ours[far] < 0) == (ours[far, 3] < 0)) >= 0.995


@pytest.mark.parametrize('case', MESHES, indirect=True)
def test_uniform_samples(case):
  ours, gaps, tree = case['uniform'], case['gaps_uniform'], case['tree']
  assert ours.shape == gaps.shape == (100000, 4)
  assert np.all(np.abs(ours[:, :3]) <= 0.7)
  assert abs(np.mean(ours[:, 3] < 0) - np.mean(gaps[:, 3] < 0)) <= 0.005
  sd = msh2df.signed_distance(None, None, gaps[:, :3], tree=tree)
  far = np.abs(sd) > 0.012
  agreement = np.mean((sd[far] < 0) == (gaps[far, 3] < 0))
  assert agreement >= 0.995, agreement
  # GAPS's values approximate the distance (trilinear grid SDF); ours are exact.
  assert np.mean(np.abs(np.abs(gaps[:, 3]) - np.abs(sd))) < 0.005

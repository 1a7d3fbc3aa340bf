"""Signed distance grids from meshes: port of GAPS msh2df as LDIF calls it (step 2 of process_mesh_local.sh).

    python -m gaps_py.msh2df mesh.obj coarse_grid.grd -bbox -0.7 -0.7 -0.7 0.7 0.7 0.7 -border 0 \
        -spacing 0.044 -estimate_sign -v

Grid geometry is exactly GAPS's (R3Grid(bbox, spacing, min_res 5, max_res 512, border)): resolution per axis
int(L/spacing + 0.5) of the border-inflated box, samples at cell corners, world2grid = T((N-1)/2) . S(s) .
T(-box centre) with one scale s = min over axes of (N-1)/L. For LDIF's flags: 32^3 and g = (31/1.4) p + 15.5.

Values are GAPS's by default (what the original LDIF trained on), stage by stage (see
`mesh_to_distance_field`): triangles rasterized into the grid with GAPS's integer rasterizer, the exact
Euclidean distance transform to the nearest touched voxel (x spacing), exact point-triangle distances (BVH,
`gaps_py._kernels`) for voxels within GAPS's refinement radius (9 spacings), the sign, for non-manifold input
(e.g. triangle soups such as LDIF's bob and blub) GAPS's rebuild of interior distances from surface samples,
and GAPS's asymmetric smoothing of the band where exact and voxel distances meet. On LDIF's bob and blub this
matches GAPS's coarse_grid.grd to float32 rounding outside the surface and within ~0.003 inside (all cells
within half a spacing). `exact=True` gives exact distances everywhere instead (GAPS is off by up to ~0.07,
about 1.5 spacings, far from the surface).

The one deliberate difference is the sign (`estimate_sign`): it comes from generalized winding numbers w
(Jacobson et al. 2013): inside where |w| > 0.5. That is exact for closed surfaces, needs no welded topology
(triangle soups work), degrades gracefully at holes (w ~ 1 - hole solid angle / 4 pi inside), and ignores
global orientation; it assumes consistently oriented faces. GAPS instead flood-fills the outside from the grid
border; both agree on 99.9% of LDIF's coarse-grid cells (GAPS labels a few cells just outside the surface as
inside). Positive outside, negative inside, no truncation (as GAPS's default).
"""

import sys
import time

import numpy as np
from scipy import sparse
from scipy import spatial
from scipy.sparse import csgraph

from gaps_py import _cli
from gaps_py import _grid_kernels
from gaps_py import _kernels
from gaps_py import io as gaps_io
from ldif.util import log

LDIF_BBOX = (-0.7, -0.7, -0.7, 0.7, 0.7, 0.7)
WINDING_NUMBER_THRESHOLD = 0.5
_EPSILON = 1e-6  # GAPS RN_EPSILON
REFINEMENT_RADIUS = 9  # GAPS msh2df's default refinement_radius, in grid spacings
SMOOTHING_HALF_WIDTH = 2  # the smoothing band is refinement_radius -/+ this, in grid spacings
_SURFACE_SAMPLE_NEIGHBORS = 6  # msh2df CreatePoints: a sample's disk radius comes from its 6th neighbour
_SAMPLE_RADIUS_SEARCH = 3  # ... searched within this many grid spacings
_ZERO_PLACEHOLDER = 0.000123456  # msh2df keeps exact zeros apart from misses with this value
_SCALE_PROBE = 0.57735027  # R3Affine::ScaleFactor measures a transformed (0.57735027,) * 3 vector


def grid_geometry(bbox, spacing, border=0, min_resolution=5, max_resolution=512):
  """The grid GAPS's R3Grid(bbox, spacing, min_resolution, max_resolution, border) lays over a box.

  Args:
    bbox: (x0, y0, z0, x1, y1, z1) world box.
    spacing: target spacing (the real spacing is L / (N - 1)).
    border: cells added on each side (truncated to an int, as GAPS's int parameter).
    min_resolution, max_resolution: GAPS's clamps on L / spacing.
  Returns:
    (shape (Z, Y, X) tuple of ints, world2grid float64 [4,4]).
  Raises:
    ValueError: for an empty box or a non-positive spacing.
  """
  box = np.asarray(bbox, np.float64).reshape(2, 3).copy()
  spacing = float(spacing)
  if not np.all(np.isfinite(box)) or np.any(box[1] < box[0]):
    raise ValueError(f'bad bounding box {np.asarray(bbox).tolist()}')
  if not spacing > 0:
    raise ValueError(f'grid spacing must be positive, got {spacing}')
  border = int(border)
  if border > 0:
    box[0] -= spacing * border
    box[1] += spacing * border
  for a in range(3):
    if box[0, a] == box[1, a]:
      box[0, a] -= _EPSILON
      box[1, a] += _EPSILON
  lengths = box[1] - box[0]
  if max_resolution > 0:
    for a in range(3):
      if lengths[a] / spacing > max_resolution:
        spacing = lengths[a] / max_resolution
  if min_resolution > 0:
    for a in range(3):
      if lengths[a] / spacing < min_resolution:
        spacing = lengths[a] / min_resolution
  res = [int(lengths[a] / spacing + 0.5) for a in range(3)]
  scale = min((res[a] - 1) / lengths[a] if lengths[a] > 0 else np.inf for a in range(3))
  if not np.isfinite(scale) or scale <= 0:
    scale = 1.0
  center = 0.5 * (box[0] + box[1])
  world2grid = np.eye(4)
  world2grid[:3, :3] *= scale
  world2grid[:3, 3] = 0.5 * (np.array(res, np.float64) - 1) - scale * center
  return (res[2], res[1], res[0]), world2grid


def grid_points_frame(world2grid):
  """(origin float64 [3], step float64 [3]) with world(i, j, k) = origin + (i, j, k) * step.

  Raises: ValueError if world2grid is not an axis-aligned scale + translation (as all GAPS grids LDIF uses).
  """
  m = np.asarray(world2grid, np.float64)
  if np.any(m[:3, :3] != np.diag(np.diag(m[:3, :3]))) or np.any(np.diag(m[:3, :3]) == 0) or \
      np.any(m[3] != [0, 0, 0, 1]):
    raise ValueError(f'world2grid must be an axis-aligned scale and translation, got {m.tolist()}')
  step = 1.0 / np.diag(m[:3, :3])
  return -m[:3, 3] * step, step


def inside_mask(tree, points):
  """bool [N]: points inside the mesh of a `_kernels.MeshSearchTree`, by generalized winding number."""
  return np.abs(tree.winding_numbers(points)) > WINDING_NUMBER_THRESHOLD


def signed_distance(vertices, faces, points, *, tree=None):
  """Exact signed distance from points to a mesh, negative inside (inside = |winding number| > 0.5).

  Args:
    vertices: float [V,3]; faces: int [F,3] (any frame; soups and meshes with holes are fine).
    points: float [N,3] in the same frame.
    tree: optional prebuilt `_kernels.MeshSearchTree` for these vertices/faces (speed only; vertices and faces
      are then not used and may be None).
  Returns:
    float64 [N].
  Raises:
    ValueError: for bad shapes, non-finite input or out-of-range face indices.
  """
  if tree is None:
    tree = _kernels.search_tree(vertices, faces)
  dist, _, _ = tree.closest(points)
  return np.where(inside_mask(tree, points), -dist, dist)


def gaps_grid_spacing(world2grid):
  """GAPS's GridToWorldScaleFactor of a grid: float, the world length of one grid step (~1.4/31 for LDIF).

  R3Affine::ScaleFactor is the length of the image of the vector (0.57735027,) * 3, which differs from the
  matrix's scale by ~1e-9 relative; msh2df's refinement radius and smoothing band use this value.
  """
  m = np.asarray(world2grid, np.float64)[:3, :3]
  v = m @ np.full(3, _SCALE_PROBE)
  scale = float(np.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]))
  return 1.0 / scale if scale != 0 else 1.0


def is_manifold(faces):
  """GAPS msh2df's IsManifold, on the mesh as GAPS's readers build it: no boundary edge, one component.

  GAPS never welds: edges join faces through shared vertex indices, and an edge side holds one face. A face
  that finds one of its sides taken is retried at the end as given, then flipped, and else gets its own
  vertices (`_kernels.gaps_face_insertion`). The mesh is manifold when no face is detached, every edge has
  faces on both sides, and the faces are connected through edges. So a closed mesh with a few inconsistently
  oriented faces can still pass (they get flipped), while triangle soups (LDIF's bob, blub), holes, edges with
  three faces and several components fail.
  Args: faces int [F,3] (faces with repeated vertices are ignored, as GAPS's readers skip them).
  Returns: bool.
  """
  f = np.asarray(faces, np.int64)
  if f.ndim != 2 or f.shape[1] != 3:
    return False
  f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]
  if f.shape[0] == 0:
    return False
  heads, tails = f, f[:, [1, 2, 0]]
  lo, hi = np.minimum(heads, tails), np.maximum(heads, tails)
  keys, edge_ids = np.unique(lo * (int(f.max()) + 1) + hi, return_inverse=True)
  edge_ids = edge_ids.reshape(-1, 3).astype(np.int64)
  status, occupied = _kernels.gaps_face_insertion(edge_ids, np.ascontiguousarray(heads < tails), len(keys))
  if np.any(status == 2) or not np.all(occupied):
    return False
  # Every edge now has exactly two faces: join them and count components.
  order = np.argsort(edge_ids.ravel(), kind='stable')
  face_of_corner = order // 3
  pairs = face_of_corner.reshape(-1, 2)
  adjacency = sparse.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])),
                                shape=(f.shape[0], f.shape[0]))
  count, _ = csgraph.connected_components(adjacency, directed=False)
  return count == 1


def _grid_world_points(origin, step, shape):
  kk, jj, ii = np.meshgrid(*[np.arange(n) for n in shape], indexing='ij')
  return np.stack([origin[0] + ii * step[0], origin[1] + jj * step[1], origin[2] + kk * step[2]], -1)


def voxel_distance_transform(grid_tris, shape, spacing):
  """GAPS msh2df EstimateDistanceUsingGrid: distance from each grid point to the nearest rasterized voxel.

  Args:
    grid_tris: float64 [F,3,3] triangle corners in grid coordinates (x, y, z index units).
    shape: (Z, Y, X); spacing: world length of a grid step (`gaps_grid_spacing`).
  Returns:
    float64 [Z,Y,X] unsigned distances in world units (multiples of spacing times sqrt of integers).
  """
  marked = _grid_kernels.rasterize_triangles(np.ascontiguousarray(grid_tris, np.float64),
                                             np.asarray(shape, np.int64))
  return np.sqrt(_grid_kernels.squared_distance_transform(marked)) * spacing


def _surface_samples(values, refined, ties, tree, origin, step, max_distance):
  """msh2df CreatePoints: surface samples seen from the voxels with 0 <= value <= max_distance.

  Each such voxel contributes the closest point of every face nearer than value + 1e-6 (GAPS FindAll). For
  voxels whose value is an exact distance these come from the refinement traversal (`ties`), for the others
  (kept voxel distances) from a separate search.
  Returns: (points float64 [M,3], face int64 [M] original index).
  """
  band = (values >= 0) & (values <= max_distance)
  tie_voxel, tie_face, tie_point = ties
  keep = band.ravel()[tie_voxel]
  pts, fcs = [tie_point[keep]], [tie_face[keep]]
  rest = band & np.isnan(refined)
  if rest.any():
    grid_points = _grid_world_points(origin, step, values.shape)
    _, face, closest = tree.faces_within(grid_points[rest], values[rest] + _EPSILON)
    pts.append(closest)
    fcs.append(face)
  return np.concatenate(pts), np.concatenate(fcs)


def _interior_from_surface_samples(values, refined, ties, tree, tris, origin, step, spacing,
                                   refinement_radius, grid_diagonal):
  """msh2df's pass for non-manifold input (after the sign), in place on values float64 [Z,Y,X].

  1. Interior voxels (< 0) get minus the grid distance to the nearest positive voxel.
  2. Surface samples (`_surface_samples`, up to refinement_radius * h), each a disk in its face's plane of
     radius min(h/2, half the distance to its 6th nearest sample (itself and duplicates included) within 3 h,
     or to the farthest one there).
  3. Interior voxels with |d| <= min(refinement_radius * h, grid box diagonal) take minus the distance to the
     disk of the nearest sample within |d| + h; voxels with none are filled by `fill_holes`, zeros kept.
  Args: refined float64 [Z,Y,X] exact distances (NaN where the voxel distance was kept); ties as returned by
    `MeshSearchTree.grid_distances_within`; tris float64 [F,3,3] the mesh's triangles.
  """
  h = spacing
  inside = values < 0
  if inside.any():
    sq = _grid_kernels.squared_distance_transform(values > 0)
    values[inside] = -np.sqrt(sq[inside]) * h
  limit = min(refinement_radius * h, grid_diagonal)
  targets = inside & (values >= -limit)
  if not targets.any():
    return values
  samples, face = _surface_samples(values, refined, ties, tree, origin, step, max(refinement_radius * h, h))
  if not len(samples):
    return values  # GAPS skips the refinement (and the hole filling) without samples
  kd = spatial.cKDTree(samples)
  q = _grid_world_points(origin, step, values.shape)[targets]
  dq, nearest = kd.query(q, k=1)
  found = dq <= -values[targets] + h
  # Disk radii only for the samples that are used (a radius depends only on the sample's position).
  used, where = np.unique(nearest[found], return_inverse=True)
  k = min(_SURFACE_SAMPLE_NEIGHBORS, len(samples))
  near_d, _ = kd.query(samples[used], k=k, distance_upper_bound=_SAMPLE_RADIUS_SEARCH * h * (1 + 1e-12))
  near_d = near_d.reshape(len(used), k)
  farthest = np.where(np.isfinite(near_d), near_d, -np.inf).max(axis=1)  # itself, at 0, is always found
  radii = np.minimum(0.5 * h, 0.5 * farthest)
  t = tris[face[used]]
  normals = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
  norm = np.linalg.norm(normals, axis=1, keepdims=True)
  normals = np.divide(normals, norm, out=np.zeros_like(normals), where=norm > 0)
  disk = np.zeros(len(q))
  disk[found] = _grid_kernels.disk_distances(q[found], samples[used][where], normals[where], radii[where])
  # As GAPS: genuine zeros become a tiny placeholder (which also anchors the interpolation), misses become
  # zeros and are interpolated along z, y, x, then the placeholder goes back to zero.
  values[values == 0] = _ZERO_PLACEHOLDER
  values[targets] = np.where(found, -disk, 0.0)
  _grid_kernels.fill_holes(values)
  values[values == _ZERO_PLACEHOLDER] = 0.0
  return values


def mesh_to_distance_field(vertices, faces, *, bbox=LDIF_BBOX, spacing=0.044, border=0, estimate_sign=True,
                           tree=None, exact=False):
  """Signed distance grid of a mesh: port of GAPS msh2df (`-bbox -spacing -border -estimate_sign`).

  By default (exact=False) the values are GAPS's, stage by stage:
    1. triangles rasterized into the grid, distance to the nearest touched voxel (`voxel_distance_transform`);
    2. voxels within R = min(9 h, mesh box diagonal) of a touched voxel replaced by the exact distance when
       GAPS's growing kd-tree search finds the surface (h = `gaps_grid_spacing`);
    3. sign (estimate_sign): negative inside, by generalized winding number (see the module doc);
    4. non-manifold meshes only (`is_manifold`; e.g. triangle soups): interior distances rebuilt from surface
       samples (`_interior_from_surface_samples`);
    5. voxels with |d| in [7 h, 11 h] smoothed with GAPS's asymmetric 3x3x3 weights 2^-(dx+dy+dz).
  So values are exact near the surface (outside, and inside manifold meshes), voxel-accurate beyond ~9 h
  (error up to ~0.07 for LDIF's grid), and within ~h/2 of the exact distance inside soups near the surface.
  exact=True instead gives the exact signed distance at every grid point (same sign).

  Args:
    vertices: float [V,3] (gaps frame in LDIF); faces: int [F,3].
    bbox: (x0, y0, z0, x1, y1, z1), or None for the box of all vertices, used or not (GAPS's default,
      R3Mesh::BBox).
    spacing: target spacing (LDIF: 0.044 -> 32^3, real spacing 1.4/31).
    border: extra cells on each side (LDIF: 0).
    estimate_sign: negate values inside (else unsigned distances, and no non-manifold pass).
    tree: optional prebuilt `_kernels.MeshSearchTree` of the mesh (speed only).
    exact: exact distances everywhere instead of GAPS's approximations.
  Returns:
    (values float32 [Z,Y,X], world2grid float32 [4,4]); values[k, j, i] is the signed distance at
    inverse(world2grid) . (i, j, k, 1), positive outside, negative inside. Layout as `gaps_py.io.read_grd`.
  Raises:
    ValueError: for bad mesh arrays, an empty box or a non-positive spacing.
  """
  v = np.asarray(vertices, np.float64)
  f = np.asarray(faces)
  if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
    raise ValueError(f'expected vertices [V,3] and faces [F,3] with F >= 1, got {v.shape} and {f.shape}')
  if not np.issubdtype(f.dtype, np.integer) or f.min() < 0 or f.max() >= len(v):
    raise ValueError(f'faces must be integer indices in [0, {len(v)})')
  if not np.all(np.isfinite(v)):
    raise ValueError('vertices contain NaN or inf')
  f = f.astype(np.int64)
  if tree is None:
    tree = _kernels.search_tree(v, f)
  if bbox is None:
    bbox = np.concatenate([v.min(axis=0), v.max(axis=0)])
  shape, world2grid = grid_geometry(bbox, spacing, border)
  origin, step = grid_points_frame(world2grid)
  inside = np.zeros(shape, np.bool_)
  if estimate_sign:
    inside = inside_mask(tree, _grid_world_points(origin, step, shape).reshape(-1, 3)).reshape(shape)
  if exact:
    dist, _ = tree.distance_grid(origin, step, shape)
    return np.where(inside, -dist, dist).astype(np.float32), world2grid.astype(np.float32)

  h = gaps_grid_spacing(world2grid)
  tris = v[f]
  grid_dist = voxel_distance_transform(tris * np.diag(world2grid)[:3] + world2grid[:3, 3], shape, h)
  diagonal = float(np.linalg.norm(v.max(axis=0) - v.min(axis=0)))
  radii = _grid_kernels.refinement_radii(grid_dist, h, min(REFINEMENT_RADIUS * h, diagonal))
  rebuild_interior = estimate_sign and not is_manifold(f)
  if rebuild_interior:
    # The interior pass overwrites every negative value, so skip exact distances there (except right at the
    # surface, where an exact zero would survive it).
    radii[inside & (grid_dist > 2 * h)] = 0.0
  refined, refined_face, ties = tree.grid_distances_within(
      origin, step, radii, ties=np.full(shape, rebuild_interior), tie_eps=_EPSILON)
  # The exact distances found here spare msh2pts.uniform_samples (exact grid, same geometry for LDIF) queries.
  tree.offer_distance_grid(origin, step, refined, refined_face)
  dist = np.where(np.isnan(refined), grid_dist, refined)
  dist = np.where(inside, -dist, dist)
  if rebuild_interior:
    box_diagonal = float(np.linalg.norm((np.array(shape[::-1]) - 1) * step))
    _interior_from_surface_samples(dist, refined, ties, tree, tris, origin, step, h, REFINEMENT_RADIUS,
                                   box_diagonal)
  lo = max((REFINEMENT_RADIUS - SMOOTHING_HALF_WIDTH) * h, 2 * h)
  dist = _grid_kernels.smooth_band(dist, lo, (REFINEMENT_RADIUS + SMOOTHING_HALF_WIDTH) * h)
  return dist.astype(np.float32), world2grid.astype(np.float32)


_USAGE = ('usage: python -m gaps_py.msh2df input_mesh output.grd [-bbox x0 y0 z0 x1 y1 z1] [-spacing S] '
          '[-border B] [-estimate_sign] [-exact] [-v]')
_CLI = _cli.Cli(
    'msh2df', _USAGE, positional=('input_mesh', 'output_grid'),
    flags={
        '-bbox': _cli.Flag('bbox', 6, float),
        '-spacing': _cli.Flag('spacing', 1, float),
        '-border': _cli.Flag('border', 1, lambda s: int(float(s))),
        '-estimate_sign': _cli.Flag('estimate_sign'),
        '-estimate_sign_using_flood_fill': _cli.Flag('estimate_sign'),
        '-estimate_sign_using_normals': _cli.Flag('estimate_sign'),
        '-exact': _cli.Flag('exact'),
    },
    defaults={'spacing': 0.01, 'border': 3, 'estimate_sign': False, 'exact': False})


def _run(args):
  start = time.perf_counter()
  vertices, faces = gaps_io.load_mesh(args.input_mesh)
  values, world2grid = mesh_to_distance_field(vertices, faces, bbox=args.bbox, spacing=args.spacing,
                                              border=args.border, estimate_sign=args.estimate_sign,
                                              exact=args.exact)
  gaps_io.write_grd(args.output_grid, values, world2grid)
  log.verbose(f'wrote {args.output_grid}: resolution {values.shape[::-1]}, '
              f'range [{values.min():g}, {values.max():g}], {(values < 0).mean():.4f} inside, '
              f'{time.perf_counter() - start:.2f} s')


def main(argv=None):
  """CLI with GAPS msh2df's flag spellings (defaults as GAPS: spacing 0.01, border 3, bbox = mesh box).

  `-exact` (not a GAPS flag) writes exact distances everywhere (`mesh_to_distance_field(exact=True)`).
  Returns the exit status.
  """
  return _CLI.main(argv, _run)


if __name__ == '__main__':
  sys.exit(main())

"""Mesh extraction from a SIF/LDIF: dense grids as the original, and coarse-to-fine (beyond the original).

Port of the original's `inference/extract_mesh.py` (`marching_cubes`) and `Decoder.extract_mesh`
(`inference/predict.py`, reference §7.3), plus a coarse-to-fine evaluator in the spirit of Occupancy Networks'
MISE (Mescheder et al. 2019) that produces the same mesh as the dense grid at a fraction of the evaluations:

  1. evaluate the grid at a coarse stride S (every S-th sample of the target grid; about 32 cells per axis);
  2. mark the cells whose corners straddle the level set (or lie within `margin` of it), grow the marked
     set by `dilation` cells, split them into cells of half the size and evaluate their new corners;
  3. repeat down to stride 1; run marching cubes only in the marked cells of the target grid.

The values used are exactly the dense grid's values at the samples that marching cubes reads (same sample
positions, same evaluator), so the mesh is the dense mesh whenever every cell the surface crosses was marked;
a surface piece smaller than the coarse cells that touches no coarse corner can be missed (the `margin` and
`dilation` make that unlikely; `coarse_resolution=R` is the dense grid).

Grid conventions (reference §7.3; this module owns them, `ldif.inference.predict` uses them). A grid of
resolution R over the cube [-E, E]^3 (E = 0.75) holds values G[i0, i1, i2] (index order [z][y][x]) that are F
at the sample positions (p(i2), p(i1), p(i0)), where p(i) differs between the original's two paths:
  'tf'      p(i) = -E + (2E / R)(i + 0.5) - 0.5 / R     (the original's pure-TF `Decoder._grid_eval`)
  'kernel'  p(i) = -E + 2E (0.5 + (R - 0.5) i / R) / R   (the ldif2mesh CUDA kernel, which the original's eval
                                                          used; `ldif.ops.evaluate.kernel_grid_spec`)
  'aligned' p(i) = -E + (2E / R) i                       (where marching cubes puts index i: no shift)
Marching-cubes vertices (v0, v1, v2) map to the gaps frame as (x, y, z) = (2E / R) (v2 - R/2, v1 - R/2,
v0 - R/2), and each face's 2nd and 3rd indices are swapped, as the original does. So 'tf' shifts the surface
by -(E - 0.5) / R per axis (-9.8e-4 at R = 256) and 'kernel' by -(E / R)(1 - i / R) (-2.9e-3 ... 0 at
R = 256). scikit-image's Lewiner marching cubes at level -0.07 (the original's) by default.
"""

import dataclasses
import time

import numpy as np
from skimage import measure

from ldif.ops import evaluate
from ldif.util import log

LEVEL_SET = -0.07
DEFAULT_EXTENT = evaluate.DEFAULT_EXTENT
"""Half the side of the cube marching cubes works in (gaps units), as the original's `extract_mesh`."""

GRID_POSITIONS = ('tf', 'kernel', 'aligned')
"""Names of the grid sample positions p(i) (module docstring)."""


@dataclasses.dataclass
class ExtractedMesh:
  """Result of `extract_mesh`.

  Attributes:
    vertices: float32 [V, 3], gaps frame (original's §7.3 mapping).
    faces: int64 [F, 3].
    had_crossing: False when the level set does not cross the grid (then V = F = 0; the original returned a
      sphere of radius 0.5 in that case).
    evaluations: number of function evaluations made.
    dense_evaluations: R^3, what the dense grid costs.
    seconds: dict of wall times ('evaluate', 'marching_cubes', 'total').
  """
  vertices: np.ndarray
  faces: np.ndarray
  had_crossing: bool
  evaluations: int
  dense_evaluations: int
  seconds: dict


def sample_grid_spec(resolution, extent=DEFAULT_EXTENT, positions='kernel'):
  """Where the samples of an R^3 grid sit: index i along an axis is at origin + spacing * i (see module doc).

  Args:
    resolution: R >= 2.
    extent: E, gaps units.
    positions: 'tf' (the original's pure-TF path), 'kernel' (the ldif2mesh kernel) or 'aligned' (where
      marching cubes puts the vertices).

  Returns:
    (origin float64 [3], spacing float64 [3]), the same on the three axes, gaps frame; positions are computed
    from them as `ldif.ops.evaluate.index_to_position` does (what the op computes).

  Raises:
    ValueError: for a resolution below 2 or an unknown `positions`.
  """
  r = int(resolution)
  if r < 2:
    raise ValueError(f'grid resolution must be >= 2, got {resolution}')
  spacing = 2.0 * extent / r
  if positions == 'tf':
    origin = -extent + 0.5 * spacing - 0.5 / r
  elif positions == 'kernel':
    return evaluate.kernel_grid_spec(r, extent)
  elif positions == 'aligned':
    origin = -extent
  else:
    raise ValueError(f'Unknown grid sample positions {positions!r}; expected one of {GRID_POSITIONS}')
  return np.full(3, float(origin)), np.full(3, spacing)


def sample_grid_coordinates(resolution, extent=DEFAULT_EXTENT, positions='kernel'):
  """float32 [R]: the coordinate p(i) at which grid index i is sampled, on any axis (`sample_grid_spec`)."""
  origin, spacing = sample_grid_spec(resolution, extent, positions)
  return evaluate.index_to_position(origin[0], spacing[0], np.arange(int(resolution)))


def marching_cubes(volume, extent=DEFAULT_EXTENT, level=LEVEL_SET, *, method='lewiner', mask=None):
  """Marching cubes on an [R, R, R] grid ([z][y][x]) with the original's mapping to the gaps frame.

  Port of the original's `inference/extract_mesh.py: marching_cubes` (which hard-codes level -0.07).

  Args:
    volume: float [R, R, R] values ([z][y][x]).
    extent: half-width E of the box; vertex index v maps to (2E / R) (v - R/2).
    level: iso-level.
    method: scikit-image method, 'lewiner' (the original's) or 'lorensen' (classic tables, like GAPS grd2msh).
    mask: optional bool [R, R, R] passed to scikit-image (a cell is processed where the mask is True at its
      corner of largest index).

  Returns:
    (had_crossing, vertices float32 [V, 3] gaps frame, faces int64 [F, 3]); ([0, 3] arrays when no crossing).

  Raises:
    ValueError: if the volume is not a cube of side >= 2.
  """
  volume = np.asarray(volume, np.float32)
  if volume.ndim != 3 or len(set(volume.shape)) != 1 or volume.shape[0] < 2:
    raise ValueError(f'volume must be [R, R, R] with R >= 2, got {volume.shape}')
  r = volume.shape[0]
  try:
    verts, faces, _, _ = measure.marching_cubes(volume, level, method=method, mask=mask)
  except (ValueError, RuntimeError) as e:
    log.verbose(f'marching cubes found no surface at level {level}: {e}')
    return False, np.zeros([0, 3], np.float32), np.zeros([0, 3], np.int64)
  if len(faces) == 0:
    return False, np.zeros([0, 3], np.float32), np.zeros([0, 3], np.int64)
  scale = 2.0 * extent / r
  vertices = (scale * (verts[:, ::-1].astype(np.float64) - r / 2.0)).astype(np.float32)
  faces = np.asarray(faces, np.int64)[:, [0, 2, 1]]
  return True, vertices, faces


def _as_point_function(source, decoder_weights, use_op):
  """(callable points [N, 3] -> [N], EvalModel or None) for a model, a SifFile or a callable."""
  from ldif.representation import sif_file  # pylint: disable=g-import-not-at-top
  if isinstance(source, evaluate.EvalModel):
    model = source
  elif isinstance(source, sif_file.SifFile):
    model = evaluate.EvalModel.from_sif_file(source, decoder_weights)
  elif hasattr(source, 'radius_type') and hasattr(source, 'centers'):
    model = evaluate.EvalModel.from_structured_implicit(source, decoder_weights)
  elif callable(source):
    def call(points):
      values = np.asarray(source(np.asarray(points, np.float32)), np.float32).reshape(-1)
      if values.shape[0] != len(points):
        raise ValueError(f'evaluate_fn returned {values.shape[0]} values for {len(points)} points')
      return values
    return call, None
  else:
    raise TypeError(f'expected an EvalModel, SifFile, StructuredImplicit or callable, got {type(source)}')
  if model.batch_size != 1:
    raise ValueError(f'extract_mesh takes one shape, got a batch of {model.batch_size}')
  return (lambda points: evaluate.evaluate_points(model, points, use_op=use_op)[0]), model


def dense_grid(source, resolution, *, extent=DEFAULT_EXTENT, positions='kernel', decoder_weights=None,
               use_op=None):
  """F on the full R^3 sample grid: float32 [R, R, R] ([z][y][x]). Source as `extract_mesh`."""
  evaluate.check_resolution(resolution)
  origin, spacing = sample_grid_spec(resolution, extent, positions)
  fn, model = _as_point_function(source, decoder_weights, use_op)
  if model is not None:
    return evaluate.evaluate_grid(model, origin, spacing, (resolution,) * 3, use_op=use_op)[0]
  out = np.empty((resolution,) * 3, np.float32)
  plane = resolution * resolution
  slab = max(1, (1 << 20) // plane)
  for z0 in range(0, resolution, slab):
    z1 = min(resolution, z0 + slab)
    points = evaluate.grid_points(origin, spacing, (resolution,) * 3, z0, z1).reshape(-1, 3)
    out[z0:z1] = fn(points).reshape(z1 - z0, resolution, resolution)
  return out


def _coarse_stride(resolution, requested):
  stride = 1
  while stride * 2 <= requested and resolution % (stride * 2) == 0:
    stride *= 2
  return stride


def _cell_corner_views(values, step):
  """The 8 corner arrays [(n-1)^3] of the cells of a stride-`step` sub-grid view of `values`."""
  sub = values[::step, ::step, ::step]
  n = sub.shape[0]
  return [sub[a:n - 1 + a, b:n - 1 + b, c:n - 1 + c] for a in (0, 1) for b in (0, 1) for c in (0, 1)]


def _dilate(cells, radius):
  """Grows a boolean cell mask by `radius` cells along every axis (a cube neighbourhood)."""
  out = cells.copy()
  for _ in range(radius):
    grown = out.copy()
    for axis in range(3):
      src = np.moveaxis(out, axis, 0)
      dst = np.moveaxis(grown, axis, 0)
      dst[1:] |= src[:-1]
      dst[:-1] |= src[1:]
    out = grown
  return out


def _corners_of_cells(cells):
  """bool [(n+1)^3] points that are corners of any True cell of `cells` [n^3]."""
  n = cells.shape[0]
  points = np.zeros((n + 1,) * 3, bool)
  for a in (0, 1):
    for b in (0, 1):
      for c in (0, 1):
        points[a:n + a, b:n + b, c:n + c] |= cells
  return points


def coarse_to_fine_grid(fn, resolution, origin, spacing, *, level=LEVEL_SET, coarse_resolution=32, dilation=1,
                        margin=0.01, fill_value=None):
  """Evaluates F only where needed to mesh the level set on the R^3 grid (see the module docstring).

  Args:
    fn: callable(points float32 [N, 3], gaps frame) -> float32 [N].
    resolution: R.
    origin, spacing: [3] sample grid (position of index (i, j, k) = origin + spacing * (i, j, k), computed as
      `evaluate.index_to_position`, so that values equal the dense grid's).
    level: iso-level.
    coarse_resolution: cells per axis of the first level (at least): its stride is the largest power of two
      <= R / coarse_resolution that divides R (1, i.e. dense, for small or odd R).
    dilation: cells added around marked cells at each level.
    margin: cells with a corner value within `margin` of the level are marked even without a sign change.
    fill_value: value of unevaluated samples in the returned grid (default level + 1).

  Returns:
    (values float32 [R, R, R] with exact values at evaluated samples, mask bool [R, R, R] for
    `marching_cubes` (the cells to process; None when the whole grid was evaluated), evaluation count).
  """
  r = int(resolution)
  stride = _coarse_stride(r, max(1, r // max(1, int(coarse_resolution))))
  if stride == 1:  # nothing to skip: the dense grid
    points = evaluate.grid_points(origin, spacing, (r, r, r)).reshape(-1, 3)
    return fn(points).reshape(r, r, r).astype(np.float32), None, r ** 3
  n = r  # cells per axis at stride 1 on the extended (R + 1)^3 sample lattice
  values = np.full((n + 1,) * 3, np.nan, np.float32)
  count = 0

  def evaluate_at(index_mask_points, step):
    """Evaluates the samples of the stride-`step` lattice flagged in `index_mask_points` and still unknown."""
    nonlocal count
    sub = values[::step, ::step, ::step]
    todo = index_mask_points & np.isnan(sub)
    idx = np.nonzero(todo)  # (z, y, x) indices in the sub lattice
    if len(idx[0]) == 0:
      return
    xyz = np.stack([idx[2], idx[1], idx[0]], axis=-1) * step
    points = evaluate.index_to_position(origin, spacing, xyz)
    sub[idx] = fn(points)
    count += len(points)

  evaluate_at(np.ones((n // stride + 1,) * 3, bool), stride)
  candidates = np.ones((n // stride,) * 3, bool)
  step = stride
  while step > 1:
    corners = _cell_corner_views(values, step)
    known = np.ones(candidates.shape, bool)
    below = np.zeros(candidates.shape, bool)
    above = np.zeros(candidates.shape, bool)
    near = np.zeros(candidates.shape, bool)
    for corner in corners:
      known &= ~np.isnan(corner)
      below |= corner < level
      above |= corner >= level
      near |= np.abs(corner - level) < margin
    marked = candidates & known & ((below & above) | near)
    marked = _dilate(marked, dilation)
    step //= 2
    candidates = marked.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    evaluate_at(_corners_of_cells(candidates), step)
  fill = np.float32(level + 1.0 if fill_value is None else fill_value)
  grid = values[:r, :r, :r]
  grid = np.where(np.isnan(grid), fill, grid)
  # scikit-image processes the cell [i-1, i] x [j-1, j] x [k-1, k] where mask[i, j, k] is True.
  mask = np.zeros((r, r, r), bool)
  mask[1:, 1:, 1:] = candidates[:r - 1, :r - 1, :r - 1]
  return grid, mask, count


def extract_mesh(source, resolution=256, level=LEVEL_SET, extent=DEFAULT_EXTENT, *, decoder_weights=None,
                 coarse_to_fine=True, coarse_resolution=32, dilation=1, margin=0.01, positions='kernel',
                 method='lewiner', use_op=None):
  """Extracts the level-set mesh of a SIF/LDIF on an R^3 grid, coarse-to-fine by default.

  Port of the original's `Decoder.extract_mesh` (dense grid + `marching_cubes`), with the coarse-to-fine
  evaluation described in the module docstring.

  Args:
    source: an `ldif.ops.evaluate.EvalModel` (batch 1), a `sif_file.SifFile` (+ `decoder_weights` for an
    LDIF),
      a TF `StructuredImplicit` (batch 1, + `decoder_weights`), or a callable(points float32 [N, 3] gaps
      frame)
      -> values [N].
    resolution: R in [2, 1024] (the original: 128 default, 256 in eval).
    level: iso-level (-0.07).
    extent: half-width of the box (0.75).
    decoder_weights: OccNet weights dict for a SifFile/StructuredImplicit LDIF.
    coarse_to_fine: False evaluates the dense grid (the original's behaviour).
    coarse_resolution, dilation, margin: see `coarse_to_fine_grid`.
    positions: 'kernel' (ldif2mesh sample positions, as the original's eval), 'tf' or 'aligned'
      (`sample_grid_spec`).
    method: marching-cubes method ('lewiner' as the original, or 'lorensen').
    use_op: None (op if built), True, False (pure TF); ignored for callables.

  Returns:
    ExtractedMesh (vertices float32 [V, 3] gaps frame, faces int64 [F, 3], had_crossing, counts, timings).

  Raises:
    ValueError: resolution outside [2, 1024], bad positions/method, bad model.
  """
  evaluate.check_resolution(resolution)
  if resolution < 2:
    raise ValueError('resolution must be at least 2 for marching cubes')
  start = time.perf_counter()
  origin, spacing = sample_grid_spec(resolution, extent, positions)
  fn, model = _as_point_function(source, decoder_weights, use_op)
  mask = None
  if coarse_to_fine:
    grid, mask, count = coarse_to_fine_grid(fn, resolution, origin, spacing, level=level,
                                            coarse_resolution=coarse_resolution, dilation=dilation,
                                            margin=margin)
  else:
    grid = dense_grid(model if model is not None else source, resolution, extent=extent, positions=positions,
                      use_op=use_op)
    count = resolution ** 3
  evaluated = time.perf_counter()
  had_crossing, vertices, faces = marching_cubes(grid, extent, level, method=method, mask=mask)
  done = time.perf_counter()
  if not had_crossing:
    log.warning(f'marching cubes found no surface at level {level} (resolution {resolution})')
  log.verbose(f'extract_mesh: R={resolution}, {count} evaluations ({100.0 * count / resolution ** 3:.1f}% of '
              f'dense), {len(faces)} faces, {evaluated - start:.2f} s evaluation, '
              f'{done - evaluated:.2f} s MC')
  return ExtractedMesh(vertices=vertices, faces=faces, had_crossing=had_crossing, evaluations=int(count),
                       dense_evaluations=int(resolution) ** 3,
                       seconds={'evaluate': evaluated - start, 'marching_cubes': done - evaluated,
                                'total': done - start})


def grid_index_to_gaps(index_coordinates, resolution, extent=DEFAULT_EXTENT, positions='kernel'):
  """Maps continuous grid-index coordinates [..., 3] (x, y, z order, e.g. a GAPS grd2msh mesh of an ldif2mesh
  .grd) to the gaps frame at the sample positions: origin + spacing * index (float64)."""
  origin, spacing = sample_grid_spec(resolution, extent, positions)
  return origin + spacing * np.asarray(index_coordinates, np.float64)


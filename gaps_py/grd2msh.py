"""Marching cubes on a GAPS grid: port of GAPS grd2msh.

    python -m gaps_py.grd2msh grid.grd mesh.ply -threshold -0.07

Surfaces the level set `value == threshold` of a .grd grid with scikit-image's marching cubes (classic
Lorensen tables, `method='lorensen'`, like GAPS) and maps the vertices to world space by inverse(world2grid).

Same as GAPS: a corner with value < threshold is inside; every vertex lies on a grid edge at the linear
interpolation (threshold - v0) / (v1 - v0) between the edge's two samples, so vertex positions agree with
GAPS's to float rounding (GAPS snaps to an endpoint when the threshold is within 1e-6 of its value; we don't).
Different from GAPS:
  * GAPS writes a triangle soup (3 fresh vertices per triangle, V = 3F); we write a welded mesh (each edge
    crossing once), i.e. the same vertex positions without repetition.
  * GAPS reverses the winding, so with an SDF that is negative inside its faces point inward (negative signed
    volume); ours point outward, towards larger values (positive volume when inside is negative).
  * Triangulation of ambiguous cells may differ (scikit-image's Lorensen table vs GAPS's Bourke table), which
    can only change which crossing vertices are connected, not where they are.
  * GAPS silently truncates output beyond 16M points; we do not.
"""

import sys
import time

import numpy as np

from gaps_py import _cli
from gaps_py import io as gaps_io
from ldif.util import log


def grid_to_mesh(values, world2grid, *, threshold=0.0, method='lorensen'):
  """Extracts the `threshold` level set of a grid as a triangle mesh in world coordinates.

  Args:
    values: float [Z,Y,X] grid (layout of `gaps_py.io.read_grd`: values[k, j, i] at grid point (i, j, k)).
    world2grid: float [4,4], world -> grid index coordinates (column vectors).
    threshold: the iso-value (LDIF: -0.07 for predicted grids, 0 for SDF grids).
    method: 'lorensen' (classic tables, vertices only on grid edges, like GAPS) or 'lewiner'.
  Returns:
    (vertices float32 [V,3] world frame, faces int64 [F,3]); faces wind counter-clockwise seen from the side
    with larger values. Empty arrays ([0,3]) when the level set does not cross the grid.
  Raises:
    ValueError: for bad shapes, a singular world2grid or non-finite values.
  Port of GAPS grd2msh (see the module doc for the differences).
  """
  vals = np.asarray(values, np.float32)
  m = np.asarray(world2grid, np.float64)
  if vals.ndim != 3 or min(vals.shape) < 2:
    raise ValueError(f'grid values must have shape [Z, Y, X] with every size >= 2, got {vals.shape}')
  if m.shape != (4, 4):
    raise ValueError(f'world2grid must have shape [4, 4], got {m.shape}')
  if not np.all(np.isfinite(vals)):
    raise ValueError('grid values contain NaN or inf')
  threshold = float(threshold)
  empty = (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64))
  if not (vals.min() < threshold <= vals.max()) and not (vals.min() <= threshold < vals.max()):
    return empty
  try:
    grid2world = np.linalg.inv(m)
  except np.linalg.LinAlgError as e:
    raise ValueError(f'world2grid is singular: {m.tolist()}') from e
  from skimage import measure  # pylint: disable=g-import-not-at-top
  try:
    verts, faces, _, _ = measure.marching_cubes(vals, level=threshold, method=method,
                                                gradient_direction='ascent')
  except (ValueError, RuntimeError) as e:
    if 'level must be within' in str(e) or 'No surface found' in str(e):
      return empty
    raise
  ijk = verts[:, ::-1].astype(np.float64)  # skimage gives (k, j, i)
  world = ijk @ grid2world[:3, :3].T + grid2world[:3, 3]
  if not np.array_equal(grid2world[3], [0.0, 0.0, 0.0, 1.0]):
    world /= (ijk @ grid2world[3, :3] + grid2world[3, 3])[:, None]
  faces = np.asarray(faces, np.int64)
  # The axis reversal (k, j, i) -> (i, j, k) is a reflection, which 'ascent' already accounts for; a
  # world2grid with negative determinant is one more reflection.
  if np.linalg.det(grid2world[:3, :3]) < 0:
    faces = faces[:, ::-1].copy()
  return world.astype(np.float32), faces


_USAGE = 'usage: python -m gaps_py.grd2msh input.grd output_mesh [-threshold T] [-v]'
_CLI = _cli.Cli('grd2msh', _USAGE, positional=('input_grid', 'output_mesh'),
                flags={'-threshold': _cli.Flag('threshold', 1, float)}, defaults={'threshold': 0.0})


def _run(args):
  start = time.perf_counter()
  values, world2grid = gaps_io.read_grd(args.input_grid)
  vertices, faces = grid_to_mesh(values, world2grid, threshold=args.threshold)
  if len(faces) == 0:
    log.warning(f'{args.input_grid}: the level set {args.threshold:g} does not cross the grid; '
                'writing an empty mesh')
  gaps_io.write_mesh(args.output_mesh, vertices, faces)
  log.verbose(f'wrote {args.output_mesh}: {len(vertices)} vertices, {len(faces)} faces, '
              f'{time.perf_counter() - start:.2f} s')


def main(argv=None):
  """CLI with GAPS grd2msh's flag spellings. Returns the exit status."""
  return _CLI.main(argv, _run)


if __name__ == '__main__':
  sys.exit(main())

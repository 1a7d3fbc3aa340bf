"""Benchmarks gaps_py.msh2df.mesh_to_distance_field (LDIF's 32^3 coarse grid) on one core, and its agreement
with GAPS's coarse_grid.grd where a reference exists.

For each mesh (normalized as the pipeline does: GAPS's own orig_to_gaps.txt when the reference folder has one
for that mesh name, else `msh2msh.normalize_mesh`; vertices rounded like GAPS's %g OBJ) it prints, for the
default GAPS-faithful grid and for `exact=True`:

- wall and CPU seconds of one call including the BVH build (median and min of --runs runs after a warm-up),
  pinned to one core with NUMBA_NUM_THREADS=1;
- the same for the pipeline pair msh2df + msh2pts.uniform_samples sharing one search tree (uniform_samples
  always interpolates the exact grid, which msh2df(exact=True) leaves memoized on the tree);
- with a reference grid: the share of ALL cells within half a grid spacing of GAPS's value, sign
  agreement, and the max / mean absolute difference.

Target: msh2df <= 0.25 s per mesh on one core. Timings on a shared machine are noisy; CPU seconds are the
steadier figure.

Usage:
    python scripts/bench_msh2df.py --reference-dir ../shared/reference ../shared/reference/meshes/bob.ply \
        ../shared/reference/meshes/blub.ply /work/cgal/data/meshes/cow.off /work/cgal/data/meshes/elephant.off
"""

import argparse
import os
import pathlib
import shlex
import statistics
import sys
import time

import numpy as np

os.environ.setdefault('NUMBA_NUM_THREADS', '1')  # before gaps_py imports numba
PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from gaps_py import _kernels  # pylint: disable=wrong-import-position
from gaps_py import io as gaps_io  # pylint: disable=wrong-import-position
from gaps_py import msh2df  # pylint: disable=wrong-import-position
from gaps_py import msh2msh  # pylint: disable=wrong-import-position
from gaps_py import msh2pts  # pylint: disable=wrong-import-position

TARGET_SECONDS = 0.25


def _normalized(path, reference_dir):
  vertices, faces = gaps_io.load_mesh(path)
  name = pathlib.Path(path).stem
  matrix_path = reference_dir / 'gaps' / name / 'orig_to_gaps.txt' if reference_dir else None
  if matrix_path is not None and matrix_path.is_file():
    matrix = gaps_io.read_matrix(matrix_path)
    return name, msh2msh.round_like_gaps_obj(msh2msh.transform_vertices(vertices, matrix)), faces
  vertices, _ = msh2msh.normalize_mesh(vertices, faces, scale=0.25, scale_by_pca=True,
                                       translate_by_centroid=True, round_like_gaps=True)
  return name, vertices, faces


def _timed(fn, runs):
  walls, cpus = [], []
  for _ in range(runs):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
  return walls, cpus


def main(argv=None):
  """Runs the benchmark; returns the exit status."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('meshes', nargs='+')
  parser.add_argument('--reference-dir', type=pathlib.Path, default=None,
                      help='../shared/reference: GAPS matrices and coarse grids per mesh name')
  parser.add_argument('--runs', type=int, default=5)
  parser.add_argument('--core', type=int, default=0)
  args = parser.parse_args(argv)
  if hasattr(os, 'sched_setaffinity'):
    os.sched_setaffinity(0, {args.core})
  print(f'bench_msh2df: {len(args.meshes)} meshes, {args.runs} runs after a warm-up, core {args.core}, '
        f'NUMBA_NUM_THREADS={os.environ["NUMBA_NUM_THREADS"]}; load average {os.getloadavg()}')
  print(f'{"mesh":10s} {"faces":>6s} {"mode":8s} {"msh2df wall med/min":>20s} {"cpu med":>8s} '
        f'{"+uniform wall":>14s} {"cpu":>6s}  {"<=h/2":>7s} {"sign":>7s} {"max":>7s} {"mean":>8s}  target')
  for path in args.meshes:
    name, vertices, faces = _normalized(path, args.reference_dir)
    grd = args.reference_dir / 'gaps' / name / 'coarse_grid.grd' if args.reference_dir else None
    gaps = gaps_io.read_grd(grd)[0].astype(np.float64) if grd is not None and grd.is_file() else None
    for exact in (False, True):
      def one(exact=exact):
        tree = _kernels.MeshSearchTree(vertices, faces)
        return msh2df.mesh_to_distance_field(vertices, faces, tree=tree, exact=exact)[0]

      def pair(exact=exact):
        tree = _kernels.MeshSearchTree(vertices, faces)
        msh2df.mesh_to_distance_field(vertices, faces, tree=tree, exact=exact)
        msh2pts.uniform_samples(vertices, faces, seed=0, tree=tree)

      grid = one()
      pair()
      walls, cpus = _timed(one, args.runs)
      pair_walls, pair_cpus = _timed(pair, args.runs)
      if gaps is not None:
        h = 1.4 / 31
        diff = np.abs(grid - gaps)
        sign = np.mean((grid < 0) == (gaps < 0))
        quality = f'{np.mean(diff <= h / 2):7.4f} {sign:7.4f} {diff.max():7.4f} {diff.mean():8.6f}'
      else:
        quality = f'{"-":>7s} {"-":>7s} {"-":>7s} {"-":>8s}'
      ok = 'ok' if statistics.median(cpus) <= TARGET_SECONDS else 'SLOW'  # CPU: steadier when shared
      print(f'{name:10s} {len(faces):6d} {"exact" if exact else "gaps":8s} '
            f'{statistics.median(walls):9.3f}/{min(walls):.3f}s {statistics.median(cpus):7.3f}s '
            f'{statistics.median(pair_walls):13.3f}s {statistics.median(pair_cpus):5.3f}s  {quality}  {ok}')
  print(f'reproduce: cd {PROJECT_ROOT} && python scripts/bench_msh2df.py ' +
        ' '.join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)))
  return 0


if __name__ == '__main__':
  sys.exit(main())

"""Mesh normalization: port of GAPS msh2msh as LDIF calls it (step 1 of process_mesh_local.sh).

    python -m gaps_py.msh2msh IN OUT -scale_by_pca -translate_by_centroid -scale 0.25 -debug_matrix M.txt

maps the mesh frame to the "gaps frame" with M = S(scale) . S(1/sqrt(l1)) . T(-c) (column vectors,
p_gaps = M [p; 1]), where c is the area-weighted mean of the face centroids and l1 the largest eigenvalue of
the area-weighted covariance of the face centroids about c (GAPS R3Mesh::Centroid / PrincipleAxes). There is
no rotation. The transformed mesh is written with GAPS's precision for OBJ (`%g`, 6 significant digits), which
is what every later GAPS step reads; `round_like_gaps_obj` reproduces that rounding in-process.
"""

import operator
import sys

import numpy as np

from gaps_py import _cli
from gaps_py import io as gaps_io
from ldif.util import log


def _face_areas_and_centroids(vertices, faces):
  tris = np.asarray(vertices, np.float64)[np.asarray(faces, np.int64)]
  areas = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
  return areas, tris.mean(axis=1)


def mesh_centroid(vertices, faces):
  """Area-weighted mean of the face centroids (GAPS R3Mesh::Centroid): float64 [3], mesh frame.

  Raises: ValueError if the total face area is 0.
  """
  areas, centroids = _face_areas_and_centroids(vertices, faces)
  total = areas.sum()
  if not total > 0:
    raise ValueError('the mesh has zero total area')
  return (areas[:, None] * centroids).sum(axis=0) / total


def principal_variances(vertices, faces, center):
  """Eigenvalues (descending) of the area-weighted covariance of face centroids about `center`: float64 [3].

  The covariance is sum_f A_f (c_f - center)(c_f - center)^T / sum_f A_f (GAPS R3Mesh::PrincipleAxes).
  """
  areas, centroids = _face_areas_and_centroids(vertices, faces)
  d = centroids - np.asarray(center, np.float64)
  cov = (d * areas[:, None]).T @ d / areas.sum()
  return np.sort(np.linalg.eigvalsh(cov))[::-1]


def normalization_matrix(vertices, faces, *, scale=0.25, scale_by_pca=True, translate_by_centroid=True):
  """The mesh-frame -> gaps-frame matrix of `msh2msh -scale_by_pca -translate_by_centroid -scale S`.

  M = S(scale) . [S(1/sqrt(l1)) if scale_by_pca] . [T(-c) if translate_by_centroid], composed as GAPS does
  (`-scale` applies at parse time, then the PCA scale, then the translation, each post-multiplied).
  Args:
    vertices: float [V,3] mesh frame; faces: int [F,3].
    scale: the `-scale` factor (0.25 in LDIF).
  Returns:
    float64 [4,4], column-vector convention (p_gaps = M [p; 1]), unrounded.
  Raises:
    ValueError: if the mesh has zero total area.
  Port of GAPS msh2msh.
  """
  m = np.diag([float(scale)] * 3 + [1.0])
  c = mesh_centroid(vertices, faces)
  if scale_by_pca:
    l1 = principal_variances(vertices, faces, c)[0]
    if l1 > 0:
      m = m @ np.diag([1.0 / np.sqrt(l1)] * 3 + [1.0])
  if translate_by_centroid:
    t = np.eye(4)
    t[:3, 3] = -c
    m = m @ t
  return m


def transform_vertices(vertices, matrix):
  """Applies a 4x4 matrix to points: vertices float [V,3] -> float64 [V,3] (mesh frame -> gaps frame for M).

  Uses homogeneous coordinates (divides by w when the last row is not [0 0 0 1]).
  """
  v = np.asarray(vertices, np.float64)
  m = np.asarray(matrix, np.float64)
  if v.ndim != 2 or v.shape[1] != 3 or m.shape != (4, 4):
    raise ValueError(f'expected vertices [V,3] and matrix [4,4], got {v.shape} and {m.shape}')
  out = v @ m[:3, :3].T + m[:3, 3]
  if not np.array_equal(m[3], [0.0, 0.0, 0.0, 1.0]):
    w = v @ m[3, :3] + m[3, 3]
    out = out / w[:, None]
  return out


def round_like_gaps_obj(values):
  """Rounds to what `%g` prints (6 significant digits), as GAPS's OBJ writer does: float64, same shape.

  The later GAPS steps read the normalized mesh back from that OBJ; use this to reproduce their input exactly.
  Computed numerically (round(x * 10^k) / 10^k); values whose scaled fraction is within 1e-6 of a rounding
  tie, and values beyond 1e15 in magnitude, are formatted with '%g' instead, so the result equals
  float('%g' % x).
  """
  v = np.asarray(values, np.float64)
  flat = v.ravel()
  out = flat.copy()
  mag = np.abs(flat)
  ok = (mag > 0) & (mag < 1e15) & np.isfinite(flat)
  with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
    k = np.where(ok, 5 - np.floor(np.log10(np.where(ok, mag, 1.0))), 0.0)
    small = ok & (k <= 22)  # 10^k is exact for 0 <= k <= 22
    scaled = flat * 10.0 ** k
    frac = np.abs(scaled - np.trunc(scaled))
    tie = np.abs(frac - 0.5) < 1e-6
    use_numeric = small & ~tie & (k >= 0)
    out[use_numeric] = np.round(scaled[use_numeric]) / 10.0 ** k[use_numeric]
  rest = np.flatnonzero(~use_numeric & np.isfinite(flat))
  if rest.size:
    out[rest] = np.array(('%g ' * rest.size % tuple(flat[rest].tolist())).split(), dtype=np.float64)
  return out.reshape(v.shape)


def normalize_mesh(vertices, faces, *, scale=0.25, scale_by_pca=True, translate_by_centroid=True,
                   round_like_gaps=True):
  """Normalizes a mesh as msh2msh + re-reading its OBJ: returns (gaps-frame vertices float64 [V,3], M [4,4]).

  With round_like_gaps the vertices are rounded to 6 significant digits (`round_like_gaps_obj`).
  """
  m = normalization_matrix(vertices, faces, scale=scale, scale_by_pca=scale_by_pca,
                           translate_by_centroid=translate_by_centroid)
  out = transform_vertices(vertices, m)
  if round_like_gaps:
    out = round_like_gaps_obj(out)
  return out, m


_USAGE = ('usage: python -m gaps_py.msh2msh input_mesh output_mesh [-scale_by_pca] [-translate_by_centroid] '
          '[-scale S] [-debug_matrix matrix.txt] [-v]')
_CLI = _cli.Cli(
    'msh2msh', _USAGE, positional=('input_mesh', 'output_mesh'),
    flags={
        '-scale_by_pca': _cli.Flag('scale_by_pca'),
        '-translate_by_centroid': _cli.Flag('translate_by_centroid'),
        '-center_at_origin': _cli.Flag('translate_by_centroid'),
        '-scale': _cli.Flag('scale', 1, float, combine=operator.mul),  # repeated -scale factors multiply
        '-debug_matrix': _cli.Flag('matrix_path', 1),
    },
    defaults={'scale': 1.0, 'scale_by_pca': False, 'translate_by_centroid': False})


def _run(args):
  vertices, faces = gaps_io.load_mesh(args.input_mesh)
  m = normalization_matrix(vertices, faces, scale=args.scale, scale_by_pca=args.scale_by_pca,
                           translate_by_centroid=args.translate_by_centroid)
  gaps_io.write_mesh(args.output_mesh, transform_vertices(vertices, m), faces)
  if args.matrix_path:
    gaps_io.write_matrix(args.matrix_path, m)
  log.verbose(f'wrote {args.output_mesh} ({len(vertices)} vertices, {len(faces)} faces)')


def main(argv=None):
  """CLI with GAPS msh2msh's flag spellings (the subset LDIF uses). Returns the exit status."""
  return _CLI.main(argv, _run)


if __name__ == '__main__':
  sys.exit(main())

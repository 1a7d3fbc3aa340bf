"""Small analytic test meshes for the gaps_py geometry tests (built with trimesh, no files needed)."""

import numpy as np
import trimesh

SPHERE_RADIUS = 0.5
BOX_EXTENTS = (0.6, 0.4, 0.8)


def sphere(subdivisions=3, radius=SPHERE_RADIUS, center=(0.0, 0.0, 0.0)):
  """Closed, welded, outward-oriented icosphere: (vertices float64 [V,3], faces int64 [F,3])."""
  m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
  return np.asarray(m.vertices, np.float64) + np.asarray(center, np.float64), np.asarray(m.faces, np.int64)


def box(extents=BOX_EXTENTS):
  """Closed axis-aligned box centred at the origin (12 triangles)."""
  m = trimesh.creation.box(extents=extents)
  return np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64)


def soup(vertices, faces):
  """The same triangles with unshared vertices (what GAPS sees for LDIF's bob/blub)."""
  return vertices[faces].reshape(-1, 3).copy(), np.arange(3 * len(faces), dtype=np.int64).reshape(-1, 3)


def sphere_with_hole(subdivisions=3, radius=SPHERE_RADIUS, cap_height=0.8):
  """Icosphere without the faces whose centroid has z > cap_height * radius (an open cap-shaped hole)."""
  v, f = sphere(subdivisions, radius)
  keep = v[f].mean(axis=1)[:, 2] <= cap_height * radius
  return v, f[keep]


def box_sdf(points, extents=BOX_EXTENTS):
  """Exact signed distance to the box, negative inside: float64 [N]."""
  q = np.abs(np.asarray(points, np.float64)) - 0.5 * np.asarray(extents)
  outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
  inside = np.minimum(q.max(axis=-1), 0.0)
  return outside + inside


def grid_world_points(shape, world2grid):
  """World positions [Z,Y,X,3] of the samples of a grid with the given world2grid (gaps_py.io convention)."""
  g2w = np.linalg.inv(np.asarray(world2grid, np.float64))
  kk, jj, ii = np.meshgrid(*[np.arange(n) for n in shape], indexing='ij')
  ijk = np.stack([ii, jj, kk, np.ones_like(ii)], -1).astype(np.float64)
  return (ijk @ g2w.T)[..., :3]

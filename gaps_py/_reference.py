"""Slow plain-numpy twins of the numba kernels in `gaps_py._kernels`, for tests only.

Each twin computes the same quantity by brute force or by an independent method (no BVH): tests compare the
kernels against them on small inputs. Shapes and frames as in `gaps_py._kernels`.
"""

import numpy as np


def closest_points_on_triangles(points, tris):
  """Row-wise closest points by plane projection + inside test, else the nearest of the three edges.

  Args: points float64 [N,3]; tris float64 [N,3,3]. Returns: (closest [N,3], squared distance [N]).
  Twin of `_kernels.closest_points_on_triangles` (which uses Voronoi-region tests instead).
  """
  p = np.asarray(points, np.float64)
  a, b, c = (np.asarray(tris, np.float64)[:, i] for i in range(3))
  n = np.cross(b - a, c - a)
  nn = np.einsum('ij,ij->i', n, n)
  safe = np.where(nn > 0, nn, 1.0)
  proj = p - (np.einsum('ij,ij->i', p - a, n) / safe)[:, None] * n
  # Barycentric coordinates of the projection from sub-triangle areas (signed along n).
  wa = np.einsum('ij,ij->i', np.cross(b - proj, c - proj), n) / safe
  wb = np.einsum('ij,ij->i', np.cross(c - proj, a - proj), n) / safe
  wc = 1.0 - wa - wb
  inside = (nn > 0) & (wa >= 0) & (wb >= 0) & (wc >= 0)
  best_q = proj.copy()
  best_d2 = np.where(inside, np.einsum('ij,ij->i', p - proj, p - proj), np.inf)
  for s, e in ((a, b), (b, c), (c, a)):
    d = e - s
    ll = np.einsum('ij,ij->i', d, d)
    t = np.clip(np.einsum('ij,ij->i', p - s, d) / np.where(ll > 0, ll, 1.0), 0.0, 1.0)
    t = np.where(ll > 0, t, 0.0)
    q = s + t[:, None] * d
    d2 = np.einsum('ij,ij->i', p - q, p - q)
    better = ~inside & (d2 < best_d2)
    best_q[better] = q[better]
    best_d2 = np.where(better, d2, best_d2)
  return best_q, best_d2


def closest_points(points, tris, chunk=256):
  """Brute-force closest points on a triangle set: points [N,3], tris [F,3,3] ->
  (squared distance [N], face [N] (lowest index among ties), closest [N,3])."""
  p = np.asarray(points, np.float64)
  t = np.asarray(tris, np.float64)
  f_count = t.shape[0]
  d2_out = np.empty(len(p))
  face_out = np.empty(len(p), np.int64)
  q_out = np.empty((len(p), 3))
  for s in range(0, len(p), chunk):
    block = p[s:s + chunk]
    rep_p = np.repeat(block, f_count, axis=0)
    rep_t = np.tile(t, (len(block), 1, 1))
    q, d2 = closest_points_on_triangles(rep_p, rep_t)
    d2 = d2.reshape(len(block), f_count)
    best = np.argmin(d2, axis=1)
    d2_out[s:s + chunk] = d2[np.arange(len(block)), best]
    face_out[s:s + chunk] = best
    q_out[s:s + chunk] = q.reshape(len(block), f_count, 3)[np.arange(len(block)), best]
  return d2_out, face_out, q_out


def grid_closest(origin, step, shape, tris):
  """Brute-force unsigned distance grid: (distance [Z,Y,X], face [Z,Y,X]); twin of `_kernels.grid_closest`."""
  nz, ny, nx = shape
  kk, jj, ii = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing='ij')
  pts = np.stack([origin[0] + ii * step[0], origin[1] + jj * step[1], origin[2] + kk * step[2]], -1)
  d2, face, _ = closest_points(pts.reshape(-1, 3), tris)
  return np.sqrt(d2).reshape(shape), face.reshape(shape)


def first_hits(origins, directions, tmin, tmax, tris):
  """Brute-force first ray hits (Moller-Trumbore over all triangles): (t [N] (inf if none), face [N] or -1).

  Twin of `_kernels.bvh_first_hit`.
  """
  o = np.asarray(origins, np.float64)[:, None, :]
  d = np.asarray(directions, np.float64)[:, None, :]
  t3 = np.asarray(tris, np.float64)[None]
  e1 = t3[:, :, 1] - t3[:, :, 0]
  e2 = t3[:, :, 2] - t3[:, :, 0]
  h = np.cross(d, e2)
  det = np.einsum('nfc,nfc->nf', e1 * np.ones_like(h), h)
  with np.errstate(divide='ignore', invalid='ignore'):
    inv = 1.0 / det
    s = o - t3[:, :, 0]
    u = np.einsum('nfc,nfc->nf', s, h) * inv
    q = np.cross(s, e1)
    v = np.einsum('nfc,nfc->nf', d * np.ones_like(q), q) * inv
    t = np.einsum('nfc,nfc->nf', e2 * np.ones_like(q), q) * inv
  ok = (det != 0) & (u >= 0) & (u <= 1) & (v >= 0) & (u + v <= 1) & (t >= tmin) & (t <= tmax)
  t = np.where(ok, t, np.inf)
  face = np.argmin(t, axis=1)
  best = t[np.arange(len(t)), face]
  return best, np.where(np.isfinite(best), face, -1)


def winding_numbers(points, tris):
  """Exact generalized winding numbers: sum over triangles of signed solid angles / 4 pi ([N]).

  Twin of `_kernels.triangle_solid_angles` (exact) and reference of `_kernels.bvh_winding_numbers` (approx.).
  """
  p = np.asarray(points, np.float64)[:, None, :]
  t3 = np.asarray(tris, np.float64)[None]
  a, b, c = t3[:, :, 0] - p, t3[:, :, 1] - p, t3[:, :, 2] - p
  la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
  triple = np.einsum('nfc,nfc->nf', a, np.cross(b, c))
  den = la * lb * lc + np.einsum('nfc,nfc->nf', a, b) * lc + np.einsum('nfc,nfc->nf', b, c) * la + \
      np.einsum('nfc,nfc->nf', c, a) * lb
  omega = np.where(triple == 0, 0.0, 2.0 * np.arctan2(triple, den))
  return omega.sum(axis=1) / (4 * np.pi)


def build_bvh(tri_lo, tri_hi, centroids, leaf_size, bins=16):
  """Recursive numpy twin of `_kernels.build_bvh` (same binned-SAH rule, same node numbering)."""
  tri_lo, tri_hi, centroids = (np.asarray(x, np.float64) for x in (tri_lo, tri_hi, centroids))
  order = np.arange(len(tri_lo))
  nodes = []  # [lo, hi, left, right, start, count]
  pending = [(0, 0, len(tri_lo))]
  nodes.append(None)
  while pending:
    node, s, e = pending.pop()
    idx = order[s:e]
    lo, hi = tri_lo[idx].min(axis=0), tri_hi[idx].max(axis=0)
    if e - s <= leaf_size:
      nodes[node] = [lo, hi, -1, -1, s, e - s]
      continue
    clo, chi = centroids[idx].min(axis=0), centroids[idx].max(axis=0)
    best = (np.inf, -1, -1)
    for a in range(3):
      extent = chi[a] - clo[a]
      if not extent > 0:
        continue
      b = np.minimum(((centroids[idx, a] - clo[a]) * (bins / extent)).astype(np.int64), bins - 1)
      for k in range(bins - 1):
        lm, rm = b <= k, b > k
        if not lm.any() or not rm.any():
          continue
        dl = tri_hi[idx[lm]].max(axis=0) - tri_lo[idx[lm]].min(axis=0)
        dr = tri_hi[idx[rm]].max(axis=0) - tri_lo[idx[rm]].min(axis=0)
        cost = lm.sum() * (dl[0] * dl[1] + dl[1] * dl[2] + dl[2] * dl[0]) + \
            rm.sum() * (dr[0] * dr[1] + dr[1] * dr[2] + dr[2] * dr[0])
        if cost < best[0]:
          best = (cost, a, k)
    if best[1] < 0:
      mid = (s + e) // 2
    else:
      a, k = best[1], best[2]
      b = np.minimum(((centroids[idx, a] - clo[a]) * (bins / (chi[a] - clo[a]))).astype(np.int64), bins - 1)
      order[s:e] = np.concatenate([idx[b <= k], idx[b > k]])
      mid = s + int((b <= k).sum())
    lc, rc = len(nodes), len(nodes) + 1
    nodes.extend([None, None])
    nodes[node] = [lo, hi, lc, rc, 0, 0]
    pending.append((rc, mid, e))
    pending.append((lc, s, mid))
  node_lo = np.array([n[0] for n in nodes])
  node_hi = np.array([n[1] for n in nodes])
  ints = [np.array([n[i] for n in nodes], np.int64) for i in range(2, 6)]
  return (node_lo, node_hi, *ints, order)


def bvh_dipoles(tris, left, right, start, count, node_lo, node_hi):
  """Twin of `_kernels.bvh_dipoles`, computed per node directly from all triangles under it."""
  tris = np.asarray(tris, np.float64)
  m = len(left)
  members = [None] * m
  for node in range(m - 1, -1, -1):
    if count[node] > 0:
      members[node] = np.arange(start[node], start[node] + count[node])
    else:
      members[node] = np.concatenate([members[left[node]], members[right[node]]])
  cross = 0.5 * np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
  area = np.linalg.norm(cross, axis=1)
  cen = tris.mean(axis=1)
  area_normal = np.array([cross[i].sum(axis=0) for i in members])
  center = np.array([(area[i, None] * cen[i]).sum(axis=0) / area[i].sum() if area[i].sum() > 0
                     else 0.5 * (node_lo[n] + node_hi[n]) for n, i in enumerate(members)])
  moment = np.array([np.einsum('i,ir,ic->rc', np.ones(len(i)), cen[i] - center[n], cross[i])
                     for n, i in enumerate(members)])
  corners = np.array([[(node_hi if c & 1 else node_lo)[:, 0], (node_hi if c & 2 else node_lo)[:, 1],
                       (node_hi if c & 4 else node_lo)[:, 2]] for c in range(8)]).transpose(2, 0, 1)
  radius = np.linalg.norm(corners - center[:, None, :], axis=2).max(axis=1)
  return area_normal, center, moment, radius


def bvh_depth(left, right):
  """Twin of `_kernels.bvh_depth`: walks the BVH level by level from the root."""
  frontier, depth = np.array([0]), 0
  while True:
    inner = frontier[left[frontier] >= 0]
    if not inner.size:
      return depth
    frontier = np.concatenate([left[inner], right[inner]])
    depth += 1


def swap_remove(n_total, uniforms):
  """Plain-Python twin of `_kernels.swap_remove`."""
  idx = list(range(n_total))
  for u in uniforms:
    k = min(int(u * len(idx)), len(idx) - 1)
    idx[k], idx[-1] = idx[-1], idx[k]
    idx.pop()
  return np.array(idx, np.int64)

"""Slow plain-numpy twins of the numba kernels in `gaps_py._kernels` and `gaps_py._grid_kernels` (tests only).

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


# ------------------------------------------------------------------------------------------------------------
# Twins of the msh2df kernels (gaps_py._kernels grid queries and gaps_py._grid_kernels)
# ------------------------------------------------------------------------------------------------------------


def grid_closest_within(origin, step, radii, ties, tie_eps, tris):
  """Brute-force twin of `_kernels.grid_closest_within` (faces in the order of tris).

  Returns (distance [Z,Y,X] (NaN where skipped / none within the radius), face [Z,Y,X] (-1 there),
  (tie voxel [M], tie face [M], tie point [M,3])) with ties listed per voxel in scan order, faces ascending.
  """
  radii = np.asarray(radii, np.float64)
  shape = radii.shape
  dist = np.full(shape, np.nan)
  face = np.full(shape, -1, np.int64)
  tv, tf, tp = [], [], []
  kk, jj, ii = np.meshgrid(*[np.arange(n) for n in shape], indexing='ij')
  pts = np.stack([origin[0] + ii * step[0], origin[1] + jj * step[1], origin[2] + kk * step[2]], -1)
  t = np.asarray(tris, np.float64)
  for flat in np.flatnonzero(radii.ravel() > 0):
    p = pts.reshape(-1, 3)[flat]
    q, d2 = closest_points_on_triangles(np.repeat(p[None], len(t), 0), t)
    best = int(np.argmin(d2))
    if not d2[best] < radii.ravel()[flat] ** 2:
      continue
    d = np.sqrt(d2[best])
    dist.ravel()[flat] = d
    face.ravel()[flat] = best
    if np.asarray(ties).ravel()[flat]:
      hit = np.flatnonzero(d2 < (d + tie_eps) ** 2)
      tv.append(np.full(len(hit), flat))
      tf.append(hit)
      tp.append(q[hit])
  none = np.zeros(0, np.int64)
  return dist, face, (np.concatenate(tv) if tv else none, np.concatenate(tf) if tf else none,
                      np.concatenate(tp) if tp else np.zeros((0, 3)))


def faces_within(points, radii, tris):
  """Brute-force twin of `_kernels.bvh_faces_within`: (offsets [N+1], faces [M] ascending per point,
  closest points [M,3]) of the faces with squared distance < radius^2."""
  t = np.asarray(tris, np.float64)
  offsets, fs, qs = [0], [], []
  for p, r in zip(np.asarray(points, np.float64), np.asarray(radii, np.float64)):
    q, d2 = closest_points_on_triangles(np.repeat(p[None], len(t), 0), t)
    hit = np.flatnonzero(d2 < r * r) if r > 0 else np.zeros(0, np.int64)
    fs.append(hit)
    qs.append(q[hit])
    offsets.append(offsets[-1] + len(hit))
  return np.array(offsets, np.int64), np.concatenate(fs).astype(np.int64), np.concatenate(qs).reshape(-1, 3)


def _c_quotient(a, b):
  """C's a / b for ints (truncates toward zero)."""
  q = abs(a) // abs(b)
  return q if (a >= 0) == (b > 0) else -q


def _span_voxels(a, b):
  """Voxels of GAPS's integer 3D line a -> b (tuples x, y, z), plain Python."""
  d = [b[c] - a[c] for c in range(3)]
  n = max(abs(x) for x in d)
  if n == 0:
    return [tuple(a)]
  major = [abs(x) for x in d].index(n)  # first axis with the largest extent
  out = []
  p = list(a)
  rest = {c: 0 for c in range(3) if c != major}
  for _ in range(n + 1):
    out.append(tuple(p))
    p[major] += 1 if d[major] >= 0 else -1
    for c in rest:
      rest[c] += abs(d[c])
      p[c] += (1 if d[c] >= 0 else -1) * (rest[c] // n)
      rest[c] %= n
  return out


def rasterize_triangles(grid_tris, shape):
  """Plain-Python twin of `_grid_kernels.rasterize_triangles` (GAPS's integer triangle sweep)."""
  mask = np.zeros(tuple(shape), bool)
  for tri in np.asarray(grid_tris, np.float64):
    pts = [[int(x + 0.5) for x in corner] for corner in tri]
    ext = [max(p[c] for p in pts) - min(p[c] for p in pts) for c in range(3)]
    axis = 1 if ext[1] > ext[0] and ext[1] > ext[2] else (2 if ext[2] > ext[0] else 0)
    # Descending along axis; ties keep the earlier corner first (as GAPS's comparisons do).
    top = max(range(3), key=lambda i: (pts[i][axis], -i))
    others = [i for i in range(3) if i != top]
    mid, bot = (others if pts[others[0]][axis] >= pts[others[1]][axis] else others[::-1])
    q1, q2, q3 = pts[top], pts[mid], pts[bot]
    voxels = []
    e1, e2 = list(q1), list(q1)

    def walk(edge, acc, rate, den):
      for c in range(3):
        acc[c] += rate[c]
        step = _c_quotient(acc[c], den)
        edge[c] += step
        acc[c] -= step * den

    upper, full = q1[axis] - q2[axis], q1[axis] - q3[axis]
    if upper == 0:
      e2 = list(q2)
    else:
      acc1, acc2 = [0, 0, 0], [0, 0, 0]
      rate1 = [(q2[c] - q1[c]) * full for c in range(3)]
      rate2 = [(q3[c] - q1[c]) * upper for c in range(3)]
      for _ in range(upper):
        voxels += _span_voxels(e1, e2)
        walk(e1, acc1, rate1, upper * full)
        walk(e2, acc2, rate2, upper * full)
    lower = q2[axis] - q3[axis]
    if lower == 0:
      voxels += _span_voxels(q2, q3)
    else:
      h1, h2 = e1[axis] - q3[axis], e2[axis] - q3[axis]
      acc1, acc2 = [0, 0, 0], [0, 0, 0]
      rate1 = [(q3[c] - e1[c]) * h2 for c in range(3)]
      rate2 = [(q3[c] - e2[c]) * h1 for c in range(3)]
      for _ in range(lower + 1):
        voxels += _span_voxels(e1, e2)
        walk(e1, acc1, rate1, h1 * h2)
        walk(e2, acc2, rate2, h1 * h2)
    for x, y, z in voxels:
      if 0 <= x < shape[2] and 0 <= y < shape[1] and 0 <= z < shape[0]:
        mask[z, y, x] = True
  return mask


def squared_distance_transform(marked):
  """Brute-force exact squared Euclidean distance (voxel units) to the nearest marked voxel; where nothing is
  marked, 3 (R + 1)^2 (R = largest resolution). Twin of `_grid_kernels.squared_distance_transform`."""
  marked = np.asarray(marked, bool)
  res = max(marked.shape)
  if not marked.any():
    return np.full(marked.shape, 3.0 * (res + 1) ** 2)
  seeds = np.argwhere(marked)
  cells = np.argwhere(np.ones(marked.shape, bool))
  d2 = np.min(((cells[:, None, :] - seeds[None, :, :]) ** 2).sum(-1), axis=1)
  return d2.reshape(marked.shape).astype(np.float64)


def refinement_radii(grid_distance, spacing, max_distance):
  """Vectorized twin of `_grid_kernels.refinement_radii`."""
  g = np.asarray(grid_distance, np.float64)
  r = np.maximum(g, spacing)
  active = (g <= max_distance) & (r < max_distance)
  out = np.where(active, r, 0.0)
  grow = active.copy()
  while grow.any():
    out[grow] *= 1.25
    grow &= out < max_distance
  return out


def smooth_band(values, lo, hi):
  """Twin of `_grid_kernels.smooth_band` with shifted copies of a zero-padded grid."""
  v = np.asarray(values, np.float64)
  padded = np.pad(v, 1)
  valid = np.pad(np.ones(v.shape), 1)
  num = np.zeros(v.shape)
  den = np.zeros(v.shape)
  nz, ny, nx = v.shape
  for dz in (-1, 0, 1):
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        w = 2.0 ** -(dx + dy + dz)
        sl = (slice(1 + dz, 1 + dz + nz), slice(1 + dy, 1 + dy + ny), slice(1 + dx, 1 + dx + nx))
        num += w * padded[sl] * valid[sl]
        den += w * valid[sl]
  band = (np.abs(v) >= lo) & (np.abs(v) <= hi)
  return np.where(band, num / den, v)


def fill_holes(values):
  """Twin of `_grid_kernels.fill_holes` (returns a new grid): np.interp over each line's zero runs between two
  non-zero values, along z, then y, then x."""
  v = np.array(values, np.float64)
  for axis in (0, 1, 2):
    lines = np.moveaxis(v, axis, -1).copy()
    flat = lines.reshape(-1, lines.shape[-1])
    for line in flat:
      known = np.flatnonzero(line != 0)
      if len(known) < 2:
        continue
      gaps = np.arange(known[0], known[-1] + 1)
      gaps = gaps[line[gaps] == 0]
      line[gaps] = np.interp(gaps, known, line[known])
    v = np.ascontiguousarray(np.moveaxis(flat.reshape(lines.shape), -1, axis))
  return v


def disk_distances(points, centers, normals, radii):
  """Vectorized twin of `_grid_kernels.disk_distances`."""
  p, c, n = (np.asarray(x, np.float64) for x in (points, centers, normals))
  proj = p - np.einsum('ij,ij->i', p - c, n)[:, None] * n
  tangent = proj - c
  length = np.linalg.norm(tangent, axis=1)
  scale = np.where(length > 1e-6, np.minimum(length, radii) / np.where(length > 0, length, 1.0), 0.0)
  return np.linalg.norm(p - (c + scale[:, None] * tangent), axis=1)


def gaps_face_insertion(edges, forward, n_edges):
  """Plain-Python twin of `_kernels.gaps_face_insertion` (sets of taken edge sides)."""
  taken = set()
  status = [2] * len(edges)
  sides = lambda f, flip: [(int(e), bool(fw) != flip) for e, fw in zip(edges[f], forward[f])]
  later = []
  for f in range(len(edges)):
    if taken.isdisjoint(sides(f, False)):
      taken.update(sides(f, False))
      status[f] = 0
    else:
      later.append(f)
  for f in later:
    for flip in (False, True):
      if taken.isdisjoint(sides(f, flip)):
        taken.update(sides(f, flip))
        status[f] = int(flip)
        break
  occupied = np.zeros((n_edges, 2), bool)
  for e, fw in taken:
    occupied[e, 0 if fw else 1] = True
  return np.array(status, np.int64), occupied

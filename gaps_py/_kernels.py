"""Numba kernels for triangle-mesh geometry queries, plus the numpy wrapper `MeshSearchTree`.

This plays the role of GAPS's `R3MeshSearchTree` (pkgs/R3Shapes): a bounding volume hierarchy (BVH) over
the triangles answers closest-point queries (exact point-triangle distance), first ray hits, and generalized
winding numbers (Jacobson et al. 2013, with the far-field expansion of Barill et al. 2018), which give an
inside/outside decision that also works for triangle soups and meshes with holes. A grid kernel computes exact
distance fields on regular grids, warm-starting each query from its neighbour's answer.

All kernels are serial (one core), `cache=True`, and work in float64. Each has a slow plain-numpy twin in
`gaps_py/_reference.py` that the tests compare it with. Frames: whatever frame the caller's vertices are in
(the gaps frame in the LDIF pipeline).

BVH layout (arrays of length M = node count; node 0 is the root; children have larger indices than parents):
  node_lo, node_hi float64 [M,3]   axis-aligned bounds of the node's triangles
  left, right      int64 [M]       child node indices (-1 for leaves)
  start, count     int64 [M]       leaves: triangles start..start+count-1 of the BVH order; internal: count 0
  order            int64 [F]       BVH order -> original face index
Triangles are passed to the queries already permuted into BVH order (`tris[i] = mesh_tris[order[i]]`).
"""

import collections
import hashlib
import math
import threading

import numba
import numpy as np

_FOUR_PI = 4.0 * math.pi


# ------------------------------------------------------------------------------------------------------------
# Primitives
# ------------------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, inline='always')
def _segment_closest(px, py, pz, ax, ay, az, bx, by, bz):
  """Closest point to p on segment ab; returns (qx, qy, qz, squared distance)."""
  ex, ey, ez = bx - ax, by - ay, bz - az
  ll = ex * ex + ey * ey + ez * ez
  t = 0.0
  if ll > 0.0:
    t = ((px - ax) * ex + (py - ay) * ey + (pz - az) * ez) / ll
    if t < 0.0:
      t = 0.0
    elif t > 1.0:
      t = 1.0
  qx, qy, qz = ax + t * ex, ay + t * ey, az + t * ez
  dx, dy, dz = px - qx, py - qy, pz - qz
  return qx, qy, qz, dx * dx + dy * dy + dz * dz


@numba.njit(cache=True, nogil=True)
def closest_point_on_triangle(px, py, pz, tri):
  """Closest point to p on triangle tri (float64 [3,3], rows = corners).

  Classifies p against the Voronoi regions of the corners, edges and face (the standard region test of
  Ericson, "Real-Time Collision Detection", 5.1.5). Degenerate (zero-area) triangles fall back to the closest
  of their three edges. Returns (qx, qy, qz, squared distance).
  """
  ax, ay, az = tri[0, 0], tri[0, 1], tri[0, 2]
  bx, by, bz = tri[1, 0], tri[1, 1], tri[1, 2]
  cx, cy, cz = tri[2, 0], tri[2, 1], tri[2, 2]
  abx, aby, abz = bx - ax, by - ay, bz - az
  acx, acy, acz = cx - ax, cy - ay, cz - az
  apx, apy, apz = px - ax, py - ay, pz - az
  d1 = abx * apx + aby * apy + abz * apz
  d2 = acx * apx + acy * apy + acz * apz
  qx, qy, qz = 0.0, 0.0, 0.0
  region = -1
  if d1 <= 0.0 and d2 <= 0.0:
    qx, qy, qz = ax, ay, az
    region = 0
  if region < 0:
    bpx, bpy, bpz = px - bx, py - by, pz - bz
    d3 = abx * bpx + aby * bpy + abz * bpz
    d4 = acx * bpx + acy * bpy + acz * bpz
    if d3 >= 0.0 and d4 <= d3:
      qx, qy, qz = bx, by, bz
      region = 1
    else:
      cpx, cpy, cpz = px - cx, py - cy, pz - cz
      d5 = abx * cpx + aby * cpy + abz * cpz
      d6 = acx * cpx + acy * cpy + acz * cpz
      if d6 >= 0.0 and d5 <= d6:
        qx, qy, qz = cx, cy, cz
        region = 2
      else:
        vc = d1 * d4 - d3 * d2
        vb = d5 * d2 - d1 * d6
        va = d3 * d6 - d5 * d4
        if vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0 and d1 - d3 > 0.0:
          v = d1 / (d1 - d3)
          qx, qy, qz = ax + v * abx, ay + v * aby, az + v * abz
          region = 3
        elif vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0 and d2 - d6 > 0.0:
          w = d2 / (d2 - d6)
          qx, qy, qz = ax + w * acx, ay + w * acy, az + w * acz
          region = 4
        elif va <= 0.0 and (d4 - d3) >= 0.0 and (d5 - d6) >= 0.0 and (d4 - d3) + (d5 - d6) > 0.0:
          w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
          qx, qy, qz = bx + w * (cx - bx), by + w * (cy - by), bz + w * (cz - bz)
          region = 5
        else:
          denom = va + vb + vc
          if denom > 0.0:
            v = vb / denom
            w = vc / denom
            qx = ax + abx * v + acx * w
            qy = ay + aby * v + acy * w
            qz = az + abz * v + acz * w
            region = 6
  if region < 0:
    # Degenerate triangle (or numerically inconsistent region tests): nearest of the three edges.
    qx, qy, qz, best = _segment_closest(px, py, pz, ax, ay, az, bx, by, bz)
    sx, sy, sz, s2 = _segment_closest(px, py, pz, bx, by, bz, cx, cy, cz)
    if s2 < best:
      qx, qy, qz, best = sx, sy, sz, s2
    sx, sy, sz, s2 = _segment_closest(px, py, pz, cx, cy, cz, ax, ay, az)
    if s2 < best:
      qx, qy, qz, best = sx, sy, sz, s2
    return qx, qy, qz, best
  dx, dy, dz = px - qx, py - qy, pz - qz
  return qx, qy, qz, dx * dx + dy * dy + dz * dz


@numba.njit(cache=True, nogil=True)
def closest_points_on_triangles(points, tris):
  """Row-wise closest points: points float64 [N,3], tris float64 [N,3,3] -> (closest [N,3], sq. dist [N])."""
  n = points.shape[0]
  q = np.empty((n, 3))
  d2 = np.empty(n)
  for i in range(n):
    qx, qy, qz, dd = closest_point_on_triangle(points[i, 0], points[i, 1], points[i, 2], tris[i])
    q[i, 0], q[i, 1], q[i, 2] = qx, qy, qz
    d2[i] = dd
  return q, d2


@numba.njit(cache=True, nogil=True, inline='always')
def _ray_triangle(ox, oy, oz, dx, dy, dz, tri, tmin, tmax):
  """Ray parameter t where o + t d hits triangle tri (Moller-Trumbore); inf if none in [tmin, tmax]."""
  e1x, e1y, e1z = tri[1, 0] - tri[0, 0], tri[1, 1] - tri[0, 1], tri[1, 2] - tri[0, 2]
  e2x, e2y, e2z = tri[2, 0] - tri[0, 0], tri[2, 1] - tri[0, 1], tri[2, 2] - tri[0, 2]
  hx = dy * e2z - dz * e2y
  hy = dz * e2x - dx * e2z
  hz = dx * e2y - dy * e2x
  det = e1x * hx + e1y * hy + e1z * hz
  if det == 0.0:
    return np.inf
  inv = 1.0 / det
  sx, sy, sz = ox - tri[0, 0], oy - tri[0, 1], oz - tri[0, 2]
  u = (sx * hx + sy * hy + sz * hz) * inv
  if u < 0.0 or u > 1.0:
    return np.inf
  qx = sy * e1z - sz * e1y
  qy = sz * e1x - sx * e1z
  qz = sx * e1y - sy * e1x
  v = (dx * qx + dy * qy + dz * qz) * inv
  if v < 0.0 or u + v > 1.0:
    return np.inf
  t = (e2x * qx + e2y * qy + e2z * qz) * inv
  if t < tmin or t > tmax:
    return np.inf
  return t


@numba.njit(cache=True, nogil=True, inline='always')
def _solid_angle(qx, qy, qz, tri):
  """Signed solid angle of triangle tri seen from q (van Oosterom-Strackee); positive when q sees the back."""
  ax, ay, az = tri[0, 0] - qx, tri[0, 1] - qy, tri[0, 2] - qz
  bx, by, bz = tri[1, 0] - qx, tri[1, 1] - qy, tri[1, 2] - qz
  cx, cy, cz = tri[2, 0] - qx, tri[2, 1] - qy, tri[2, 2] - qz
  la = math.sqrt(ax * ax + ay * ay + az * az)
  lb = math.sqrt(bx * bx + by * by + bz * bz)
  lc = math.sqrt(cx * cx + cy * cy + cz * cz)
  triple = ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx)
  if triple == 0.0:
    return 0.0
  den = la * lb * lc + (ax * bx + ay * by + az * bz) * lc + (bx * cx + by * cy + bz * cz) * la + \
      (cx * ax + cy * ay + cz * az) * lb
  return 2.0 * math.atan2(triple, den)


@numba.njit(cache=True, nogil=True)
def triangle_solid_angles(points, tris):
  """Exact winding numbers by summing all triangles' solid angles: points [N,3], tris [F,3,3] -> [N].

  O(N F); used for small inputs and as the exact reference of `bvh_winding_numbers`.
  """
  n = points.shape[0]
  out = np.zeros(n)
  for i in range(n):
    s = 0.0
    for f in range(tris.shape[0]):
      s += _solid_angle(points[i, 0], points[i, 1], points[i, 2], tris[f])
    out[i] = s / _FOUR_PI
  return out


# ------------------------------------------------------------------------------------------------------------
# BVH construction
# ------------------------------------------------------------------------------------------------------------


_SAH_BINS = 16


@numba.njit(cache=True)
def build_bvh(tri_lo, tri_hi, centroids, leaf_size):
  """Builds a BVH with binned surface-area-heuristic (SAH) splits.

  Each node with more than leaf_size triangles is split where the SAH cost n_L * area(L) + n_R * area(R) is
  least among 16 equal-width centroid bins on each axis (first minimum in axis-then-bin order); the partition
  is stable, so the result is deterministic. Triangles whose centroids coincide are halved in order.
  Args:
    tri_lo, tri_hi: float64 [F,3] per-triangle bounds.
    centroids: float64 [F,3] per-triangle centroids (split keys).
    leaf_size: int >= 1, the most triangles in a leaf.
  Returns:
    (node_lo [M,3], node_hi [M,3], left [M], right [M], start [M], count [M], order [F]) as in the module doc.
  """
  f_count = tri_lo.shape[0]
  nb = _SAH_BINS
  max_nodes = max(1, 2 * f_count)
  order = np.arange(f_count)
  scratch = np.empty(f_count, np.int64)
  node_lo = np.empty((max_nodes, 3))
  node_hi = np.empty((max_nodes, 3))
  left = np.full(max_nodes, -1, np.int64)
  right = np.full(max_nodes, -1, np.int64)
  start = np.zeros(max_nodes, np.int64)
  count = np.zeros(max_nodes, np.int64)
  stack_node = np.empty(max_nodes, np.int64)
  stack_s = np.empty(max_nodes, np.int64)
  stack_e = np.empty(max_nodes, np.int64)
  bin_count = np.zeros((3, nb), np.int64)
  bin_lo = np.empty((3, nb, 3))
  bin_hi = np.empty((3, nb, 3))
  right_area = np.empty(nb)
  right_count = np.empty(nb, np.int64)
  stack_node[0], stack_s[0], stack_e[0] = 0, 0, f_count
  sp = 1
  n_nodes = 1
  while sp > 0:
    sp -= 1
    node, s, e = stack_node[sp], stack_s[sp], stack_e[sp]
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    clo = np.full(3, np.inf)
    chi = np.full(3, -np.inf)
    for i in range(s, e):
      t = order[i]
      for a in range(3):
        lo[a] = min(lo[a], tri_lo[t, a])
        hi[a] = max(hi[a], tri_hi[t, a])
        clo[a] = min(clo[a], centroids[t, a])
        chi[a] = max(chi[a], centroids[t, a])
    for a in range(3):
      node_lo[node, a] = lo[a]
      node_hi[node, a] = hi[a]
    if e - s <= leaf_size:
      start[node] = s
      count[node] = e - s
      continue
    # Bin the centroids along each axis.
    bin_count[:] = 0
    bin_lo[:] = np.inf
    bin_hi[:] = -np.inf
    for a in range(3):
      extent = chi[a] - clo[a]
      if not extent > 0.0:
        continue
      scale = nb / extent
      for i in range(s, e):
        t = order[i]
        b = min(int((centroids[t, a] - clo[a]) * scale), nb - 1)
        bin_count[a, b] += 1
        for c in range(3):
          bin_lo[a, b, c] = min(bin_lo[a, b, c], tri_lo[t, c])
          bin_hi[a, b, c] = max(bin_hi[a, b, c], tri_hi[t, c])
    best_cost = np.inf
    best_axis = -1
    best_bin = -1
    for a in range(3):
      if not chi[a] - clo[a] > 0.0:
        continue
      # Suffix sweep: right side = bins b+1..nb-1.
      rl = np.full(3, np.inf)
      rh = np.full(3, -np.inf)
      rc = 0
      for b in range(nb - 1, 0, -1):
        rc += bin_count[a, b]
        for c in range(3):
          rl[c] = min(rl[c], bin_lo[a, b, c])
          rh[c] = max(rh[c], bin_hi[a, b, c])
        right_count[b - 1] = rc
        if rc > 0:
          dx, dy, dz = rh[0] - rl[0], rh[1] - rl[1], rh[2] - rl[2]
          right_area[b - 1] = dx * dy + dy * dz + dz * dx
        else:
          right_area[b - 1] = 0.0
      ll = np.full(3, np.inf)
      lh = np.full(3, -np.inf)
      lc = 0
      for b in range(nb - 1):
        lc += bin_count[a, b]
        for c in range(3):
          ll[c] = min(ll[c], bin_lo[a, b, c])
          lh[c] = max(lh[c], bin_hi[a, b, c])
        if lc == 0 or right_count[b] == 0:
          continue
        dx, dy, dz = lh[0] - ll[0], lh[1] - ll[1], lh[2] - ll[2]
        cost = lc * (dx * dy + dy * dz + dz * dx) + right_count[b] * right_area[b]
        if cost < best_cost:
          best_cost = cost
          best_axis = a
          best_bin = b
    if best_axis < 0:
      mid = (s + e) // 2
    else:
      # Stable partition: bins <= best_bin first.
      a = best_axis
      scale = nb / (chi[a] - clo[a])
      n_left = 0
      n_right = 0
      for i in range(s, e):
        t = order[i]
        b = min(int((centroids[t, a] - clo[a]) * scale), nb - 1)
        if b <= best_bin:
          order[s + n_left] = t
          n_left += 1
        else:
          scratch[n_right] = t
          n_right += 1
      for i in range(n_right):
        order[s + n_left + i] = scratch[i]
      mid = s + n_left
    lc = n_nodes
    rc = n_nodes + 1
    n_nodes += 2
    left[node] = lc
    right[node] = rc
    stack_node[sp], stack_s[sp], stack_e[sp] = rc, mid, e
    sp += 1
    stack_node[sp], stack_s[sp], stack_e[sp] = lc, s, mid
    sp += 1
  return (node_lo[:n_nodes].copy(), node_hi[:n_nodes].copy(), left[:n_nodes].copy(), right[:n_nodes].copy(),
          start[:n_nodes].copy(), count[:n_nodes].copy(), order)


@numba.njit(cache=True, inline='always')
def _area_normal_centroid(tri, out_n, out_c):
  e1x, e1y, e1z = tri[1, 0] - tri[0, 0], tri[1, 1] - tri[0, 1], tri[1, 2] - tri[0, 2]
  e2x, e2y, e2z = tri[2, 0] - tri[0, 0], tri[2, 1] - tri[0, 1], tri[2, 2] - tri[0, 2]
  out_n[0] = 0.5 * (e1y * e2z - e1z * e2y)
  out_n[1] = 0.5 * (e1z * e2x - e1x * e2z)
  out_n[2] = 0.5 * (e1x * e2y - e1y * e2x)
  for c in range(3):
    out_c[c] = (tri[0, c] + tri[1, c] + tri[2, c]) / 3.0


@numba.njit(cache=True)
def bvh_dipoles(tris, left, right, start, count, node_lo, node_hi):
  """Per-node far-field expansion data for winding numbers (bottom-up over the BVH).

  Args: tris float64 [F,3,3] in BVH order; the BVH arrays.
  Returns:
    area_normal float64 [M,3]: N = sum over the node's triangles of area * unit normal (half cross products).
    center float64 [M,3]: c = area-weighted mean of the triangle centroids (bounds centre if the area is 0).
    moment float64 [M,3,3]: T = sum of (triangle centroid - c) outer (area * unit normal), the 2nd-order term.
    radius float64 [M]: largest distance from c to a corner of the node bounds.
  """
  m = left.shape[0]
  area_normal = np.zeros((m, 3))
  center = np.zeros((m, 3))
  moment = np.zeros((m, 3, 3))
  area = np.zeros(m)
  radius = np.zeros(m)
  tn = np.empty(3)
  tc = np.empty(3)
  for node in range(m - 1, -1, -1):
    if count[node] > 0:
      for i in range(start[node], start[node] + count[node]):
        _area_normal_centroid(tris[i], tn, tc)
        a = math.sqrt(tn[0] * tn[0] + tn[1] * tn[1] + tn[2] * tn[2])
        area[node] += a
        for c in range(3):
          area_normal[node, c] += tn[c]
          center[node, c] += a * tc[c]
    else:
      for child in (left[node], right[node]):
        for c in range(3):
          area_normal[node, c] += area_normal[child, c]
          center[node, c] += center[child, c] * area[child]
        area[node] += area[child]
    if area[node] > 0.0:
      for c in range(3):
        center[node, c] /= area[node]
    else:
      for c in range(3):
        center[node, c] = 0.5 * (node_lo[node, c] + node_hi[node, c])
    if count[node] > 0:
      for i in range(start[node], start[node] + count[node]):
        _area_normal_centroid(tris[i], tn, tc)
        for r in range(3):
          for c in range(3):
            moment[node, r, c] += (tc[r] - center[node, r]) * tn[c]
    else:
      for child in (left[node], right[node]):
        for r in range(3):
          for c in range(3):
            shift = (center[child, r] - center[node, r]) * area_normal[child, c]
            moment[node, r, c] += moment[child, r, c] + shift
    r2 = 0.0
    for corner in range(8):
      x = node_hi[node, 0] if corner & 1 else node_lo[node, 0]
      y = node_hi[node, 1] if corner & 2 else node_lo[node, 1]
      z = node_hi[node, 2] if corner & 4 else node_lo[node, 2]
      dx, dy, dz = x - center[node, 0], y - center[node, 1], z - center[node, 2]
      r2 = max(r2, dx * dx + dy * dy + dz * dz)
    radius[node] = math.sqrt(r2)
  return area_normal, center, moment, radius


# ------------------------------------------------------------------------------------------------------------
# BVH queries
# ------------------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def bvh_depth(left, right):
  """Largest node depth of a BVH (root depth 0); children have larger indices than their parents."""
  depth = np.zeros(left.shape[0], np.int64)
  deepest = 0
  for node in range(left.shape[0]):
    if left[node] >= 0:
      depth[left[node]] = depth[node] + 1
      depth[right[node]] = depth[node] + 1
      deepest = max(deepest, depth[node] + 1)
  return deepest


@numba.njit(cache=True, nogil=True)
def _stack_size(left, right):
  # Traversals pop one node and push at most two per level, so depth + 2 entries suffice; keep a margin.
  return 2 * bvh_depth(left, right) + 8


@numba.njit(cache=True, nogil=True, inline='always')
def _box_d2(px, py, pz, node_lo, node_hi, node):
  dx = max(node_lo[node, 0] - px, 0.0, px - node_hi[node, 0])
  dy = max(node_lo[node, 1] - py, 0.0, py - node_hi[node, 1])
  dz = max(node_lo[node, 2] - pz, 0.0, pz - node_hi[node, 2])
  return dx * dx + dy * dy + dz * dz


@numba.njit(cache=True, nogil=True, inline='always')
def _push_children(stack, stack_d, sp, node, node_lo, node_hi, left, right, px, py, pz, limit):
  """Pushes the children of inner `node` whose box is closer than `limit` (squared), the nearer one last so
  that it is popped first. Returns the new stack size."""
  lc = left[node]
  rc = right[node]
  dl = _box_d2(px, py, pz, node_lo, node_hi, lc)
  dr = _box_d2(px, py, pz, node_lo, node_hi, rc)
  if dl <= dr:
    near, d_near, far, d_far = lc, dl, rc, dr
  else:
    near, d_near, far, d_far = rc, dr, lc, dl
  if d_far < limit:
    stack[sp], stack_d[sp] = far, d_far
    sp += 1
  if d_near < limit:
    stack[sp], stack_d[sp] = near, d_near
    sp += 1
  return sp


@numba.njit(cache=True, nogil=True)
def _closest_one(px, py, pz, best, best_face, tris, node_lo, node_hi, left, right, start, count, stack,
                 stack_d):
  """One closest-point query; `best` is an initial squared-distance bound, `best_face` (or -1) a seed triangle
  whose distance tightens it. Returns (squared distance, triangle, closest x, y, z)."""
  qx, qy, qz = np.nan, np.nan, np.nan
  if best_face >= 0:
    qx, qy, qz, d2 = closest_point_on_triangle(px, py, pz, tris[best_face])
    if d2 <= best:
      best = d2
    else:
      best_face = -1
      qx, qy, qz = np.nan, np.nan, np.nan
  stack[0] = 0
  stack_d[0] = _box_d2(px, py, pz, node_lo, node_hi, 0)
  sp = 1
  while sp > 0:
    sp -= 1
    if stack_d[sp] >= best:
      continue
    node = stack[sp]
    if count[node] > 0:
      for i in range(start[node], start[node] + count[node]):
        if i == best_face:
          continue
        cx, cy, cz, d2 = closest_point_on_triangle(px, py, pz, tris[i])
        if d2 < best:
          best = d2
          best_face = i
          qx, qy, qz = cx, cy, cz
    else:
      sp = _push_children(stack, stack_d, sp, node, node_lo, node_hi, left, right, px, py, pz, best)
  return best, best_face, qx, qy, qz


@numba.njit(cache=True, nogil=True)
def bvh_closest(points, hint_faces, chain, tris, node_lo, node_hi, left, right, start, count):
  """Exact closest points on the mesh.

  Args:
    points: float64 [N,3] query points.
    hint_faces: int64 [N] a triangle (BVH order) likely to be near each point, or -1; seeds the search bound.
    chain: bool; if true, a point without a hint is seeded with the previous point's closest triangle (fast
      when the points are sorted along a space-filling curve).
    tris: float64 [F,3,3] triangles in BVH order; the BVH arrays.
  Returns:
    (squared distance [N], closest triangle [N] in BVH order, closest point [N,3]).
  """
  n = points.shape[0]
  d2 = np.empty(n)
  face = np.empty(n, np.int64)
  q = np.empty((n, 3))
  stack = np.empty(_stack_size(left, right), np.int64)
  stack_d = np.empty(stack.shape[0])
  for i in range(n):
    hint = hint_faces[i]
    if hint < 0 and chain and i > 0:
      hint = face[i - 1]
    best, bf, qx, qy, qz = _closest_one(points[i, 0], points[i, 1], points[i, 2], np.inf, hint, tris,
                                        node_lo, node_hi, left, right, start, count, stack, stack_d)
    d2[i] = best
    face[i] = bf
    q[i, 0], q[i, 1], q[i, 2] = qx, qy, qz
  return d2, face, q


@numba.njit(cache=True, nogil=True)
def grid_closest(origin, step, shape, tris, node_lo, node_hi, left, right, start, count):
  """Exact unsigned distance at the points of a regular grid (x fastest), warm-starting each query.

  Grid point (i, j, k) sits at origin + (i, j, k) * step. Each query is seeded with the closest triangle of
  the previous point along the scan (x, else y, else z), which makes the search bound tight.
  Args:
    origin float64 [3], step float64 [3] (per-axis spacing), shape int64 [3] = (Z, Y, X).
  Returns:
    (distance float64 [Z,Y,X], closest triangle int64 [Z,Y,X] in BVH order).
  """
  nz, ny, nx = shape[0], shape[1], shape[2]
  dist = np.empty((nz, ny, nx))
  face = np.empty((nz, ny, nx), np.int64)
  stack = np.empty(_stack_size(left, right), np.int64)
  stack_d = np.empty(stack.shape[0])
  for k in range(nz):
    pz = origin[2] + k * step[2]
    for j in range(ny):
      py = origin[1] + j * step[1]
      for i in range(nx):
        px = origin[0] + i * step[0]
        hint = -1
        if i > 0:
          hint = face[k, j, i - 1]
        elif j > 0:
          hint = face[k, j - 1, i]
        elif k > 0:
          hint = face[k - 1, j, i]
        best, bf, _, _, _ = _closest_one(px, py, pz, np.inf, hint, tris, node_lo, node_hi, left, right, start,
                                         count, stack, stack_d)
        dist[k, j, i] = math.sqrt(best)
        face[k, j, i] = bf
  return dist, face


@numba.njit(cache=True, nogil=True)
def grid_closest_fill(origin, step, dist, face, tris, node_lo, node_hi, left, right, start, count):
  """Completes a partly known exact distance grid in place: computes the points with face < 0.

  Same queries as `grid_closest` (each seeded with the previous point's closest triangle in scan order, known
  or computed), so the result equals `grid_closest`'s wherever the known entries are exact.
  Args: origin float64 [3], step float64 [3]; dist float64 [Z,Y,X] and face int64 [Z,Y,X] (BVH order, -1 where
    unknown), both updated. Returns: (dist, face).
  """
  nz, ny, nx = dist.shape
  stack = np.empty(_stack_size(left, right), np.int64)
  stack_d = np.empty(stack.shape[0])
  hint = -1
  for k in range(nz):
    pz = origin[2] + k * step[2]
    for j in range(ny):
      py = origin[1] + j * step[1]
      for i in range(nx):
        if face[k, j, i] >= 0:
          hint = face[k, j, i]
          continue
        px = origin[0] + i * step[0]
        best, bf, _, _, _ = _closest_one(px, py, pz, np.inf, hint, tris, node_lo, node_hi, left, right, start,
                                         count, stack, stack_d)
        dist[k, j, i] = math.sqrt(best)
        face[k, j, i] = bf
        hint = bf
  return dist, face


@numba.njit(cache=True, nogil=True)
def _resized_ints(values, used, size):
  """A new int64 [size] array holding values[:used] (element loops compile much faster than slice copies)."""
  out = np.empty(size, np.int64)
  for n in range(used):
    out[n] = values[n]
  return out


@numba.njit(cache=True, nogil=True)
def _resized_rows(values, used, size):
  """A new float64 [size,3] array holding values[:used]."""
  out = np.empty((size, 3))
  for n in range(used):
    out[n, 0], out[n, 1], out[n, 2] = values[n, 0], values[n, 1], values[n, 2]
  return out


@numba.njit(cache=True, nogil=True)
def _closest_with_ties(px, py, pz, best, best_face, eps, tris, node_lo, node_hi, left, right, start, count,
                       stack, stack_d, cand_f, cand_d2, cand_q):
  """Closest triangle within sqrt(best) of p, and every triangle with squared distance below (d + eps)^2,
  d the closest distance (eps >= 0). `best_face` (or -1) seeds the bound. Returns (squared distance,
  triangle or -1, number of candidates); candidates are the first rows of cand_f / cand_d2 / cand_q (each
  with room for every triangle) and include triangles the caller must filter against the final bound.
  (No branch on eps inside the traversal: that keeps compilation quick.)"""
  n_cand = 0
  lim = best
  if best_face >= 0:
    qx, qy, qz, d2 = closest_point_on_triangle(px, py, pz, tris[best_face])
    if d2 < best:
      best = d2
      r = math.sqrt(best) + eps
      lim = max(r * r, best)
      cand_f[0], cand_d2[0] = best_face, d2
      cand_q[0, 0], cand_q[0, 1], cand_q[0, 2] = qx, qy, qz
      n_cand = 1
    else:
      best_face = -1
  hint = best_face
  stack[0] = 0
  stack_d[0] = _box_d2(px, py, pz, node_lo, node_hi, 0)
  sp = 1
  while sp > 0:
    sp -= 1
    if stack_d[sp] >= lim:
      continue
    node = stack[sp]
    if count[node] > 0:
      for i in range(start[node], start[node] + count[node]):
        if i == hint:
          continue
        qx, qy, qz, d2 = closest_point_on_triangle(px, py, pz, tris[i])
        if d2 < lim:
          cand_f[n_cand], cand_d2[n_cand] = i, d2
          cand_q[n_cand, 0], cand_q[n_cand, 1], cand_q[n_cand, 2] = qx, qy, qz
          n_cand += 1
          if d2 < best:
            best = d2
            best_face = i
            r = math.sqrt(best) + eps
            lim = max(r * r, best)
    else:
      sp = _push_children(stack, stack_d, sp, node, node_lo, node_hi, left, right, px, py, pz, lim)
  return best, best_face, n_cand


@numba.njit(cache=True, nogil=True)
def grid_closest_within(origin, step, radii, ties, tie_eps, tris, node_lo, node_hi, left, right, start,
                        count):
  """Exact unsigned distance at the grid points with radii > 0, where a triangle lies closer than the radius;
  optionally also every triangle within that distance + tie_eps (GAPS msh2df's refinement followed by its
  CreatePoints FindAll, in one traversal).

  Points are visited in scan order (x fastest), each query seeded with the closest triangle of the previous
  answered point.
  Args:
    origin float64 [3], step float64 [3]: grid point (i, j, k) is origin + (i, j, k) * step.
    radii float64 [Z,Y,X]: search radius per point (world units); <= 0 skips the point.
    ties bool [Z,Y,X]: where to list the triangles with squared distance < (d + tie_eps)^2 (d = the found
      distance; nothing is listed where nothing is found). tie_eps > 0.
  Returns:
    distance float64 [Z,Y,X], NaN where skipped or nothing is within the radius;
    closest triangle int64 [Z,Y,X] in BVH order, -1 there;
    tie_voxel int64 [M] (flat grid index), tie_face int64 [M] (BVH order), tie_point float64 [M,3] (closest
      point on that triangle), grouped by voxel in scan order.
  """
  nz, ny, nx = radii.shape
  dist = np.full((nz, ny, nx), np.nan)
  face = np.full((nz, ny, nx), -1, np.int64)
  stack = np.empty(_stack_size(left, right), np.int64)
  stack_d = np.empty(stack.shape[0])
  cand_f = np.empty(tris.shape[0], np.int64)
  cand_d2 = np.empty(tris.shape[0])
  cand_q = np.empty((tris.shape[0], 3))
  cap = 1024
  tie_voxel = np.empty(cap, np.int64)
  tie_face = np.empty(cap, np.int64)
  tie_point = np.empty((cap, 3))
  m = 0
  hint = -1
  for k in range(nz):
    pz = origin[2] + k * step[2]
    for j in range(ny):
      py = origin[1] + j * step[1]
      for i in range(nx):
        r = radii[k, j, i]
        if not r > 0.0:
          continue
        px = origin[0] + i * step[0]
        eps = tie_eps if ties[k, j, i] else 0.0
        best, bf, n_cand = _closest_with_ties(
            px, py, pz, r * r, hint, eps, tris, node_lo, node_hi, left, right, start, count, stack, stack_d,
            cand_f, cand_d2, cand_q)
        if bf < 0:
          continue
        d = math.sqrt(best)
        dist[k, j, i] = d
        face[k, j, i] = bf
        hint = bf
        if eps > 0.0:
          lim = (d + eps) * (d + eps)
          for c in range(n_cand):
            if cand_d2[c] < lim:
              if m == cap:
                cap *= 2
                tie_voxel = _resized_ints(tie_voxel, m, cap)
                tie_face = _resized_ints(tie_face, m, cap)
                tie_point = _resized_rows(tie_point, m, cap)
              tie_voxel[m] = (k * ny + j) * nx + i
              tie_face[m] = cand_f[c]
              tie_point[m, 0], tie_point[m, 1], tie_point[m, 2] = cand_q[c, 0], cand_q[c, 1], cand_q[c, 2]
              m += 1
  return (dist, face, _resized_ints(tie_voxel, m, m), _resized_ints(tie_face, m, m),
          _resized_rows(tie_point, m, m))


@numba.njit(cache=True, nogil=True)
def bvh_faces_within(points, radii, tris, node_lo, node_hi, left, right, start, count):
  """All triangles closer than a radius to each point, with their closest points (GAPS FindAll).

  Args:
    points float64 [N,3]; radii float64 [N] (a triangle counts if its squared distance < radius^2);
    tris in BVH order; the BVH arrays.
  Returns:
    (offsets int64 [N+1]: point n's hits are rows offsets[n]:offsets[n+1];
     faces int64 [M] in BVH order; closest points float64 [M,3]), hits of one point in BVH leaf order.
  """
  n = points.shape[0]
  offsets = np.zeros(n + 1, np.int64)
  cap = max(16, 4 * n)
  faces = np.empty(cap, np.int64)
  closest = np.empty((cap, 3))
  m = 0
  stack = np.empty(_stack_size(left, right), np.int64)
  for r in range(n):
    px, py, pz = points[r, 0], points[r, 1], points[r, 2]
    lim = radii[r] * radii[r]
    if radii[r] > 0.0:
      sp = 1
      stack[0] = 0
      while sp > 0:
        sp -= 1
        node = stack[sp]
        if _box_d2(px, py, pz, node_lo, node_hi, node) >= lim:
          continue
        if count[node] > 0:
          for f in range(start[node], start[node] + count[node]):
            qx, qy, qz, d2 = closest_point_on_triangle(px, py, pz, tris[f])
            if d2 < lim:
              if m == cap:
                cap *= 2
                faces = _resized_ints(faces, m, cap)
                closest = _resized_rows(closest, m, cap)
              faces[m] = f
              closest[m, 0], closest[m, 1], closest[m, 2] = qx, qy, qz
              m += 1
        else:
          stack[sp] = right[node]
          stack[sp + 1] = left[node]
          sp += 2
    offsets[r + 1] = m
  return offsets, _resized_ints(faces, m, m), _resized_rows(closest, m, m)


@numba.njit(cache=True, nogil=True)
def bvh_first_hit(origins, directions, tmin, tmax, tris, node_lo, node_hi, left, right, start, count):
  """Smallest ray parameter t in [tmin, tmax] at which o + t d hits a triangle (inf if none).

  Args: origins, directions float64 [N,3] (directions need not be unit; t is in units of |d|); tmin, tmax.
  Returns: (t float64 [N], hit triangle int64 [N] in BVH order or -1).
  """
  n = origins.shape[0]
  t_out = np.empty(n)
  f_out = np.empty(n, np.int64)
  stack = np.empty(_stack_size(left, right), np.int64)
  for r in range(n):
    ox, oy, oz = origins[r, 0], origins[r, 1], origins[r, 2]
    dx, dy, dz = directions[r, 0], directions[r, 1], directions[r, 2]
    ix = 1.0 / dx if dx != 0.0 else np.inf
    iy = 1.0 / dy if dy != 0.0 else np.inf
    iz = 1.0 / dz if dz != 0.0 else np.inf
    best = tmax
    hit = -1
    sp = 1
    stack[0] = 0
    while sp > 0:
      sp -= 1
      node = stack[sp]
      # Slab test against [tmin, best].
      t0 = tmin
      t1 = best
      ok = True
      for a in range(3):
        o = ox if a == 0 else (oy if a == 1 else oz)
        inv = ix if a == 0 else (iy if a == 1 else iz)
        if inv == np.inf:
          if o < node_lo[node, a] or o > node_hi[node, a]:
            ok = False
            break
          continue
        ta = (node_lo[node, a] - o) * inv
        tb = (node_hi[node, a] - o) * inv
        if ta > tb:
          ta, tb = tb, ta
        if ta > t0:
          t0 = ta
        if tb < t1:
          t1 = tb
        if t0 > t1:
          ok = False
          break
      if not ok:
        continue
      if count[node] > 0:
        for i in range(start[node], start[node] + count[node]):
          t = _ray_triangle(ox, oy, oz, dx, dy, dz, tris[i], tmin, best)
          if t < best or (t == best and hit < 0 and t < np.inf):
            best = t
            hit = i
      else:
        stack[sp] = right[node]
        stack[sp + 1] = left[node]
        sp += 2
    t_out[r] = best if hit >= 0 else np.inf
    f_out[r] = hit
  return t_out, f_out


@numba.njit(cache=True, nogil=True)
def bvh_winding_numbers(points, beta, tris, left, right, start, count, area_normal, center, moment, radius):
  """Generalized winding numbers w(q) = sum of signed solid angles / 4 pi, approximated hierarchically.

  A node whose centre c is farther than beta * radius from q contributes the second-order far-field expansion
  of its solid angle (Barill et al. 2018): with r = c - q,
  N . r / |r|^3 + trace(T) / |r|^3 - 3 r . T r / |r|^5 (all / 4 pi); nearer leaves are summed exactly.
  w is ~1 inside and ~0 outside a closed outward-oriented surface (~-1 inside if it is oriented inward).
  Args: points float64 [N,3]; beta float >= 1 (2: mean error ~3e-3, at most ~0.05 right next to the
    surface; 4: at most ~0.01); tris in BVH order;
    BVH arrays and the `bvh_dipoles` outputs.
  Returns: float64 [N].
  """
  n = points.shape[0]
  out = np.empty(n)
  stack = np.empty(_stack_size(left, right), np.int64)
  for i in range(n):
    qx, qy, qz = points[i, 0], points[i, 1], points[i, 2]
    w = 0.0
    sp = 1
    stack[0] = 0
    while sp > 0:
      sp -= 1
      node = stack[sp]
      rx, ry, rz = center[node, 0] - qx, center[node, 1] - qy, center[node, 2] - qz
      r2 = rx * rx + ry * ry + rz * rz
      lim = beta * radius[node]
      if r2 > lim * lim:
        r = math.sqrt(r2)
        r3 = r2 * r
        w += (area_normal[node, 0] * rx + area_normal[node, 1] * ry + area_normal[node, 2] * rz) / r3
        tr = moment[node, 0, 0] + moment[node, 1, 1] + moment[node, 2, 2]
        rtr = (rx * (moment[node, 0, 0] * rx + moment[node, 0, 1] * ry + moment[node, 0, 2] * rz) +
               ry * (moment[node, 1, 0] * rx + moment[node, 1, 1] * ry + moment[node, 1, 2] * rz) +
               rz * (moment[node, 2, 0] * rx + moment[node, 2, 1] * ry + moment[node, 2, 2] * rz))
        w += tr / r3 - 3.0 * rtr / (r3 * r2)
      elif count[node] > 0:
        for f in range(start[node], start[node] + count[node]):
          w += _solid_angle(qx, qy, qz, tris[f])
      else:
        stack[sp] = right[node]
        stack[sp + 1] = left[node]
        sp += 2
    out[i] = w / _FOUR_PI
  return out


# ------------------------------------------------------------------------------------------------------------
# Mesh topology as GAPS builds it
# ------------------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def gaps_face_insertion(edges, forward, n_edges):
  """How GAPS's R3Mesh readers insert faces into their edge structure (no welding, one face per edge side).

  A face is created if none of its three edges already has a face on the side it would take; otherwise it
  is retried after all other faces, first as given, then flipped (taking the opposite sides), and if that
  fails too it gets its own copies of the vertices (detached).
  Args:
    edges: int64 [F,3] undirected edge id of each face's corner pairs (v0 v1, v1 v2, v2 v0), ids < n_edges.
    forward: bool [F,3] whether the face runs along the edge from its lower to its higher vertex index.
    n_edges: int.
  Returns:
    (status int64 [F]: 0 created as given, 1 created flipped, 2 detached;
     occupied bool [n_edges, 2]: which sides (forward, backward) of each edge hold a face).
  """
  n_faces = edges.shape[0]
  occupied = np.zeros((n_edges, 2), np.bool_)
  status = np.full(n_faces, 2, np.int64)
  deferred = np.empty(n_faces, np.int64)
  n_deferred = 0
  for f in range(n_faces):
    free = True
    for c in range(3):
      if occupied[edges[f, c], 0 if forward[f, c] else 1]:
        free = False
    if free:
      for c in range(3):
        occupied[edges[f, c], 0 if forward[f, c] else 1] = True
      status[f] = 0
    else:
      deferred[n_deferred] = f
      n_deferred += 1
  for d in range(n_deferred):
    f = deferred[d]
    for flip in range(2):
      free = True
      for c in range(3):
        side = 0 if forward[f, c] != (flip == 1) else 1
        if occupied[edges[f, c], side]:
          free = False
      if free:
        for c in range(3):
          occupied[edges[f, c], 0 if forward[f, c] != (flip == 1) else 1] = True
        status[f] = flip
        break
  return status, occupied


# ------------------------------------------------------------------------------------------------------------
# Sampling helpers
# ------------------------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def swap_remove(n_total, uniforms):
  """GAPS msh2pts's trimming of a point list: for each u in order, k = int(u * len), swap entry k with the
  last entry and drop the last.

  Args: n_total int; uniforms float64 [R] in [0, 1) (R <= n_total removals).
  Returns: int64 [n_total - R], the surviving original indices in their final order.
  """
  if uniforms.shape[0] > n_total:
    raise ValueError('swap_remove: more removals than entries')
  idx = np.arange(n_total)
  m = n_total
  for r in range(uniforms.shape[0]):
    k = int(uniforms[r] * m)
    if k >= m:
      k = m - 1
    tmp = idx[k]
    idx[k] = idx[m - 1]
    idx[m - 1] = tmp
    m -= 1
  return idx[:m].copy()


# ------------------------------------------------------------------------------------------------------------
# numpy wrapper
# ------------------------------------------------------------------------------------------------------------


def _as_points(name, points):
  pts = np.ascontiguousarray(points, dtype=np.float64)
  if pts.ndim != 2 or pts.shape[1] != 3:
    raise ValueError(f'{name} must have shape [N, 3], got {np.shape(points)}')
  if not np.all(np.isfinite(pts)):
    raise ValueError(f'{name} contains NaN or inf')
  return pts


def morton_order(points, bits=10):
  """Permutation sorting points [N,3] along a Z-order curve over their bounding box (int64 [N])."""
  pts = np.asarray(points, np.float64)
  if pts.shape[0] == 0:
    return np.zeros(0, np.int64)
  lo = pts.min(axis=0)
  extent = max(float((pts.max(axis=0) - lo).max()), 1e-300)
  cells = np.minimum((pts - lo) * ((1 << bits) / extent), (1 << bits) - 1).astype(np.int64)
  code = np.zeros(pts.shape[0], np.int64)
  for b in range(bits):
    for a in range(3):
      code |= ((cells[:, a] >> b) & 1) << (3 * b + a)
  return np.argsort(code, kind='stable')


class MeshSearchTree:
  """A BVH over a triangle mesh for distance, ray and inside/outside queries (like GAPS R3MeshSearchTree).

  Works on any triangle set: welded meshes, triangle soups (GAPS never welds), meshes with holes.
  All inputs/outputs are float64 in the caller's frame; face indices refer to the caller's `faces` rows.

  Args:
    vertices: float [V,3] finite coordinates.
    faces: int [F,3] vertex indices, F >= 1.
    leaf_size: most triangles per BVH leaf.
  Raises:
    ValueError: on wrong shapes, non-finite vertices, out-of-range indices or an empty face list.
  """

  def __init__(self, vertices, faces, leaf_size=4):
    verts = _as_points('vertices', vertices)
    tri_idx = np.asarray(faces)
    if tri_idx.ndim != 2 or tri_idx.shape[1] != 3 or tri_idx.shape[0] == 0:
      raise ValueError(f'faces must have shape [F, 3] with F >= 1, got {tri_idx.shape}')
    if not np.issubdtype(tri_idx.dtype, np.integer):
      raise ValueError(f'faces must be integers, got {tri_idx.dtype}')
    if tri_idx.min() < 0 or tri_idx.max() >= verts.shape[0]:
      raise ValueError(f'face indices must lie in [0, {verts.shape[0]}), '
                       f'got [{tri_idx.min()}, {tri_idx.max()}]')
    tris = verts[tri_idx.astype(np.int64)]
    bvh = build_bvh(tris.min(axis=1), tris.max(axis=1), tris.mean(axis=1), int(leaf_size))
    self.node_lo, self.node_hi, self.left, self.right, self.start, self.count, self.order = bvh
    self.tris = np.ascontiguousarray(tris[self.order])
    self.face_count = tris.shape[0]
    self._dipoles = None
    self._grids = collections.OrderedDict()
    self._partial_grids = collections.OrderedDict()
    self._lock = threading.Lock()

  def _bvh(self):
    return self.node_lo, self.node_hi, self.left, self.right, self.start, self.count

  def closest(self, points, hint_faces=None):
    """Exact closest surface points.

    Points are queried in Morton (Z-curve) order, each search seeded with the previous point's answer.
    Args: points float [N,3]; hint_faces optional int [N] original face indices near each point (speed only).
    Returns: (distance float64 [N], face int64 [N] original index, closest point float64 [N,3]).
    """
    pts = _as_points('points', points)
    n = pts.shape[0]
    if hint_faces is None:
      hint = np.full(n, -1, np.int64)
    else:
      hint = np.asarray(hint_faces, np.int64)
      if hint.shape != (n,):
        raise ValueError(f'hint_faces must have shape [{n}], got {hint.shape}')
      inverse = np.empty(self.face_count, np.int64)
      inverse[self.order] = np.arange(self.face_count)
      valid = (hint >= 0) & (hint < self.face_count)
      hint = np.where(valid, inverse[np.clip(hint, 0, self.face_count - 1)], -1)
    perm = morton_order(pts)
    d2, face, q = bvh_closest(pts[perm], hint[perm], True, self.tris, *self._bvh())
    dist = np.empty(n)
    faces = np.empty(n, np.int64)
    closest = np.empty((n, 3))
    dist[perm] = np.sqrt(d2)
    faces[perm] = self.order[face]
    closest[perm] = q
    return dist, faces, closest

  def first_hit(self, origins, directions, tmin=0.0, tmax=np.inf):
    """First ray hits: o + t d for t in [tmin, tmax].

    Args: origins, directions float [N,3] (t is measured in units of |d|); tmin, tmax floats.
    Returns: (t float64 [N], inf where nothing is hit; face int64 [N] original index or -1).
    """
    o = _as_points('origins', origins)
    d = _as_points('directions', directions)
    if o.shape != d.shape:
      raise ValueError(f'origins {o.shape} and directions {d.shape} differ in shape')
    t, face = bvh_first_hit(o, d, float(tmin), float(tmax), self.tris, *self._bvh())
    return t, np.where(face >= 0, self.order[np.maximum(face, 0)], -1)

  def winding_numbers(self, points, beta=2.0):
    """Generalized winding numbers (~1 inside, ~0 outside an outward-oriented closed surface): float64 [N]."""
    pts = _as_points('points', points)
    if not beta >= 1.0:
      raise ValueError(f'beta must be >= 1, got {beta}')
    if self._dipoles is None:
      self._dipoles = bvh_dipoles(self.tris, self.left, self.right, self.start, self.count, self.node_lo,
                                  self.node_hi)
    return bvh_winding_numbers(pts, float(beta), self.tris, self.left, self.right, self.start, self.count,
                               *self._dipoles)

  @staticmethod
  def _grid_key(origin, step, shape):
    origin = np.asarray(origin, np.float64).reshape(3)
    step = np.asarray(step, np.float64).reshape(3)
    shape = np.asarray(shape, np.int64).reshape(3)
    if np.any(shape < 1) or not np.all(step > 0) or not np.all(np.isfinite(origin)):
      raise ValueError(f'bad grid: origin {origin}, step {step}, shape {shape}')
    return origin, step, shape, (origin.tobytes(), step.tobytes(), shape.tobytes())

  def distance_grid(self, origin, step, shape):
    """Exact unsigned distances at grid points origin + (i, j, k) * step (memoized per tree, last 2 grids).

    Entries offered earlier for the same grid (`offer_distance_grid`) are reused, not recomputed.
    Args: origin float [3] (world position of index (0,0,0)), step float [3] per-axis spacing, shape (Z,Y,X).
    Returns: (distance float64 [Z,Y,X], closest face int64 [Z,Y,X] original index), both read-only.
    """
    origin, step, shape, key = self._grid_key(origin, step, shape)
    with self._lock:
      hit = self._grids.get(key)
      partial = self._partial_grids.pop(key, None)
    if hit is not None:
      return hit
    if partial is None:
      dist, face = grid_closest(origin, step, shape, self.tris, *self._bvh())
    else:
      dist, face = grid_closest_fill(origin, step, partial[0], partial[1], self.tris, *self._bvh())
    face = self.order[face]
    dist.flags.writeable = False
    face.flags.writeable = False
    with self._lock:
      self._grids[key] = (dist, face)
      while len(self._grids) > 2:
        self._grids.popitem(last=False)
    return dist, face

  def offer_distance_grid(self, origin, step, distance, face):
    """Lets a later `distance_grid` of the same grid reuse exact distances already computed for some points.

    Args: origin float [3], step float [3]; distance float [Z,Y,X] exact unsigned distances, NaN where
      unknown; face int [Z,Y,X] the closest face (original index), -1 where unknown. (The last 2 grids are
      kept; nothing is stored if the grid is already memoized.)
    """
    dist = np.array(distance, np.float64)
    fc = np.asarray(face, np.int64)
    origin, step, shape, key = self._grid_key(origin, step, dist.shape)
    if fc.shape != dist.shape or fc.max(initial=-1) >= self.face_count:
      raise ValueError(f'face must have shape {dist.shape} with indices < {self.face_count}')
    known = (fc >= 0) & np.isfinite(dist)
    inverse = np.empty(self.face_count, np.int64)
    inverse[self.order] = np.arange(self.face_count)
    bvh_face = np.where(known, inverse[np.maximum(fc, 0)], -1)
    with self._lock:
      if key in self._grids:
        return
      self._partial_grids[key] = (np.where(known, dist, np.nan), bvh_face)
      while len(self._partial_grids) > 2:
        self._partial_grids.popitem(last=False)

  def grid_distances_within(self, origin, step, radii, ties=None, tie_eps=1e-6):
    """Exact unsigned distances at grid points, where a triangle lies within each point's search radius.

    Args:
      origin float [3], step float [3]: grid point (i, j, k) = origin + (i, j, k) * step.
      radii float [Z,Y,X]: search radius per point (world units; <= 0 skips the point).
      ties: optional bool [Z,Y,X]; where true (and a triangle is found), also list every face whose distance
        is below the found distance + tie_eps (GAPS's FindAll at that radius).
      tie_eps: float > 0.
    Returns:
      (distance float64 [Z,Y,X], NaN where skipped or nothing is within the radius;
       closest face int64 [Z,Y,X] original index, -1 there;
       ties: (voxel int64 [M] flat grid index, face int64 [M] original index, closest point float64 [M,3]),
       grouped by voxel in scan order; empty when ties is None).
    """
    origin = np.asarray(origin, np.float64).reshape(3)
    step = np.asarray(step, np.float64).reshape(3)
    r = np.ascontiguousarray(radii, np.float64)
    if r.ndim != 3 or not np.all(step > 0) or not np.all(np.isfinite(origin)) or np.isnan(r).any():
      raise ValueError(f'bad grid: origin {origin}, step {step}, radii shape {r.shape}')
    if ties is None:
      ties = np.zeros(r.shape, np.bool_)
    ties = np.ascontiguousarray(ties, np.bool_)
    if ties.shape != r.shape or not tie_eps > 0:
      raise ValueError(f'ties must have shape {r.shape} and tie_eps must be > 0, got {ties.shape}, {tie_eps}')
    dist, face, tie_voxel, tie_face, tie_point = grid_closest_within(origin, step, r, ties, float(tie_eps),
                                                                     self.tris, *self._bvh())
    face = np.where(face >= 0, self.order[np.maximum(face, 0)], -1)
    return dist, face, (tie_voxel, self.order[tie_face], tie_point)

  def faces_within(self, points, radii):
    """All faces closer than a radius to each point (squared distance < radius^2), with their closest points.

    Args: points float [N,3]; radii float [N].
    Returns: (offsets int64 [N+1] (point n's hits are rows offsets[n]:offsets[n+1]), face int64 [M] original
      index, closest point float64 [M,3]).
    """
    pts = _as_points('points', points)
    r = np.ascontiguousarray(radii, np.float64)
    if r.shape != (pts.shape[0],) or np.isnan(r).any():
      raise ValueError(f'radii must have shape [{pts.shape[0]}] without NaN, got {r.shape}')
    offsets, face, closest = bvh_faces_within(pts, r, self.tris, *self._bvh())
    return offsets, self.order[face], closest


_TREE_CACHE = collections.OrderedDict()
_TREE_CACHE_SIZE = 2
_TREE_CACHE_LOCK = threading.Lock()


def search_tree(vertices, faces):
  """A `MeshSearchTree` for (vertices, faces), shared by calls with identical arrays (per process, 2 meshes).

  Lets the msh2df / msh2pts steps of one mesh build the BVH (and its distance grids) once. The key is a digest
  of the arrays' float64/int64 bytes, so equal content hits the cache whatever the array objects.
  Raises: ValueError as `MeshSearchTree`.
  """
  v = np.ascontiguousarray(vertices, np.float64)
  f = np.ascontiguousarray(faces, np.int64)
  digest = hashlib.blake2b(digest_size=16)
  digest.update(np.array(v.shape + f.shape, np.int64).tobytes())
  digest.update(v.tobytes())
  digest.update(f.tobytes())
  key = digest.digest()
  with _TREE_CACHE_LOCK:
    tree = _TREE_CACHE.get(key)
    if tree is not None:
      _TREE_CACHE.move_to_end(key)
      return tree
  tree = MeshSearchTree(v, f)
  with _TREE_CACHE_LOCK:
    _TREE_CACHE[key] = tree
    while len(_TREE_CACHE) > _TREE_CACHE_SIZE:
      _TREE_CACHE.popitem(last=False)
  return tree

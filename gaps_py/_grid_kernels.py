"""Numba kernels for the voxel-grid stages of GAPS msh2df (the R3Grid operations it chains).

Private module: the validating numpy wrapper is `gaps_py.msh2df.mesh_to_distance_field`. Grids are arrays
[Z,Y,X] indexed [k, j, i] (x fastest, as GAPS stores them); voxel (i, j, k) is the grid sample at index
(i, j, k). Each kernel has a slow plain-numpy/Python twin in `gaps_py._reference` that the tests compare
it with.

What GAPS does (ported in our own structure; R3Grid.cpp and apps/msh2df/msh2df.cpp):
  * Triangle rasterization (R3Grid::RasterizeGridTriangle): corners are rounded to voxels with C's
    (int)(g + 0.5), i.e. truncation toward zero; the triangle is swept along its axis of largest voxel extent
    with integer DDA edges (C division, truncating toward zero), and each step draws an integer 3D line
    ("span") between the two edge voxels. The top part (from the highest corner down to the middle one) draws
    `dx` spans, the bottom part `dx + 1`. Voxels outside the grid are skipped.
  * Squared distance transform (R3Grid::SquaredDistanceTransform): squared voxel distance to the nearest
    marked voxel, by a 1D pass along z (distance to the nearest mark in the column), then 1D lower-envelope
    passes along x and then y that scan each candidate range [s, x] forward and [x, s] backward, moving s to
    the last minimiser. This is the exact squared Euclidean distance transform (the tests check it against
    brute force). Unmarked voxels start at 3 (R + 1)^2 (R = largest resolution), which is what remains where
    nothing is marked.
  * Refinement radius (msh2df RefineDistanceUsingKdtree): a voxel with grid distance g <= R is replaced by the
    exact distance if the kd-tree finds a triangle within r, where r runs through max(g, h) * 1.25^n (n >= 1)
    while the previous radius was < R; voxels with max(g, h) >= R keep g (so g == R stays unrefined).
  * Smoothing band (msh2df SmoothDistanceAtRefinementBoundary): voxels with |d| in [lo, hi] of the unsmoothed
    grid get the weighted mean of their 3x3x3 neighbourhood (clipped at the grid border) with weight
    2^-(dx + dy + dz) for offsets dx, dy, dz in {-1, 0, 1}: not symmetric, as in GAPS.
  * Hole filling (R3Grid::FillHoles): zeros between two non-zero values of a line are linearly interpolated,
    along z, then y, then x.
  * Non-manifold interior pass (msh2df UpdateSignedDistanceUsingGrid / CreatePoints /
    RefineSignedDistanceUsingKdtree): interior voxels measured to surface-sample disks (`disk_distances`);
    the samples come from `_kernels.grid_closest_within` (ties) and `_kernels.bvh_faces_within`, the rest
    is orchestrated in `gaps_py.msh2df`.
"""

import math

import numba
import numpy as np


# ------------------------------------------------------------------------------------------------------------
# Rasterization
# ------------------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, inline='always')
def _trunc_div(a, b):
  """C integer division (truncation toward zero) for b > 0."""
  if a >= 0:
    return a // b
  return -((-a) // b)


@numba.njit(cache=True, nogil=True)
def _mark(mask, x, y, z):
  if 0 <= x < mask.shape[2] and 0 <= y < mask.shape[1] and 0 <= z < mask.shape[0]:
    mask[z, y, x] = True


@numba.njit(cache=True, nogil=True)
def _draw_span(mask, a, b):
  """Integer 3D line from voxel a to voxel b (int64 [3] as x, y, z), both ends included."""
  delta = np.empty(3, np.int64)
  sgn = np.empty(3, np.int64)
  p = np.empty(3, np.int64)
  for c in range(3):
    d = b[c] - a[c]
    sgn[c] = 1 if d >= 0 else -1
    delta[c] = d if d >= 0 else -d
    p[c] = a[c]
  major = 0
  if delta[1] > delta[major]:
    major = 1
  if delta[2] > delta[major]:
    major = 2
  n = delta[major]
  if n == 0:
    _mark(mask, p[0], p[1], p[2])
    return
  minor1 = (major + 1) % 3
  minor2 = (major + 2) % 3
  acc1 = 0
  acc2 = 0
  for _ in range(n + 1):
    _mark(mask, p[0], p[1], p[2])
    acc1 += delta[minor1]
    acc2 += delta[minor2]
    p[major] += sgn[major]
    p[minor1] += sgn[minor1] * (acc1 // n)
    p[minor2] += sgn[minor2] * (acc2 // n)
    acc1 %= n
    acc2 %= n


@numba.njit(cache=True, nogil=True)
def _advance(edge, acc, rate, den):
  """One DDA step of a triangle edge: acc += rate; edge += trunc(acc / den); acc = C remainder."""
  for c in range(3):
    acc[c] += rate[c]
    q = _trunc_div(acc[c], den)
    edge[c] += q
    acc[c] -= q * den


@numba.njit(cache=True, nogil=True)
def _draw_triangle(mask, c0, c1, c2):
  """Marks the voxels GAPS's integer triangle rasterizer draws for corner voxels c0, c1, c2 (int64 [3])."""
  lo = np.minimum(np.minimum(c0, c1), c2)
  hi = np.maximum(np.maximum(c0, c1), c2)
  ext = hi - lo
  axis = 0
  if ext[1] > ext[0] and ext[1] > ext[2]:
    axis = 1
  elif ext[2] > ext[0]:
    axis = 2
  # Order the corners top (largest coordinate along axis) to bottom, with GAPS's tie rules.
  if c0[axis] >= c1[axis] and c0[axis] >= c2[axis]:
    top = c0
    if c1[axis] >= c2[axis]:
      mid, bot = c1, c2
    else:
      mid, bot = c2, c1
  elif c1[axis] >= c0[axis] and c1[axis] >= c2[axis]:
    top = c1
    if c0[axis] >= c2[axis]:
      mid, bot = c0, c2
    else:
      mid, bot = c2, c0
  else:
    top = c2
    if c0[axis] >= c1[axis]:
      mid, bot = c0, c1
    else:
      mid, bot = c1, c0
  upper = top[axis] - mid[axis]
  full = top[axis] - bot[axis]
  e1 = top.copy()  # walks top -> mid
  e2 = top.copy()  # walks top -> bot
  acc1 = np.zeros(3, np.int64)
  acc2 = np.zeros(3, np.int64)
  if upper == 0:
    e2 = mid.copy()
  else:
    den = upper * full
    rate1 = (mid - top) * full
    rate2 = (bot - top) * upper
    for _ in range(upper):
      _draw_span(mask, e1, e2)
      _advance(e1, acc1, rate1, den)
      _advance(e2, acc2, rate2, den)
  lower = mid[axis] - bot[axis]
  if lower == 0:
    _draw_span(mask, mid, bot)
    return
  h1 = e1[axis] - bot[axis]
  h2 = e2[axis] - bot[axis]
  den = h1 * h2
  rate1 = (bot - e1) * h2
  rate2 = (bot - e2) * h1
  acc1[:] = 0
  acc2[:] = 0
  for _ in range(lower + 1):
    _draw_span(mask, e1, e2)
    _advance(e1, acc1, rate1, den)
    _advance(e2, acc2, rate2, den)


@numba.njit(cache=True, nogil=True)
def rasterize_triangles(grid_tris, shape):
  """Voxels touched by GAPS's rasterization of triangles (R3Grid::RasterizeWorldTriangle).

  Args:
    grid_tris: float64 [F,3,3] triangle corners in grid coordinates (x, y, z index units).
    shape: int64 [3] grid shape (Z, Y, X).
  Returns:
    bool [Z,Y,X] mask of drawn voxels.
  """
  mask = np.zeros((shape[0], shape[1], shape[2]), np.bool_)
  corners = np.empty((3, 3), np.int64)
  for f in range(grid_tris.shape[0]):
    for v in range(3):
      for c in range(3):
        corners[v, c] = int(grid_tris[f, v, c] + 0.5)  # C (int) cast: truncation toward zero
    # Every drawn voxel lies in the box of the corner voxels: skip triangles whose box misses the grid.
    miss = False
    for c in range(3):
      lo = min(corners[0, c], corners[1, c], corners[2, c])
      hi = max(corners[0, c], corners[1, c], corners[2, c])
      if hi < 0 or lo >= shape[2 - c]:
        miss = True
    if not miss:
      _draw_triangle(mask, corners[0], corners[1], corners[2])
  return mask


# ------------------------------------------------------------------------------------------------------------
# Squared distance transform
# ------------------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _envelope_line(old, new, n, inclusive_back):
  """GAPS's forward/backward lower-envelope scans of one line: old int64 [n] -> new float64 [n] (in place)."""
  fwd = np.empty(n, np.int64)
  s = 0
  for x in range(n):
    best = old[x]
    if best != 0:
      for t in range(s, x + 1):
        cand = old[t] + (x - t) * (x - t)
        if cand <= best:
          best = cand
          s = t
    else:
      s = x
    fwd[x] = best
  s = n - 1
  stop = 0 if inclusive_back else 1
  for x in range(n - 1, -1, -1):
    best = fwd[x]
    if best != 0:
      for t in range(s, x + stop - 1, -1):
        cand = old[t] + (x - t) * (x - t)
        if cand <= best:
          best = cand
          s = t
      new[x] = best
    else:
      s = x


@numba.njit(cache=True, nogil=True)
def squared_distance_transform(marked):
  """Squared voxel distance to the nearest marked voxel, as R3Grid::SquaredDistanceTransform.

  Args: marked bool [Z,Y,X].
  Returns: float64 [Z,Y,X] (integers; 0 at marked voxels; 3 (R + 1)^2 everywhere if nothing is marked,
    R = largest resolution).
  """
  nz, ny, nx = marked.shape
  res = max(nx, ny, nz)
  far = 3.0 * (res + 1) * (res + 1)
  out = np.empty((nz, ny, nx))
  # z: distance to the nearest mark in the column (unreached voxels keep `far`).
  for i in range(nx):
    for j in range(ny):
      seen = False
      run = 0
      for k in range(nz):
        if marked[k, j, i]:
          seen = True
          run = 0
          out[k, j, i] = 0.0
        elif seen:
          run += 1
          out[k, j, i] = run * run
        else:
          out[k, j, i] = far
      seen = False
      run = 0
      for k in range(nz - 1, -1, -1):
        if marked[k, j, i]:
          seen = True
          run = 0
        elif seen:
          run += 1
          if run * run < out[k, j, i]:
            out[k, j, i] = run * run
  line_old = np.empty(res, np.int64)
  line_new = np.empty(res)
  for k in range(nz):
    for j in range(ny):
      for i in range(nx):
        line_old[i] = int(out[k, j, i] + 0.5)
        line_new[i] = out[k, j, i]
      _envelope_line(line_old, line_new, nx, True)
      for i in range(nx):
        out[k, j, i] = line_new[i]
  for k in range(nz):
    for i in range(nx):
      for j in range(ny):
        line_old[j] = int(out[k, j, i] + 0.5)
        line_new[j] = out[k, j, i]
      _envelope_line(line_old, line_new, ny, False)
      for j in range(ny):
        out[k, j, i] = line_new[j]
  return out


# ------------------------------------------------------------------------------------------------------------
# Grid passes of msh2df
# ------------------------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def refinement_radii(grid_distance, spacing, max_distance):
  """GAPS's kd-tree search radius per voxel, or 0 where the voxel is not refined.

  Args: grid_distance float64 [Z,Y,X] (world units); spacing h; max_distance R (world units).
  Returns: float64 [Z,Y,X]: the last radius max(g, h) * 1.25^n tried (the first one >= R), 0 where
    g > R or max(g, h) >= R. A voxel is refined iff its exact distance is within this radius.
  """
  out = np.zeros(grid_distance.shape)
  flat_in = grid_distance.ravel()
  flat_out = out.ravel()
  for v in range(flat_in.shape[0]):
    g = flat_in[v]
    if g > max_distance:
      continue
    r = g if g > spacing else spacing
    if r >= max_distance:
      continue
    while r < max_distance:
      r *= 1.25
    flat_out[v] = r
  return out


@numba.njit(cache=True, nogil=True)
def smooth_band(values, lo, hi):
  """msh2df's smoothing at the refinement boundary: returns a new float64 [Z,Y,X] grid.

  Voxels with lo <= |values| <= hi get sum(w v) / sum(w) over their 3x3x3 neighbourhood inside the grid,
  w = 2^-(dx + dy + dz); all others are copied.
  """
  nz, ny, nx = values.shape
  out = values.copy()
  for k in range(nz):
    for j in range(ny):
      for i in range(nx):
        a = abs(values[k, j, i])
        if a > hi or a < lo:
          continue
        num = 0.0
        den = 0.0
        for dz in range(-1, 2):
          z = k + dz
          if z < 0 or z >= nz:
            continue
          for dy in range(-1, 2):
            y = j + dy
            if y < 0 or y >= ny:
              continue
            for dx in range(-1, 2):
              x = i + dx
              if x < 0 or x >= nx:
                continue
              w = 2.0 ** (-(dx + dy + dz))
              num += w * values[z, y, x]
              den += w
        if den != 0.0:
          out[k, j, i] = num / den
  return out


@numba.njit(cache=True, nogil=True)
def _fill_line(line, n):
  last = -1
  for b in range(n):
    if line[b] != 0.0:
      if last >= 0 and last < b - 1:
        v0 = line[last]
        v1 = line[b]
        for m in range(last + 1, b):
          t = (m - last) / (b - last)
          line[m] = (1.0 - t) * v0 + t * v1
      last = b


@numba.njit(cache=True, nogil=True)
def fill_holes(values):
  """R3Grid::FillHoles with no size limit, in place on float64 [Z,Y,X]: zeros between two non-zero values of
  a line are linearly interpolated, along z, then y, then x. Returns values."""
  nz, ny, nx = values.shape
  line = np.empty(max(nx, ny, nz))
  for i in range(nx):
    for j in range(ny):
      for k in range(nz):
        line[k] = values[k, j, i]
      _fill_line(line, nz)
      for k in range(nz):
        values[k, j, i] = line[k]
  for k in range(nz):
    for i in range(nx):
      for j in range(ny):
        line[j] = values[k, j, i]
      _fill_line(line, ny)
      for j in range(ny):
        values[k, j, i] = line[j]
  for j in range(ny):
    for k in range(nz):
      for i in range(nx):
        line[i] = values[k, j, i]
      _fill_line(line, nx)
      for i in range(nx):
        values[k, j, i] = line[i]
  return values


@numba.njit(cache=True, nogil=True)
def disk_distances(points, centers, normals, radii):
  """Distance from each point to a disk (GAPS's surface-sample model in the non-manifold pass).

  The point is projected onto the disk's plane; if the in-plane offset from the centre is longer than 1e-6
  it is clamped to the radius and the distance is to centre + clamped offset, else to the centre itself.
  Args: points, centers float64 [N,3]; normals float64 [N,3] unit plane normals; radii float64 [N].
  Returns: float64 [N].
  """
  n = points.shape[0]
  out = np.empty(n)
  for r in range(n):
    px, py, pz = points[r, 0], points[r, 1], points[r, 2]
    cx, cy, cz = centers[r, 0], centers[r, 1], centers[r, 2]
    nx, ny, nz = normals[r, 0], normals[r, 1], normals[r, 2]
    h = (px - cx) * nx + (py - cy) * ny + (pz - cz) * nz
    tx, ty, tz = px - h * nx - cx, py - h * ny - cy, pz - h * nz - cz
    tl = math.sqrt(tx * tx + ty * ty + tz * tz)
    qx, qy, qz = cx, cy, cz
    if tl > 1e-6:
      s = min(tl, radii[r]) / tl
      qx, qy, qz = cx + s * tx, cy + s * ty, cz + s * tz
    dx, dy, dz = px - qx, py - qy, pz - qz
    out[r] = math.sqrt(dx * dx + dy * dy + dz * dz)
  return out

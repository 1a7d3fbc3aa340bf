"""Numba kernels for gaps_py.scn2img (depth rasterizer) and gaps_py.conf2img (per-pixel PCA normals).

Private module: the validating numpy wrappers are `gaps_py.scn2img.render_depth_images` and
`gaps_py.conf2img.normal_images`. Every kernel has a slow plain-numpy twin (`*_numpy`) that the tests compare
it with.

Depth rasterizer (port of what GAPS scn2img does through OpenGL/OSMesa):
  * Camera frame: x right, y up, z backwards (the camera looks down -z); planar depth d = -z_eye.
  * gluPerspective projection with near = 0.01 R and far = 100 R (R = half the mesh bbox diagonal); window
    coordinates have y up and pixel centres at half-integers.
  * Coverage is tested at pixel centres against the triangle with its window-space vertices snapped to 1/256
    px (the fixed-point subpixel grid of Mesa's rasterizer), top-left fill rule for centres exactly on an
    edge. Window depth is interpolated on the unsnapped triangle's plane.
  * GAPS draws all triangles twice: first with back-face culling and glDepthRange(0, 0.999999), then without
    culling at depth range [0, 1], with the GL_LESS depth test. The result equals min(0.999999 z_front,
    z_back) per pixel, where z_front/z_back are the nearest front/back-facing window depths: front faces win
    ties and back faces only show where nothing front-facing is (almost) as close.
  * The float32 depth buffer is unprojected as if the depth range were [0, 1] (as gluUnProject does), so front
    faces read back very slightly closer than they are; this is reproduced. PNG value = floor(1000 d), with
    background and values > 65535 written as 0.

Normal estimator (port of GAPS conf2img -create_normal_images, RGBD package):
  * Depth = PNG/1000 in the GAPS grid frame (row 0 at the bottom); background is "unknown".
  * Boundary map: border pixels, then silhouette/shadow labels from depth jumps larger than max(0.1 d, 0.1)
    against a hole-filled copy of the depth (holes filled by GAPS's heap-ordered Gaussian fill).
  * For every foreground pixel, a depth-first search from the pixel collects neighbours within the pixel
    radius round(2 W / 640) (at least 1), within 0.1 world units of the seed, with valid depth, not stepping
    between a silhouette and a shadow pixel. With >= 3 points the normal is the covariance's smallest
    principal axis, oriented towards the camera; radius = 3 sqrt(largest eigenvalue) / 2.
"""

import math

import numba
import numpy as np

# GAPS constants.
UNKNOWN = -321.0           # R2_GRID_UNKNOWN_VALUE
BORDER_BOUNDARY = 1
SILHOUETTE_BOUNDARY = 2
SHADOW_BOUNDARY = 4
EPSILON = 1e-6             # RN_EPSILON
FRONT_DEPTH_RANGE = 0.999999
SUBPIXEL = 256.0
FILL_SIGMA = 1.5


# ----------------------------------------------------------------------------------------------------------
# Depth rasterizer
# ----------------------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _snap(value):
  return np.round(value * SUBPIXEL) / SUBPIXEL


@numba.njit(cache=True, nogil=True)
def _canonical_edge(ax, ay, bx, by):
  """Edge a->b as (origin x, origin y, dx, dy, sign) with the origin the lexicographically smaller endpoint.

  Evaluating sign * (dx (py - oy) - dy (px - ox)) gives bit-identical magnitudes for the two triangles that
  share the edge, so no pixel centre is lost or claimed twice along shared edges.
  """
  if ax < bx or (ax == bx and ay < by):
    return ax, ay, bx - ax, by - ay, 1.0
  return bx, by, ax - bx, ay - by, -1.0


@numba.njit(cache=True, nogil=True)
def _top_left(ax, ay, bx, by):
  """Fill rule for an edge a->b of a counter-clockwise triangle in y-up window coordinates."""
  dy = by - ay
  return dy < 0.0 or (dy == 0.0 and bx - ax < 0.0)


@numba.njit(cache=True, nogil=True)
def _raster_triangle(sx0, sy0, sx1, sy1, sx2, sy2, ux0, uy0, ux1, uy1, ux2, uy2, z0, z1, z2, front,
                     zfront, zback):
  """Rasterizes one counter-clockwise (in snapped coordinates) triangle into the front or back z-buffer."""
  height, width = zfront.shape
  # Window depth plane from the unsnapped vertices (falls back to the snapped ones if those are degenerate).
  ax = ux1 - ux0
  ay = uy1 - uy0
  bx = ux2 - ux0
  by = uy2 - uy0
  det = ax * by - bx * ay
  ox = ux0
  oy = uy0
  if det == 0.0:
    ax = sx1 - sx0
    ay = sy1 - sy0
    bx = sx2 - sx0
    by = sy2 - sy0
    det = ax * by - bx * ay
    ox = sx0
    oy = sy0
    if det == 0.0:
      return
  dzdx = ((z1 - z0) * by - (z2 - z0) * ay) / det
  dzdy = (ax * (z2 - z0) - bx * (z1 - z0)) / det

  e0x, e0y, e0dx, e0dy, e0s = _canonical_edge(sx1, sy1, sx2, sy2)
  e1x, e1y, e1dx, e1dy, e1s = _canonical_edge(sx2, sy2, sx0, sy0)
  e2x, e2y, e2dx, e2dy, e2s = _canonical_edge(sx0, sy0, sx1, sy1)
  t0 = _top_left(sx1, sy1, sx2, sy2)
  t1 = _top_left(sx2, sy2, sx0, sy0)
  t2 = _top_left(sx0, sy0, sx1, sy1)

  ix0 = max(0, int(math.ceil(min(sx0, sx1, sx2) - 0.5)))
  ix1 = min(width - 1, int(math.floor(max(sx0, sx1, sx2) - 0.5)))
  iy0 = max(0, int(math.ceil(min(sy0, sy1, sy2) - 0.5)))
  iy1 = min(height - 1, int(math.floor(max(sy0, sy1, sy2) - 0.5)))
  for iy in range(iy0, iy1 + 1):
    py = iy + 0.5
    for ix in range(ix0, ix1 + 1):
      px = ix + 0.5
      e = e0s * (e0dx * (py - e0y) - e0dy * (px - e0x))
      if e < 0.0 or (e == 0.0 and not t0):
        continue
      e = e1s * (e1dx * (py - e1y) - e1dy * (px - e1x))
      if e < 0.0 or (e == 0.0 and not t1):
        continue
      e = e2s * (e2dx * (py - e2y) - e2dy * (px - e2x))
      if e < 0.0 or (e == 0.0 and not t2):
        continue
      z = z0 + dzdx * (px - ox) + dzdy * (py - oy)
      if z >= 1.0:  # beyond the far plane
        continue
      if front:
        z *= FRONT_DEPTH_RANGE
        if z < zfront[iy, ix]:
          zfront[iy, ix] = z
      elif z < zback[iy, ix]:
        zback[iy, ix] = z


@numba.njit(cache=True, nogil=True)
def _raster_polygon(px, py, pz, count, zfront, zback):
  """Rasterizes a convex window-space polygon (3 or 4 unsnapped vertices) as a triangle fan."""
  sx = np.empty(4)
  sy = np.empty(4)
  area = 0.0
  for k in range(count):
    sx[k] = _snap(px[k])
    sy[k] = _snap(py[k])
  for k in range(count):
    kn = (k + 1) % count
    area += sx[k] * sy[kn] - sx[kn] * sy[k]
  if area == 0.0:
    return
  front = area > 0.0
  for k in range(1, count - 1):
    a = 0
    b = k
    c = k + 1
    if not front:
      b, c = c, b
    _raster_triangle(sx[a], sy[a], sx[b], sy[b], sx[c], sy[c], px[a], py[a], px[b], py[b], px[c], py[c],
                     pz[a], pz[b], pz[c], front, zfront, zback)


@numba.njit(cache=True, nogil=True)
def _project(xe, ye, d, width, height, focal_x, focal_y, proj_a, proj_b):
  """Eye point (x, y, depth d > 0) -> unsnapped window x, y (y up) and window depth in [0, 1]."""
  wx = 0.5 * width + focal_x * xe / d
  wy = 0.5 * height + focal_y * ye / d
  wz = 0.5 * (1.0 - proj_a + proj_b / d)
  return wx, wy, wz


@numba.njit(cache=True, nogil=True)
def _clip_near(ex, ey, ed, near, cx, cy, cd):
  """Clips an eye-space triangle (x, y, depth) to depth >= near; writes <= 4 vertices, returns the count."""
  count = 0
  for k in range(3):
    kn = (k + 1) % 3
    a_in = ed[k] >= near
    b_in = ed[kn] >= near
    if a_in:
      cx[count] = ex[k]
      cy[count] = ey[k]
      cd[count] = ed[k]
      count += 1
    if a_in != b_in:
      # Intersect with endpoints in a canonical order, so both triangles sharing the edge agree exactly.
      i0 = k
      i1 = kn
      if (ed[i1], ex[i1], ey[i1]) < (ed[i0], ex[i0], ey[i0]):
        i0, i1 = i1, i0
      t = (near - ed[i0]) / (ed[i1] - ed[i0])
      cx[count] = ex[i0] + t * (ex[i1] - ex[i0])
      cy[count] = ey[i0] + t * (ey[i1] - ey[i0])
      cd[count] = near
      count += 1
  return count


@numba.njit(cache=True, nogil=True)
def _window_depth_to_png(z, proj_a, proj_b):
  """Nearest window depth -> PNG value, as GAPS reads back a float depth buffer and unprojects it."""
  if z > 2.0:
    return 0
  zf = np.float64(np.float32(z))
  if abs(zf - 1.0) <= EPSILON or zf <= EPSILON:
    return 0
  depth = proj_b / ((2.0 * zf - 1.0) + proj_a)
  value = 1000.0 * depth
  if value > 65535.0 or value < 0.0:
    return 0
  return int(value)


@numba.njit(cache=True, nogil=True)
def depth_views_kernel(vertices, faces, eyes, rotations, width, height, focal_x, focal_y, near, far, out):
  """Renders V depth images (port of GAPS scn2img -capture_depth_images).

  vertices float64 [N,3] and faces int64 [F,3] (gaps frame), eyes float64 [V,3], rotations float64 [V,3,3]
  (rows:
  the camera's x, y, z axes in world coordinates), focal_x/focal_y float64 [V] (pixels: half the image size
  over the tangent of the half field of view), near/far clip depths; out uint16 [V,H,W] receives the PNG
  values (row 0 = top).
  """
  num_views = eyes.shape[0]
  num_vertices = vertices.shape[0]
  proj_a = (far + near) / (near - far)
  proj_b = 2.0 * far * near / (near - far)
  xe = np.empty(num_vertices)
  ye = np.empty(num_vertices)
  de = np.empty(num_vertices)
  wx = np.empty(num_vertices)
  wy = np.empty(num_vertices)
  wz = np.empty(num_vertices)
  zfront = np.empty((height, width))
  zback = np.empty((height, width))
  px = np.empty(4)
  py = np.empty(4)
  pz = np.empty(4)
  ex = np.empty(3)
  ey = np.empty(3)
  ed = np.empty(3)
  cx = np.empty(4)
  cy = np.empty(4)
  cd = np.empty(4)
  for v in range(num_views):
    r = rotations[v]
    for i in range(num_vertices):
      dx = vertices[i, 0] - eyes[v, 0]
      dy = vertices[i, 1] - eyes[v, 1]
      dz = vertices[i, 2] - eyes[v, 2]
      xe[i] = r[0, 0] * dx + r[0, 1] * dy + r[0, 2] * dz
      ye[i] = r[1, 0] * dx + r[1, 1] * dy + r[1, 2] * dz
      de[i] = -(r[2, 0] * dx + r[2, 1] * dy + r[2, 2] * dz)
      if de[i] >= near:
        wx[i], wy[i], wz[i] = _project(xe[i], ye[i], de[i], width, height, focal_x[v], focal_y[v], proj_a,
                                       proj_b)
    zfront[:, :] = np.inf
    zback[:, :] = np.inf
    for f in range(faces.shape[0]):
      a = faces[f, 0]
      b = faces[f, 1]
      c = faces[f, 2]
      if de[a] >= near and de[b] >= near and de[c] >= near:
        px[0] = wx[a]
        px[1] = wx[b]
        px[2] = wx[c]
        py[0] = wy[a]
        py[1] = wy[b]
        py[2] = wy[c]
        pz[0] = wz[a]
        pz[1] = wz[b]
        pz[2] = wz[c]
        _raster_polygon(px, py, pz, 3, zfront, zback)
        continue
      if de[a] < near and de[b] < near and de[c] < near:
        continue
      for k in range(3):
        idx = faces[f, k]
        ex[k] = xe[idx]
        ey[k] = ye[idx]
        ed[k] = de[idx]
      count = _clip_near(ex, ey, ed, near, cx, cy, cd)
      for k in range(count):
        px[k], py[k], pz[k] = _project(cx[k], cy[k], cd[k], width, height, focal_x[v], focal_y[v], proj_a,
                                       proj_b)
      _raster_polygon(px, py, pz, count, zfront, zback)
    for iy in range(height):
      for ix in range(width):
        out[v, height - 1 - iy, ix] = _window_depth_to_png(min(zfront[iy, ix], zback[iy, ix]), proj_a, proj_b)


def depth_views_numpy(vertices, faces, eyes, rotations, width, height, focal_x, focal_y, near, far):
  """Slow plain-numpy twin of `depth_views_kernel` (same arguments, returns uint16 [V,H,W]).

  Loops over triangles in Python and evaluates each triangle's pixel block with numpy.
  """
  proj_a = (far + near) / (near - far)
  proj_b = 2.0 * far * near / (near - far)
  out = np.zeros((len(eyes), height, width), np.uint16)
  cols = np.arange(width) + 0.5
  rows = np.arange(height) + 0.5
  for v in range(len(eyes)):
    delta = vertices - eyes[v]
    r = rotations[v]
    eye_points = np.stack(
        [r[k, 0] * delta[:, 0] + r[k, 1] * delta[:, 1] + r[k, 2] * delta[:, 2] for k in range(3)], axis=1)
    zfront = np.full((height, width), np.inf)
    zback = np.full((height, width), np.inf)
    for face in faces:
      ex, ey, ed = eye_points[face, 0], eye_points[face, 1], -eye_points[face, 2]
      if np.all(ed < near):
        continue
      if np.any(ed < near):
        cx, cy, cd = np.empty(4), np.empty(4), np.empty(4)
        count = _clip_near_py(ex, ey, ed, near, cx, cy, cd)
        ex, ey, ed = cx[:count], cy[:count], cd[:count]
      wx = 0.5 * width + focal_x[v] * ex / ed
      wy = 0.5 * height + focal_y[v] * ey / ed
      wz = 0.5 * (1.0 - proj_a + proj_b / ed)
      sx = np.round(wx * SUBPIXEL) / SUBPIXEL
      sy = np.round(wy * SUBPIXEL) / SUBPIXEL
      area = np.sum(sx * np.roll(sy, -1) - np.roll(sx, -1) * sy)
      if area == 0.0:
        continue
      front = area > 0.0
      for k in range(1, len(sx) - 1):
        idx = [0, k, k + 1] if front else [0, k + 1, k]
        _raster_triangle_numpy(sx[idx], sy[idx], wx[idx], wy[idx], wz[idx], front, cols, rows, zfront, zback)
    z = np.minimum(zfront, zback)
    zf = np.where(np.isfinite(z), z, 1.0).astype(np.float32).astype(np.float64)
    valid = (np.abs(zf - 1.0) > EPSILON) & (zf > EPSILON)
    with np.errstate(divide='ignore', invalid='ignore'):
      value = 1000.0 * (proj_b / ((2.0 * zf - 1.0) + proj_a))
    valid &= (value <= 65535.0) & (value >= 0.0)
    image = np.where(valid, np.floor(np.where(valid, value, 0.0)), 0).astype(np.uint16)
    out[v] = image[::-1]
  return out


def _clip_near_py(ex, ey, ed, near, cx, cy, cd):
  """Python version of `_clip_near` (same canonical intersection order)."""
  count = 0
  for k in range(3):
    kn = (k + 1) % 3
    a_in, b_in = ed[k] >= near, ed[kn] >= near
    if a_in:
      cx[count], cy[count], cd[count] = ex[k], ey[k], ed[k]
      count += 1
    if a_in != b_in:
      i0, i1 = k, kn
      if (ed[i1], ex[i1], ey[i1]) < (ed[i0], ex[i0], ey[i0]):
        i0, i1 = i1, i0
      t = (near - ed[i0]) / (ed[i1] - ed[i0])
      cx[count] = ex[i0] + t * (ex[i1] - ex[i0])
      cy[count] = ey[i0] + t * (ey[i1] - ey[i0])
      cd[count] = near
      count += 1
  return count


def _raster_triangle_numpy(sx, sy, ux, uy, uz, front, cols, rows, zfront, zback):
  height, width = zfront.shape
  ax, ay, bx, by = ux[1] - ux[0], uy[1] - uy[0], ux[2] - ux[0], uy[2] - uy[0]
  ox, oy = ux[0], uy[0]
  det = ax * by - bx * ay
  if det == 0.0:
    ax, ay, bx, by = sx[1] - sx[0], sy[1] - sy[0], sx[2] - sx[0], sy[2] - sy[0]
    ox, oy = sx[0], sy[0]
    det = ax * by - bx * ay
    if det == 0.0:
      return
  dzdx = ((uz[1] - uz[0]) * by - (uz[2] - uz[0]) * ay) / det
  dzdy = (ax * (uz[2] - uz[0]) - bx * (uz[1] - uz[0])) / det
  ix0 = max(0, int(np.ceil(sx.min() - 0.5)))
  ix1 = min(width - 1, int(np.floor(sx.max() - 0.5)))
  iy0 = max(0, int(np.ceil(sy.min() - 0.5)))
  iy1 = min(height - 1, int(np.floor(sy.max() - 0.5)))
  if ix1 < ix0 or iy1 < iy0:
    return
  px = cols[ix0:ix1 + 1][None, :]
  py = rows[iy0:iy1 + 1][:, None]
  inside = np.ones((iy1 - iy0 + 1, ix1 - ix0 + 1), bool)
  for a, b in ((1, 2), (2, 0), (0, 1)):
    if sx[a] < sx[b] or (sx[a] == sx[b] and sy[a] < sy[b]):
      e = (sx[b] - sx[a]) * (py - sy[a]) - (sy[b] - sy[a]) * (px - sx[a])
    else:
      e = -((sx[a] - sx[b]) * (py - sy[b]) - (sy[a] - sy[b]) * (px - sx[b]))
    dy, dx = sy[b] - sy[a], sx[b] - sx[a]
    tie = dy < 0.0 or (dy == 0.0 and dx < 0.0)
    inside &= (e > 0.0) | ((e == 0.0) & tie)
  z = uz[0] + dzdx * (px - ox) + dzdy * (py - oy)
  inside &= z < 1.0
  if front:
    z = z * FRONT_DEPTH_RANGE
    block = zfront[iy0:iy1 + 1, ix0:ix1 + 1]
  else:
    block = zback[iy0:iy1 + 1, ix0:ix1 + 1]
  np.copyto(block, np.minimum(block, z), where=inside)


# ----------------------------------------------------------------------------------------------------------
# Normal estimator
# ----------------------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _fill_filter():
  weights = np.empty((5, 5))
  denom = -2.0 * FILL_SIGMA * FILL_SIGMA
  for i in range(-2, 3):
    for j in range(-2, 3):
      weights[i + 2, j + 2] = math.exp((i * i + j * j) / denom)
  return weights


@numba.njit(cache=True, nogil=True)
def _heap_up(keys, cells, where, index):
  """Moves heap entry `index` up while its key beats its parent's strictly (GAPS RNHeap::BubbleUp)."""
  key = keys[index]
  cell = cells[index]
  while index > 0:
    parent = (index - 1) >> 1
    if not key > keys[parent]:
      break
    keys[index] = keys[parent]
    cells[index] = cells[parent]
    where[cells[index]] = index
    index = parent
  keys[index] = key
  cells[index] = cell
  where[cell] = index
  return index


@numba.njit(cache=True, nogil=True)
def _heap_down(keys, cells, where, index, size):
  """Moves heap entry `index` down below larger children (GAPS RNHeap::BubbleDown, larger key first)."""
  key = keys[index]
  cell = cells[index]
  while True:
    child = 2 * index + 1
    if child >= size:
      break
    if child + 1 < size and keys[child + 1] > keys[child]:
      child += 1
    if key >= keys[child]:
      break
    keys[index] = keys[child]
    cells[index] = cells[child]
    where[cells[index]] = index
    index = child
  keys[index] = key
  cells[index] = cell
  where[cell] = index
  return index


@numba.njit(cache=True, nogil=True)
def _fill_touch(grid, counts, keys, cells, where, size, x, y):
  """A 4-neighbour of a newly known cell: count it and queue or re-rank it. Returns the new heap size."""
  height, width = grid.shape
  if x < 0 or x >= width or y < 0 or y >= height:
    return size
  if grid[y, x] != UNKNOWN:
    return size
  cell = y * width + x
  counts[cell] += 1
  if counts[cell] == 1:
    keys[size] = 1
    cells[size] = cell
    where[cell] = size
    _heap_up(keys, cells, where, size)
    return size + 1
  index = where[cell]
  keys[index] = counts[cell]
  _heap_up(keys, cells, where, _heap_down(keys, cells, where, index, size))
  return size


@numba.njit(cache=True, nogil=True)
def fill_holes_kernel(grid):
  """Port of GAPS R2Grid::FillHoles: in place, fills the UNKNOWN cells of grid float64 [H,W] (row = GAPS y).

  Unknown cells next to known ones are queued in a max-heap keyed by their number of known 4-neighbours and
  popped one at a time, each getting the Gaussian (sigma 1.5, 5x5) weighted mean of the known cells around it.
  The heap operations follow GAPS's RNHeap step for step, so the fill order (and hence the values) match.
  """
  height, width = grid.shape
  weights = _fill_filter()
  num_cells = height * width
  counts = np.zeros(num_cells, np.int32)
  keys = np.empty(num_cells, np.int32)
  cells = np.empty(num_cells, np.int32)
  where = np.empty(num_cells, np.int32)
  size = 0
  for x in range(width):
    for y in range(height):
      if grid[y, x] == UNKNOWN:
        continue
      size = _fill_touch(grid, counts, keys, cells, where, size, x - 1, y)
      size = _fill_touch(grid, counts, keys, cells, where, size, x, y - 1)
      size = _fill_touch(grid, counts, keys, cells, where, size, x + 1, y)
      size = _fill_touch(grid, counts, keys, cells, where, size, x, y + 1)
  while size > 0:
    cell = cells[0]
    size -= 1
    if size > 0:
      keys[0] = keys[size]
      cells[0] = cells[size]
      where[cells[0]] = 0
      _heap_down(keys, cells, where, 0, size)
    y = cell // width
    x = cell - y * width
    total = 0.0
    weight = 0.0
    for i in range(-2, 3):
      nx = x + i
      if nx < 0 or nx >= width:
        continue
      for j in range(-2, 3):
        ny = y + j
        if ny < 0 or ny >= height:
          continue
        value = grid[ny, nx]
        if value == UNKNOWN:
          continue
        w = weights[i + 2, j + 2]
        total += w * value
        weight += w
    if weight > 0.0:
      grid[y, x] = total / weight
    size = _fill_touch(grid, counts, keys, cells, where, size, x - 1, y)
    size = _fill_touch(grid, counts, keys, cells, where, size, x, y - 1)
    size = _fill_touch(grid, counts, keys, cells, where, size, x + 1, y)
    size = _fill_touch(grid, counts, keys, cells, where, size, x, y + 1)


@numba.njit(cache=True, nogil=True)
def boundary_kernel(depth, filled, depth_threshold):
  """Port of GAPS RGBDCreateBoundaryChannel. depth, filled float64 [H,W] (GAPS y rows; background UNKNOWN in
  depth, hole-filled in filled) -> int8 [H,W] labels (0 none, 1 border, 2 silhouette, 4 shadow)."""
  height, width = depth.shape
  labels = np.zeros((height, width), np.int8)
  for i in range(width):
    for j in range(height):
      labels[j, i] = BORDER_BOUNDARY
      if depth[j, i] > EPSILON:
        break
    for j in range(height - 1, -1, -1):
      labels[j, i] = BORDER_BOUNDARY
      if depth[j, i] > EPSILON:
        break
  for j in range(height):
    for i in range(width):
      labels[j, i] = BORDER_BOUNDARY
      if depth[j, i] > EPSILON:
        break
    for i in range(width - 1, -1, -1):
      labels[j, i] = BORDER_BOUNDARY
      if depth[j, i] > EPSILON:
        break
  for i in range(1, width - 1):
    for j in range(1, height - 1):
      if depth[j, i] <= EPSILON:
        labels[j, i] = BORDER_BOUNDARY
        continue
      d = filled[j, i]
      if d <= EPSILON:
        continue
      threshold = d * depth_threshold
      if threshold < 0.1:
        threshold = 0.1
      for k in range(4):
        s = -1 if k < 3 else 0
        t = k - 1 if k < 3 else -1
        da = filled[j - t, i - s]
        if da <= EPSILON:
          labels[j, i] = BORDER_BOUNDARY
          break
        db = filled[j + t, i + s]
        if db <= EPSILON:
          labels[j, i] = BORDER_BOUNDARY
          break
        delta_a = d - da
        delta_b = db - d
        if delta_a < -threshold:
          if delta_a < 4.0 * delta_b:
            labels[j - t, i - s] = SHADOW_BOUNDARY
            labels[j, i] = SILHOUETTE_BOUNDARY
        elif delta_a > threshold:
          if delta_a > 4.0 * delta_b:
            labels[j - t, i - s] = SILHOUETTE_BOUNDARY
            labels[j, i] = SHADOW_BOUNDARY
        if delta_b < -threshold:
          if delta_b < 4.0 * delta_a:
            labels[j + t, i + s] = SILHOUETTE_BOUNDARY
            labels[j, i] = SHADOW_BOUNDARY
        elif delta_b > threshold:
          if delta_b > 4.0 * delta_a:
            labels[j + t, i + s] = SHADOW_BOUNDARY
            labels[j, i] = SILHOUETTE_BOUNDARY
  return labels


@numba.njit(cache=True, nogil=True)
def _jacobi_eigen(m, values, vectors):
  """Eigen-decomposition of a symmetric 3x3 matrix by cyclic Jacobi rotations (accurate for tiny eigenvalues).

  m float64 [3,3] is overwritten; values [3] and vectors [3,3] (columns) receive the result, unsorted.
  """
  for r in range(3):
    for c in range(3):
      vectors[r, c] = 1.0 if r == c else 0.0
  for _ in range(50):
    off = abs(m[0, 1]) + abs(m[0, 2]) + abs(m[1, 2])
    scale = abs(m[0, 0]) + abs(m[1, 1]) + abs(m[2, 2])
    if off == 0.0 or off <= 1e-300 or off < 1e-18 * scale:
      break
    for p in range(2):
      for q in range(p + 1, 3):
        apq = m[p, q]
        if apq == 0.0:
          continue
        theta = (m[q, q] - m[p, p]) / (2.0 * apq)
        t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
        if theta < 0.0:
          t = -t
        c = 1.0 / math.sqrt(t * t + 1.0)
        s = t * c
        for k in range(3):
          mkp = m[k, p]
          mkq = m[k, q]
          m[k, p] = c * mkp - s * mkq
          m[k, q] = s * mkp + c * mkq
        for k in range(3):
          mpk = m[p, k]
          mqk = m[q, k]
          m[p, k] = c * mpk - s * mqk
          m[q, k] = s * mpk + c * mqk
        for k in range(3):
          vkp = vectors[k, p]
          vkq = vectors[k, q]
          vectors[k, p] = c * vkp - s * vkq
          vectors[k, q] = s * vkp + c * vkq
  for k in range(3):
    values[k] = m[k, k]


@numba.njit(cache=True, nogil=True)
def _encode_normal(n):
  value = (n + 1.0) * 32768.0
  if value <= 0.0:
    return 0
  if value > 65535.0:
    return 65535
  return int(value)


@numba.njit(cache=True, nogil=True)
def _smallest_axis(c00, c01, c02, c11, c12, c22, matrix, values, vectors):
  """Largest eigenvalue and unit eigenvector of the smallest one of a symmetric PSD 3x3 matrix.

  Closed-form eigenvalues (trigonometric solution of the characteristic cubic) and the eigenvector from the
  cross products of the rows of (C - lambda_min I); falls back to Jacobi rotations when the two smallest
  eigenvalues are (nearly) equal and the axis is ill-determined. Returns (lambda_max, nx, ny, nz).
  """
  off = c01 * c01 + c02 * c02 + c12 * c12
  q = (c00 + c11 + c22) / 3.0
  if off > 0.0:
    a00 = c00 - q
    a11 = c11 - q
    a22 = c22 - q
    p = math.sqrt((a00 * a00 + a11 * a11 + a22 * a22 + 2.0 * off) / 6.0)
    det = (a00 * (a11 * a22 - c12 * c12) - c01 * (c01 * a22 - c12 * c02) + c02 * (c01 * c12 - a11 * c02))
    half_det = det / (2.0 * p * p * p)
    half_det = min(1.0, max(-1.0, half_det))
    phi = math.acos(half_det) / 3.0
    lmax = q + 2.0 * p * math.cos(phi)
    lmin = q + 2.0 * p * math.cos(phi + 2.0 * math.pi / 3.0)
    lmid = 3.0 * q - lmax - lmin
    if lmid - lmin > 1e-6 * (lmax - lmin):
      r0x = c00 - lmin
      r1y = c11 - lmin
      r2z = c22 - lmin
      # Rows (r0x, c01, c02), (c01, r1y, c12), (c02, c12, r2z); take the best-conditioned cross product.
      ax = c01 * c12 - c02 * r1y
      ay = c02 * c01 - r0x * c12
      az = r0x * r1y - c01 * c01
      bx = c01 * r2z - c02 * c12
      by = c02 * c02 - r0x * r2z
      bz = r0x * c12 - c01 * c02
      cx = r1y * r2z - c12 * c12
      cy = c12 * c02 - c01 * r2z
      cz = c01 * c12 - r1y * c02
      na = ax * ax + ay * ay + az * az
      nb = bx * bx + by * by + bz * bz
      nc = cx * cx + cy * cy + cz * cz
      if nb > na and nb >= nc:
        ax, ay, az, na = bx, by, bz, nb
      elif nc > na:
        ax, ay, az, na = cx, cy, cz, nc
      if na > 0.0:
        norm = math.sqrt(na)
        return lmax, ax / norm, ay / norm, az / norm
  matrix[0, 0] = c00
  matrix[0, 1] = c01
  matrix[0, 2] = c02
  matrix[1, 0] = c01
  matrix[1, 1] = c11
  matrix[1, 2] = c12
  matrix[2, 0] = c02
  matrix[2, 1] = c12
  matrix[2, 2] = c22
  _jacobi_eigen(matrix, values, vectors)
  kmin = 0
  kmax = 0
  for k in range(1, 3):
    if values[k] < values[kmin]:
      kmin = k
    if values[k] > values[kmax]:
      kmax = k
  return values[kmax], vectors[0, kmin], vectors[1, kmin], vectors[2, kmin]


@numba.njit(cache=True, nogil=True)
def _neighbour_ok(i, j, nx, ny, seed_label, depth, labels, pos_x, pos_y, pos_z, world_sq):
  """GAPS's tests for adding pixel (nx, ny) to the neighbourhood of seed (i, j) (radius-1 case)."""
  height, width = depth.shape
  if nx < 0 or nx >= width or ny < 0 or ny >= height:
    return False
  if depth[ny, nx] <= EPSILON:
    return False
  if world_sq > 0.0:
    ddx = pos_x[ny, nx] - pos_x[j, i]
    ddy = pos_y[ny, nx] - pos_y[j, i]
    ddz = pos_z[ny, nx] - pos_z[j, i]
    if ddx * ddx + ddy * ddy + ddz * ddz > world_sq:
      return False
  label = labels[ny, nx]
  if seed_label == SHADOW_BOUNDARY and label == SILHOUETTE_BOUNDARY:
    return False
  if seed_label == SILHOUETTE_BOUNDARY and label == SHADOW_BOUNDARY:
    return False
  return True


@numba.njit(cache=True, nogil=True)
def normals_kernel(png, fx, fy, cx, cy, world_radius, pixel_radius, radius_divisor, depth_threshold,
                   radius_scale, force_search, out):
  """Per-pixel PCA normals of one depth image (port of GAPS conf2img -create_normal_images).

  png uint16 [H,W] depth PNG values (row 0 = top); out uint16 [4,H,W] receives the nx, ny, nz and radius PNG
  values (background / fewer than 3 neighbours: 0 in all four). pixel_radius is GAPS's rounded pixel radius;
  radius_divisor its unrounded neighbourhood_pixel_radius argument (the radius image is divided by it when >
  1); radius_scale the radius PNG scale (conf2img's png_distance_scale, 4000). With pixel_radius 1 the
  depth-first search reduces to the seed and its 4-neighbours; force_search runs the general search anyway
  (the tests check the two agree).
  """
  height, width = png.shape
  depth = np.empty((height, width))
  for j in range(height):
    for i in range(width):
      raw = png[height - 1 - j, i]
      depth[j, i] = UNKNOWN if raw == 0 else raw * 0.001
  filled = depth.copy()
  fill_holes_kernel(filled)
  labels = boundary_kernel(depth, filled, depth_threshold)
  pos_x = np.zeros((height, width))
  pos_y = np.zeros((height, width))
  pos_z = np.zeros((height, width))
  for j in range(height):
    for i in range(width):
      d = depth[j, i]
      if d <= EPSILON:
        continue
      pos_x[j, i] = ((i + 0.5) - cx) * d / fx
      pos_y[j, i] = ((j + 0.5) - cy) * d / fy
      pos_z[j, i] = -d
  search = force_search or pixel_radius != 1
  stamp = np.full((height, width), -1, np.int64)
  stack = np.empty(height * width, np.int64)
  max_points = (2 * pixel_radius + 1) * (2 * pixel_radius + 1)
  points = np.empty((max(max_points, 5), 3))
  matrix = np.empty((3, 3))
  values = np.empty(3)
  vectors = np.empty((3, 3))
  radius_sq = pixel_radius * pixel_radius
  world_sq = world_radius * world_radius
  out[:, :, :] = 0
  for i in range(width):
    for j in range(height):
      if depth[j, i] <= EPSILON:
        continue
      sx = pos_x[j, i]
      sy = pos_y[j, i]
      sz = pos_z[j, i]
      points[0, 0] = sx
      points[0, 1] = sy
      points[0, 2] = sz
      npoints = 1
      if not search:
        # Same points, in the same order, as the depth-first search visits them for a radius of 1.
        seed_label = labels[j, i]
        for k in range(4):
          nx = i + 1 if k == 0 else (i - 1 if k == 3 else i)
          ny = j + 1 if k == 1 else (j - 1 if k == 2 else j)
          if _neighbour_ok(i, j, nx, ny, seed_label, depth, labels, pos_x, pos_y, pos_z, world_sq):
            points[npoints, 0] = pos_x[ny, nx]
            points[npoints, 1] = pos_y[ny, nx]
            points[npoints, 2] = pos_z[ny, nx]
            npoints += 1
      else:
        seed = j * width + i
        npoints = 0
        stamp[j, i] = seed
        stack[0] = seed
        top = 1
        while top > 0:
          top -= 1
          cur = stack[top]
          iy = cur // width
          ix = cur - iy * width
          if npoints < max_points:
            points[npoints, 0] = pos_x[iy, ix]
            points[npoints, 1] = pos_y[iy, ix]
            points[npoints, 2] = pos_z[iy, ix]
            npoints += 1
          cur_label = labels[iy, ix]
          for nx in range(ix - 1, ix + 2):
            if nx < 0 or nx >= width:
              continue
            for ny in range(iy - 1, iy + 2):
              if ny < 0 or ny >= height:
                continue
              if stamp[ny, nx] == seed:
                continue
              stamp[ny, nx] = seed
              if depth[ny, nx] <= EPSILON:
                continue
              if (nx - i) * (nx - i) + (ny - j) * (ny - j) > radius_sq:
                continue
              if world_sq > 0.0:
                ddx = pos_x[ny, nx] - sx
                ddy = pos_y[ny, nx] - sy
                ddz = pos_z[ny, nx] - sz
                if ddx * ddx + ddy * ddy + ddz * ddz > world_sq:
                  continue
              nb_label = labels[ny, nx]
              if cur_label == SHADOW_BOUNDARY and nb_label == SILHOUETTE_BOUNDARY:
                continue
              if cur_label == SILHOUETTE_BOUNDARY and nb_label == SHADOW_BOUNDARY:
                continue
              stack[top] = ny * width + nx
              top += 1
      if npoints < 3:
        continue
      mx = 0.0
      my = 0.0
      mz = 0.0
      for k in range(npoints):
        mx += points[k, 0]
        my += points[k, 1]
        mz += points[k, 2]
      mx /= npoints
      my /= npoints
      mz /= npoints
      c00 = 0.0
      c01 = 0.0
      c02 = 0.0
      c11 = 0.0
      c12 = 0.0
      c22 = 0.0
      for k in range(npoints):
        x = points[k, 0] - mx
        y = points[k, 1] - my
        z = points[k, 2] - mz
        c00 += x * x
        c01 += x * y
        c02 += x * z
        c11 += y * y
        c12 += y * z
        c22 += z * z
      lmax, nxv, nyv, nzv = _smallest_axis(c00 / npoints, c01 / npoints, c02 / npoints, c11 / npoints,
                                           c12 / npoints, c22 / npoints, matrix, values, vectors)
      if -(nxv * sx + nyv * sy + nzv * sz) < 0.0:  # orient towards the camera at the origin
        nxv = -nxv
        nyv = -nyv
        nzv = -nzv
      row = height - 1 - j
      out[0, row, i] = _encode_normal(nxv)
      out[1, row, i] = _encode_normal(nyv)
      out[2, row, i] = _encode_normal(nzv)
      radius = 3.0 * math.sqrt(max(lmax, 0.0))
      if radius_divisor > 1:
        radius /= radius_divisor
      radius *= radius_scale
      out[3, row, i] = 65535 if radius > 65535.0 else int(radius)


def normals_numpy(png, fx, fy, cx, cy, world_radius, pixel_radius, radius_divisor, depth_threshold,
                  radius_scale):
  """Slow twin of `normals_kernel`: Python neighbourhood search, batched `numpy.linalg.eigh` for the PCA."""
  png = np.asarray(png)
  height, width = png.shape
  raw = png[::-1].astype(np.float64)
  depth = np.where(raw == 0, UNKNOWN, raw * 0.001)
  labels = boundary_numpy(depth, fill_holes_numpy(depth), depth_threshold)
  jj, ii = np.mgrid[0:height, 0:width]
  positions = np.stack([((ii + 0.5) - cx) * depth / fx, ((jj + 0.5) - cy) * depth / fy, -depth], axis=-1)
  valid = depth > EPSILON
  seeds, covariances = [], []
  for j, i in zip(*np.nonzero(valid)):
    found, stack, seen = [], [(j, i)], {(j, i)}
    while stack:
      cj, ci = stack.pop()
      found.append(positions[cj, ci])
      for ni in range(ci - 1, ci + 2):
        for nj in range(cj - 1, cj + 2):
          if not (0 <= ni < width and 0 <= nj < height) or (nj, ni) in seen:
            continue
          seen.add((nj, ni))
          if (not valid[nj, ni] or (ni - i) ** 2 + (nj - j) ** 2 > pixel_radius ** 2
              or np.sum((positions[nj, ni] - positions[j, i]) ** 2) > world_radius * world_radius
              or {labels[cj, ci], labels[nj, ni]} == {SILHOUETTE_BOUNDARY, SHADOW_BOUNDARY}):
            continue
          stack.append((nj, ni))
    if len(found) >= 3:
      found = np.array(found)
      centred = found - found.mean(axis=0)
      seeds.append((j, i))
      covariances.append(centred.T @ centred / len(found))
  out = np.zeros((4, height, width), np.uint16)
  if not seeds:
    return out
  eigenvalues, eigenvectors = np.linalg.eigh(np.array(covariances))
  seeds = np.array(seeds)
  normals = eigenvectors[:, :, 0]
  seed_positions = positions[seeds[:, 0], seeds[:, 1]]
  normals = np.where((np.sum(normals * seed_positions, axis=1) > 0.0)[:, None], -normals, normals)
  encoded = np.clip(np.floor((normals + 1.0) * 32768.0), 0, 65535)
  radius = 3.0 * np.sqrt(np.maximum(eigenvalues[:, 2], 0.0))
  if radius_divisor > 1:
    radius = radius / radius_divisor
  rows = height - 1 - seeds[:, 0]
  for c in range(3):
    out[c, rows, seeds[:, 1]] = encoded[:, c]
  out[3, rows, seeds[:, 1]] = np.clip(np.floor(radius * radius_scale), 0, 65535)
  return out


def fill_holes_numpy(grid):
  """Slow twin of `fill_holes_kernel`: returns a filled copy, replaying GAPS's heap in plain Python."""
  grid = np.array(grid, np.float64)
  height, width = grid.shape
  offsets = np.arange(-2, 3)
  weights = np.exp((offsets[:, None] ** 2 + offsets[None, :] ** 2) / (-2.0 * FILL_SIGMA * FILL_SIGMA))
  counts = {}
  heap = []
  where = {}

  def swap(i, j):
    heap[i], heap[j] = heap[j], heap[i]
    where[heap[i]], where[heap[j]] = i, j

  def up(i):
    while i > 0 and counts[heap[i]] > counts[heap[(i - 1) // 2]]:
      swap(i, (i - 1) // 2)
      i = (i - 1) // 2
    return i

  def down(i):
    while 2 * i + 1 < len(heap):
      child = 2 * i + 1
      if child + 1 < len(heap) and counts[heap[child + 1]] > counts[heap[child]]:
        child += 1
      if counts[heap[i]] >= counts[heap[child]]:
        break
      swap(i, child)
      i = child
    return i

  def touch(x, y):
    if 0 <= x < width and 0 <= y < height and grid[y, x] == UNKNOWN:
      key = (y, x)
      counts[key] = counts.get(key, 0) + 1
      if counts[key] == 1:
        heap.append(key)
        where[key] = len(heap) - 1
        up(len(heap) - 1)
      else:
        up(down(where[key]))

  for x in range(width):
    for y in range(height):
      if grid[y, x] != UNKNOWN:
        for nx, ny in ((x - 1, y), (x, y - 1), (x + 1, y), (x, y + 1)):
          touch(nx, ny)
  while heap:
    y, x = heap[0]
    last = heap.pop()
    if heap:
      heap[0] = last
      where[last] = 0
      down(0)
    x0, x1, y0, y1 = max(0, x - 2), min(width, x + 3), max(0, y - 2), min(height, y + 3)
    block = grid[y0:y1, x0:x1].T   # [x, y], as the weights
    w = weights[x0 - x + 2:x1 - x + 2, y0 - y + 2:y1 - y + 2] * (block != UNKNOWN)
    grid[y, x] = np.sum(w * np.where(block != UNKNOWN, block, 0.0)) / np.sum(w)
    for nx, ny in ((x - 1, y), (x, y - 1), (x + 1, y), (x, y + 1)):
      touch(nx, ny)
  return grid


def boundary_numpy(depth, filled, depth_threshold):
  """Slow twin of `boundary_kernel` (plain Python loops over numpy arrays)."""
  height, width = depth.shape
  labels = np.zeros((height, width), np.int8)
  positive = depth > EPSILON
  for i in range(width):
    column = np.nonzero(positive[:, i])[0]
    labels[:(column[0] + 1 if len(column) else height), i] = BORDER_BOUNDARY
    labels[(column[-1] if len(column) else 0):, i] = BORDER_BOUNDARY
  for j in range(height):
    row = np.nonzero(positive[j, :])[0]
    labels[j, :(row[0] + 1 if len(row) else width)] = BORDER_BOUNDARY
    labels[j, (row[-1] if len(row) else 0):] = BORDER_BOUNDARY
  steps = [(-1, -1), (-1, 0), (-1, 1), (0, -1)]
  for i in range(1, width - 1):
    for j in range(1, height - 1):
      if not positive[j, i]:
        labels[j, i] = BORDER_BOUNDARY
        continue
      d = filled[j, i]
      threshold = max(d * depth_threshold, 0.1)
      for s, t in steps:
        da, db = filled[j - t, i - s], filled[j + t, i + s]
        if da <= EPSILON or db <= EPSILON:
          labels[j, i] = BORDER_BOUNDARY
          break
        delta_a, delta_b = d - da, db - d
        if delta_a < -threshold and delta_a < 4.0 * delta_b:
          labels[j - t, i - s], labels[j, i] = SHADOW_BOUNDARY, SILHOUETTE_BOUNDARY
        elif delta_a > threshold and delta_a > 4.0 * delta_b:
          labels[j - t, i - s], labels[j, i] = SILHOUETTE_BOUNDARY, SHADOW_BOUNDARY
        if delta_b < -threshold and delta_b < 4.0 * delta_a:
          labels[j + t, i + s], labels[j, i] = SILHOUETTE_BOUNDARY, SHADOW_BOUNDARY
        elif delta_b > threshold and delta_b > 4.0 * delta_a:
          labels[j + t, i + s], labels[j, i] = SHADOW_BOUNDARY, SILHOUETTE_BOUNDARY
  return labels

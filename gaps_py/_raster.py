"""Numba kernels for gaps_py.scn2img (depth rasterizer) and gaps_py.conf2img (per-pixel PCA normals).

Private module: the validating numpy wrappers are `gaps_py.scn2img.render_depth_images` and
`gaps_py.conf2img.normal_images`. Every kernel has a slow plain-numpy twin (`*_numpy`) that the tests compare
it with.

Depth rasterizer (port of what GAPS scn2img does through OpenGL, i.e. OSMesa on Mesa's llvmpipe): the
depth values are computed with the same float32 operations, in the same order, as that pipeline, so that
floor(1000 d) lands on the same integer as in GAPS's PNGs (bit-identical on all 40 views of LDIF's bob and
blub; the order of operations below was selected by measuring variants against those PNGs).
  * Matrices: GAPS's modelview and gluPerspective projection (float64, `gaps_py.scn2img.gl_matrices`) are
    rounded to float32 and multiplied in float32 (projection @ modelview, Mesa's C loop).
  * Vertex stage (fixed-function vertex program): clip = x c0 + y c1 + z c2 + c3 over the columns of that
    matrix, products and sums rounded separately; then 1/w, ndc = clip * (1/w) and the viewport transform as
    fused multiply-adds (LLVM's fmuladd on an FMA-capable CPU). The viewport flips y (window-system
    framebuffer: raster row 0 at the top); window z uses glDepthRange(0, 0.999999) for GAPS's first,
    back-face-culled pass and [0, 1] for the second.
  * Triangle (a, b, c) is passed on as (b, c, a). Triangles with a vertex outside the view volume are
    clipped in clip space against the six frustum planes as Mesa's draw module does (Sutherland-Hodgman,
    its interpolation and float32 divide/viewport for the new vertices) and emitted as a fan.
  * Coverage: window x, y snapped to 1/256 px relative to pixel centres (round half to even); pixel centres
    strictly inside, or on an edge that is "top-left" in raster orientation, are covered.
  * Depth: the plane coefficients of window z are computed by llvmpipe's setup in float32 from the unsnapped
    window coordinates, referred to the framebuffer origin (a0 at pixel (0, 0), dz/dx, dz/dy; clockwise
    triangles get their last two vertices swapped); z at pixel (i, j) = fma(dz/dy, j, fma(dz/dx, i, a0)).
    It is stored in a 24-bit unsigned normalized depth buffer (OSMesa's choice for 32 requested depth bits
    without stencil) with GL_LESS.
  * GAPS draws all triangles twice, first culling back faces with glDepthRange(0, 0.999999), then everything
    at [0, 1]: front faces win ties and back faces only show where nothing front-facing is (almost) as close.
  * Read back: float32(k / (2^24 - 1)) as glReadPixels(GL_FLOAT) returns it, unprojected in double with the
    float32 projection matrix as if the depth range were [0, 1] (gluUnProject), so front faces read back very
    slightly closer than they are. PNG value = floor(1000 d); background and values > 65535 are 0.

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
DEPTH_UNORM_MAX = 16777215  # 2^24 - 1: OSMesa's Z24X8 depth buffer
SUBPIXEL = 256.0
FILL_SIGMA = 1.5


# ----------------------------------------------------------------------------------------------------------
# Depth rasterizer
# ----------------------------------------------------------------------------------------------------------

# Float division by zero gives inf/nan (as in the C and LLVM code emulated here) instead of raising.
_gl_jit = numba.njit(cache=True, nogil=True, error_model='numpy')


@_gl_jit
def fma32(a, b, c):
  """a * b + c for float32 a, b, c with a single rounding to float32 (what a fused multiply-add gives).

  The product is exact in float64 and the float64 sum is exact for operands of similar magnitude; when it is
  not, its rounding error (TwoSum) decides the rare case of a sum that lands exactly halfway between two
  float32 values. Returns float32.
  """
  p = np.float64(a) * np.float64(b)
  cc = np.float64(c)
  s = p + cc
  bv = s - p
  err = (p - (s - bv)) + (cc - bv)
  r = np.float32(s)
  if err != 0.0:
    rd = np.float64(r)
    other = 2.0 * s - rd  # the float32 neighbour of r iff s lies exactly halfway between the two
    if other != rd and np.float64(np.float32(other)) == other and (err > 0.0) == (other > rd):
      r = np.float32(other)
  return r


@_gl_jit
def _mvp32(modelview, projection):
  """float32 projection @ modelview with Mesa's C loop: four products summed left to right, each rounded."""
  m = np.empty((4, 4), np.float32)
  p = np.empty((4, 4), np.float32)
  for i in range(4):
    for j in range(4):
      m[i, j] = np.float32(modelview[i, j])
      p[i, j] = np.float32(projection[i, j])
  mvp = np.empty((4, 4), np.float32)
  for i in range(4):
    for j in range(4):
      s = np.float32(p[i, 0] * m[0, j])
      s = np.float32(s + np.float32(p[i, 1] * m[1, j]))
      s = np.float32(s + np.float32(p[i, 2] * m[2, j]))
      mvp[i, j] = np.float32(s + np.float32(p[i, 3] * m[3, j]))
  return mvp, p


@_gl_jit
def _fixed(value):
  """Window coordinate (float32) -> llvmpipe's 1/256-pixel fixed point relative to pixel centres (float64).

  Pixel centre i + 0.5 maps to 256 i; rounding is to nearest, ties to even (SSE cvtps2dq).
  """
  return np.float64(np.rint(np.float32(np.float32(value - np.float32(0.5)) * np.float32(SUBPIXEL))))


@_gl_jit
def _inside(e, ex, ey):
  """Edge value e < 0 is inside; e == 0 counts for edges with ey < 0 or (ey == 0 and ex > 0)."""
  return e < 0.0 or (e == 0.0 and (ey < 0.0 or (ey == 0.0 and ex > 0.0)))


@_gl_jit
def _raster_triangle(row_0, row_1, row_2, zfront, zback):
  """Rasterizes one triangle given in the vertex order llvmpipe's triangle setup receives it.

  Rows are float32 [8]: clip x, y, z, w, window x, raster y (down), front z, back z. Front-facing triangles
  (counter-clockwise in GL's y-up window) go to `zfront` with their glDepthRange(0, 0.999999) depths,
  back-facing ones to `zback` with [0, 1] depths; both are Z24 buffers (int64 [H, W], GL_LESS).
  """
  height, width = zfront.shape
  x0, y0, x1, y1, x2, y2 = row_0[4], row_0[5], row_1[4], row_1[5], row_2[4], row_2[5]
  fx0 = _fixed(x0)
  fy0 = _fixed(y0)
  fx1 = _fixed(x1)
  fy1 = _fixed(y1)
  fx2 = _fixed(x2)
  fy2 = _fixed(y2)
  area = (fx0 - fx1) * (fy2 - fy0) - (fx2 - fx0) * (fy0 - fy1)
  if area == 0.0:
    return
  if area > 0.0:
    z0, z1, z2 = row_0[6], row_1[6], row_2[6]
    buf = zfront
  else:  # clockwise: the setup swaps the last two vertices (first-vertex-provoking convention)
    x1, y1, x2, y2 = x2, y2, x1, y1
    fx1, fy1, fx2, fy2 = fx2, fy2, fx1, fy1
    z0, z1, z2 = row_0[7], row_2[7], row_1[7]
    buf = zback
  # Plane coefficients as llvmpipe's setup computes them (float32, referred to the framebuffer origin).
  dx01 = np.float32(x0 - x1)
  dy01 = np.float32(y0 - y1)
  dx20 = np.float32(x2 - x0)
  dy20 = np.float32(y2 - y0)
  det = np.float32(np.float32(dx01 * dy20) - np.float32(dy01 * dx20))
  if det == 0.0:
    return
  ooa = np.float32(np.float32(1.0) / det)
  dx20 = np.float32(dx20 * ooa)
  dy20 = np.float32(dy20 * ooa)
  dx01 = np.float32(dx01 * ooa)
  dy01 = np.float32(dy01 * ooa)
  da01 = np.float32(z0 - z1)
  da20 = np.float32(z2 - z0)
  dzdx = np.float32(np.float32(da01 * dy20) - np.float32(da20 * dy01))
  dzdy = np.float32(np.float32(da20 * dx01) - np.float32(da01 * dx20))
  x0c = np.float32(x0 - np.float32(0.5))
  y0c = np.float32(y0 - np.float32(0.5))
  a0 = np.float32(z0 - np.float32(np.float32(dzdx * x0c) + np.float32(dzdy * y0c)))
  # Edges in positive-area order (clockwise on screen); pixel centres are multiples of 256 in fixed point.
  e0x = fx1 - fx0
  e0y = fy1 - fy0
  e1x = fx2 - fx1
  e1y = fy2 - fy1
  e2x = fx0 - fx2
  e2y = fy0 - fy2
  # Pixel bounding box, clamped to the image before converting to integers.
  x_lo = max(0.0, math.ceil(min(fx0, fx1, fx2) / SUBPIXEL))
  x_hi = min(width - 1.0, math.floor(max(fx0, fx1, fx2) / SUBPIXEL))
  y_lo = max(0.0, math.ceil(min(fy0, fy1, fy2) / SUBPIXEL))
  y_hi = min(height - 1.0, math.floor(max(fy0, fy1, fy2) / SUBPIXEL))
  if not (x_lo <= x_hi and y_lo <= y_hi):
    return
  for iy in range(int(y_lo), int(y_hi) + 1):
    py = iy * SUBPIXEL
    fy = np.float32(iy)
    for ix in range(int(x_lo), int(x_hi) + 1):
      px = ix * SUBPIXEL
      if not _inside(e0x * (py - fy0) - e0y * (px - fx0), e0x, e0y):
        continue
      if not _inside(e1x * (py - fy1) - e1y * (px - fx1), e1x, e1y):
        continue
      if not _inside(e2x * (py - fy2) - e2y * (px - fx2), e2x, e2y):
        continue
      z = fma32(dzdy, fy, fma32(dzdx, np.float32(ix), a0))
      if z != z:
        continue
      z = min(max(z, np.float32(0.0)), np.float32(1.0))
      k = np.int64(np.rint(np.float32(z * np.float32(DEPTH_UNORM_MAX))))
      if k < buf[iy, ix]:
        buf[iy, ix] = k


@_gl_jit
def _clip_mask(x, y, z, w):
  """Outside bits of a clip-space vertex (draw module's order: +x, -x, +y, -y, near, far)."""
  mask = 0
  if x > w:
    mask |= 1
  if np.float32(x + w) < 0.0:
    mask |= 2
  if y > w:
    mask |= 4
  if np.float32(y + w) < 0.0:
    mask |= 8
  if np.float32(z + w) < 0.0:
    mask |= 16
  if z > w:
    mask |= 32
  return mask


@_gl_jit
def _plane_distance(row, plane):
  """Signed distance (float32) of a polygon row (clip x, y, z, w, ...) to frustum plane 0..5.

  Planes in draw's order: w - x, x + w, w - y, y + w, z + w (near), w - z (far); inside is >= 0.
  """
  coordinate = row[plane // 2]
  if plane == 0 or plane == 2 or plane == 5:
    return np.float32(row[3] - coordinate)
  return np.float32(coordinate + row[3])


@_gl_jit
def _interpolate(dst, t, out_row, in_row, hw, hh, ty, sf):
  """New clip vertex out + t (in - out) and its window coordinates, in float32 as draw's clipper (C code)."""
  for k in range(4):
    dst[k] = np.float32(out_row[k] + np.float32(t * np.float32(in_row[k] - out_row[k])))
  oow = np.float32(np.float32(1.0) / dst[3])
  nz = np.float32(dst[2] * oow)
  half = np.float32(0.5)
  dst[4] = np.float32(np.float32(np.float32(dst[0] * oow) * hw) + hw)
  dst[5] = np.float32(np.float32(np.float32(dst[1] * oow) * -hh) + ty)
  dst[6] = np.float32(np.float32(nz * sf) + sf)
  dst[7] = np.float32(np.float32(nz * half) + half)


@_gl_jit
def _clip_polygon(poly, spare, n, clipmask, hw, hh, ty, sf):
  """Sutherland-Hodgman against the frustum planes in clipmask, as draw's clipper does it.

  poly, spare: float32 [16, 8] rows (clip x, y, z, w, window x, y, front z, back z); the first n rows of poly
  hold the input. Returns (rows, count): the clipped polygon (count 0 if discarded).
  """
  for plane in range(6):
    if not clipmask & (1 << plane):
      continue
    if n < 3:
      break
    poly[n, :] = poly[0, :]
    dp_prev = _plane_distance(poly[0], plane)
    if not math.isfinite(dp_prev):
      return poly, 0
    count = 0
    for i in range(1, n + 1):
      dp = _plane_distance(poly[i], plane)
      if not math.isfinite(dp):
        return poly, 0
      if dp_prev >= 0.0:
        spare[count, :] = poly[i - 1, :]
        count += 1
        crossing = dp < 0.0
      else:
        crossing = not dp < 0.0
      if crossing:
        denom = np.float32(dp - dp_prev)
        if dp < 0.0:
          if -dp < dp_prev:
            _interpolate(spare[count], np.float32(dp / denom), poly[i], poly[i - 1], hw, hh, ty, sf)
          else:
            _interpolate(spare[count], np.float32(-dp_prev / denom), poly[i - 1], poly[i], hw, hh, ty, sf)
        elif -dp_prev < dp:
          _interpolate(spare[count], np.float32(-dp_prev / denom), poly[i - 1], poly[i], hw, hh, ty, sf)
        else:
          _interpolate(spare[count], np.float32(dp / denom), poly[i], poly[i - 1], hw, hh, ty, sf)
        count += 1
      dp_prev = dp
    poly, spare = spare, poly
    n = count
  return poly, n


@_gl_jit
def depth_views_kernel(vertices, faces, modelviews, projections, width, height, out):
  """Renders V depth images the way GAPS scn2img's OpenGL (OSMesa, Mesa llvmpipe) does, in float32.

  vertices float64 [N,3], faces int64 [F,3] (gaps frame); modelviews, projections float64 [V,4,4] (GAPS's
  double-precision camera matrices: `gaps_py.scn2img.gl_matrices`); out uint16 [V,H,W] receives the PNG
  values (floor(1000 d), 0 = background, row 0 = top).
  """
  num_views = modelviews.shape[0]
  num_vertices = vertices.shape[0]
  rows = np.empty((num_vertices, 8), np.float32)  # clip x, y, z, w, window x, y, front z, back z
  masks = np.empty(num_vertices, np.int64)
  zfront = np.empty((height, width), np.int64)
  zback = np.empty((height, width), np.int64)
  poly = np.empty((16, 8), np.float32)
  spare = np.empty((16, 8), np.float32)
  hw = np.float32(0.5 * width)
  hh = np.float32(0.5 * height)
  ty = np.float32(np.float32(height) - hh)  # the y flip of a window-system framebuffer
  sf = np.float32(0.5 * FRONT_DEPTH_RANGE)
  half = np.float32(0.5)
  for v in range(num_views):
    mvp, p32 = _mvp32(modelviews[v], projections[v])
    for i in range(num_vertices):
      x = np.float32(vertices[i, 0])
      y = np.float32(vertices[i, 1])
      z = np.float32(vertices[i, 2])
      # Fixed-function vertex program: MUL then MADs over the MVP columns, not fused.
      for r in range(4):
        s = np.float32(x * mvp[r, 0])
        s = np.float32(s + np.float32(y * mvp[r, 1]))
        s = np.float32(s + np.float32(z * mvp[r, 2]))
        rows[i, r] = np.float32(s + mvp[r, 3])
      masks[i] = _clip_mask(rows[i, 0], rows[i, 1], rows[i, 2], rows[i, 3])
      # Perspective divide and viewport (draw module: reciprocal, multiply, fused multiply-add).
      winv = np.float32(np.float32(1.0) / rows[i, 3])
      nz = np.float32(rows[i, 2] * winv)
      rows[i, 4] = fma32(np.float32(rows[i, 0] * winv), hw, hw)
      rows[i, 5] = fma32(np.float32(rows[i, 1] * winv), -hh, ty)
      rows[i, 6] = fma32(nz, sf, sf)
      rows[i, 7] = fma32(nz, half, half)
    zfront[:, :] = DEPTH_UNORM_MAX
    zback[:, :] = DEPTH_UNORM_MAX
    for f in range(faces.shape[0]):
      # Mesa passes triangle (a, b, c) on as (b, c, a) (observed: it is the only order that reproduces
      # GAPS's renders bit for bit; the first-vertex-provoking convention).
      a = faces[f, 1]
      b = faces[f, 2]
      c = faces[f, 0]
      union = masks[a] | masks[b] | masks[c]
      if union == 0:
        _raster_triangle(rows[a], rows[b], rows[c], zfront, zback)
        continue
      if masks[a] & masks[b] & masks[c]:
        continue  # entirely outside one plane
      poly[0, :] = rows[a, :]
      poly[1, :] = rows[b, :]
      poly[2, :] = rows[c, :]
      clipped, count = _clip_polygon(poly, spare, 3, union, hw, hh, ty, sf)
      for k in range(2, count):  # the clipper emits the polygon as a fan around its first vertex
        _raster_triangle(clipped[0], clipped[k - 1], clipped[k], zfront, zback)
    # Read back (Z24 -> float, as glReadPixels(GL_FLOAT)) and unproject in double with the float32
    # projection matrix (as GAPS's gluUnProject does); front faces win ties (GL_LESS, drawn first).
    c22 = np.float64(p32[2, 2])
    c23 = np.float64(p32[2, 3])
    for iy in range(height):
      for ix in range(width):
        out[v, iy, ix] = _depth_to_png(min(zfront[iy, ix], zback[iy, ix]), c22, c23)


@_gl_jit
def _depth_to_png(k, c22, c23):
  """Z24 depth-buffer value -> PNG value (GAPS's CaptureDepth: float read-back, gluUnProject, x1000)."""
  zr = np.float64(np.float32(k * (1.0 / DEPTH_UNORM_MAX)))
  if abs(zr - 1.0) <= EPSILON or zr <= EPSILON:
    return 0
  value = 1000.0 * (c23 / ((2.0 * zr - 1.0) + c22))
  if value > 65535.0 or value < 0.0:
    return 0
  return int(value)


def fma32_numpy(a, b, c):
  """Plain-numpy twin of `fma32` (elementwise over float32 arrays)."""
  a, b, c = (np.asarray(t, np.float32) for t in (a, b, c))
  with np.errstate(over='ignore', invalid='ignore'):
    p = a.astype(np.float64) * b.astype(np.float64)
    cc = c.astype(np.float64)
    s = p + cc
    bv = s - p
    err = (p - (s - bv)) + (cc - bv)
    r = s.astype(np.float32)
    rd = r.astype(np.float64)
    other = 2.0 * s - rd
    tie = (err != 0.0) & (other != rd) & (other.astype(np.float32).astype(np.float64) == other)
    tie &= (err > 0.0) == (other > rd)
    return np.where(tie, other.astype(np.float32), r)


def depth_views_numpy(vertices, faces, modelviews, projections, width, height):
  """Slow plain-numpy twin of `depth_views_kernel` (same arguments, returns uint16 [V,H,W]).

  Per-vertex stages are vectorized float32 numpy; triangles are looped over in Python (clipping with plain
  float32 scalars) and each one's pixel block is evaluated with numpy.
  """
  f32 = np.float32
  out = np.zeros((len(modelviews), height, width), np.uint16)
  hw, hh = f32(0.5 * width), f32(0.5 * height)
  ty = f32(f32(height) - hh)
  sf = f32(0.5 * FRONT_DEPTH_RANGE)
  v32 = vertices.astype(np.float32)
  for v in range(len(modelviews)):
    m = modelviews[v].astype(np.float32)
    p = projections[v].astype(np.float32)
    mvp = np.zeros((4, 4), np.float32)
    for k in range(4):
      mvp = mvp + p[:, k:k + 1] * m[k:k + 1, :]
    clip = np.zeros((len(vertices), 4), np.float32)
    for k in range(3):
      clip = clip + v32[:, k:k + 1] * mvp[:, k][None, :]
    clip = clip + mvp[:, 3][None, :]
    x, y, z, w = clip.T
    masks = ((x > w) * 1 | ((x + w) < 0) * 2 | (y > w) * 4 | ((y + w) < 0) * 8 | ((z + w) < 0) * 16
             | (z > w) * 32)
    with np.errstate(divide='ignore', over='ignore', invalid='ignore'):
      winv = f32(1.0) / w
      nz = z * winv
      rows = np.concatenate([clip, np.stack([fma32_numpy(x * winv, hw, hw), fma32_numpy(y * winv, -hh, ty),
                                             fma32_numpy(nz, sf, sf), fma32_numpy(nz, f32(0.5), f32(0.5))],
                                            axis=1)], axis=1)
    zfront = np.full((height, width), DEPTH_UNORM_MAX, np.int64)
    zback = np.full((height, width), DEPTH_UNORM_MAX, np.int64)
    for face in faces:
      a, b, c = face[1], face[2], face[0]
      union = masks[a] | masks[b] | masks[c]
      if union == 0:
        _raster_triangle_numpy(rows[a], rows[b], rows[c], zfront, zback)
      elif not masks[a] & masks[b] & masks[c]:
        polygon = _clip_polygon_numpy([rows[a], rows[b], rows[c]], union, hw, hh, ty, sf)
        for k in range(2, len(polygon)):
          _raster_triangle_numpy(polygon[0], polygon[k - 1], polygon[k], zfront, zback)
    k_min = np.minimum(zfront, zback)
    zr = (k_min * (1.0 / DEPTH_UNORM_MAX)).astype(np.float32).astype(np.float64)
    valid = (np.abs(zr - 1.0) > EPSILON) & (zr > EPSILON)
    with np.errstate(divide='ignore', invalid='ignore'):
      value = 1000.0 * (np.float64(p[2, 3]) / ((2.0 * zr - 1.0) + np.float64(p[2, 2])))
    valid &= (value <= 65535.0) & (value >= 0.0)
    out[v] = np.where(valid, np.floor(np.where(valid, value, 0.0)), 0).astype(np.uint16)
  return out


def _clip_polygon_numpy(polygon, clipmask, hw, hh, ty, sf):
  """Python version of `_clip_polygon` (rows are float32 [8] arrays); returns the clipped list of rows."""
  f32 = np.float32

  def distance(row, plane):
    coordinate = row[plane // 2]
    return f32(row[3] - coordinate) if plane in (0, 2, 5) else f32(coordinate + row[3])

  def interpolate(t, out_row, in_row):
    clip = out_row[:4] + t * (in_row[:4] - out_row[:4])
    with np.errstate(divide='ignore', over='ignore', invalid='ignore'):  # IEEE inf/nan, as in C
      oow = f32(1.0) / clip[3]
      nz = f32(clip[2] * oow)
      window = [f32(f32(clip[0] * oow) * hw) + hw, f32(f32(clip[1] * oow) * -hh) + ty, f32(nz * sf) + sf,
                f32(nz * f32(0.5)) + f32(0.5)]
    return np.concatenate([clip, np.array(window, np.float32)])

  for plane in range(6):
    if not clipmask & (1 << plane):
      continue
    if len(polygon) < 3:
      break
    ring = polygon + [polygon[0]]
    dp_prev = distance(ring[0], plane)
    if not np.isfinite(dp_prev):
      return []
    clipped = []
    for i in range(1, len(ring)):
      dp = distance(ring[i], plane)
      if not np.isfinite(dp):
        return []
      if dp_prev >= 0:
        clipped.append(ring[i - 1])
        crossing = dp < 0
      else:
        crossing = not dp < 0
      if crossing:
        denom = f32(dp - dp_prev)
        if dp < 0:
          clipped.append(interpolate(f32(dp / denom), ring[i], ring[i - 1]) if -dp < dp_prev
                         else interpolate(f32(-dp_prev / denom), ring[i - 1], ring[i]))
        else:
          clipped.append(interpolate(f32(-dp_prev / denom), ring[i - 1], ring[i]) if -dp_prev < dp
                         else interpolate(f32(dp / denom), ring[i], ring[i - 1]))
      dp_prev = dp
    polygon = clipped
  return polygon


def _raster_triangle_numpy(row_0, row_1, row_2, zfront, zback):
  """numpy version of `_raster_triangle` (rows are float32 [8]: clip xyzw, window x, y, front z, back z)."""
  f32 = np.float32
  height, width = zfront.shape
  verts = [row_0, row_1, row_2]
  fixed = [(float(np.rint(f32(f32(r[4] - f32(0.5)) * f32(SUBPIXEL)))),
            float(np.rint(f32(f32(r[5] - f32(0.5)) * f32(SUBPIXEL))))) for r in verts]
  (fx0, fy0), (fx1, fy1), (fx2, fy2) = fixed
  area = (fx0 - fx1) * (fy2 - fy0) - (fx2 - fx0) * (fy0 - fy1)
  if area == 0.0:
    return
  front = area > 0.0
  if not front:
    verts = [verts[0], verts[2], verts[1]]
  slot = 6 if front else 7
  (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = [(r[4], r[5], r[slot]) for r in verts]
  dx01, dy01, dx20, dy20 = f32(x0 - x1), f32(y0 - y1), f32(x2 - x0), f32(y2 - y0)
  det = f32(f32(dx01 * dy20) - f32(dy01 * dx20))
  if det == 0.0:
    return
  ooa = f32(f32(1.0) / det)
  dx20, dy20, dx01, dy01 = f32(dx20 * ooa), f32(dy20 * ooa), f32(dx01 * ooa), f32(dy01 * ooa)
  da01, da20 = f32(z0 - z1), f32(z2 - z0)
  dzdx = f32(f32(da01 * dy20) - f32(da20 * dy01))
  dzdy = f32(f32(da20 * dx01) - f32(da01 * dx20))
  a0 = f32(z0 - f32(f32(dzdx * f32(x0 - f32(0.5))) + f32(dzdy * f32(y0 - f32(0.5)))))
  xs = np.array([t[0] for t in fixed])
  ys = np.array([t[1] for t in fixed])
  x_lo, x_hi = max(0.0, np.ceil(xs.min() / SUBPIXEL)), min(width - 1.0, np.floor(xs.max() / SUBPIXEL))
  y_lo, y_hi = max(0.0, np.ceil(ys.min() / SUBPIXEL)), min(height - 1.0, np.floor(ys.max() / SUBPIXEL))
  if not (x_lo <= x_hi and y_lo <= y_hi):
    return
  cols = np.arange(int(x_lo), int(x_hi) + 1)
  rows = np.arange(int(y_lo), int(y_hi) + 1)
  pxf = (cols * SUBPIXEL)[None, :]
  pyf = (rows * SUBPIXEL)[:, None]
  inside = np.ones((len(rows), len(cols)), bool)
  order = (0, 1, 2) if front else (1, 0, 2)  # positive-area order of the fixed-point vertices
  for a, b in ((order[0], order[1]), (order[1], order[2]), (order[2], order[0])):
    ex, ey = xs[b] - xs[a], ys[b] - ys[a]
    e = ex * (pyf - ys[a]) - ey * (pxf - xs[a])
    inside &= (e < 0.0) | ((e == 0.0) & ((ey < 0.0) | ((ey == 0.0) & (ex > 0.0))))
  z = fma32_numpy(dzdy, rows.astype(np.float32)[:, None],
                  fma32_numpy(dzdx, cols.astype(np.float32)[None, :], a0))
  inside &= ~np.isnan(z)
  z = np.clip(np.where(inside, z, f32(1.0)), f32(0.0), f32(1.0))
  k = np.rint((z * f32(DEPTH_UNORM_MAX)).astype(np.float32)).astype(np.int64)
  block = (zfront if front else zback)[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
  np.copyto(block, np.minimum(block, k), where=inside)


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

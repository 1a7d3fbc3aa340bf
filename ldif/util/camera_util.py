"""LDIF's 20 dodecahedron cameras, their GAPS files, and depth-image back-projection.

Port of the camera parts of the original's `ldif/util/geom_util.py` (`get_dodeca_camera_to_worlds`),
`ldif/util/gaps_util.py` (`gaps_depth_image_to_cam_image`) and of `data/dodeca_cameras.cam` /
`data/base_conf.conf` (reference section 2.2). Frames: cameras live in the gaps frame; camera space has x
right,
y up and looks down -z (OpenGL / GAPS convention).
"""

import math

import numpy as np

DODECA_XFOV = 0.5          # half-angle (radians) of the horizontal field of view of every dodeca camera
DODECA_RADIUS_SCALE = 0.6  # eye positions are 0.6 x the dodecahedron vertices (distance 0.6 sqrt(3))
NUM_DODECA_VIEWS = 20


def dodeca_eyes():
  """The 20 eye positions, float64 [20, 3] (gaps frame), in LDIF's image order.

  0.6 x the vertices of a regular dodecahedron: the 8 cube corners (+-1, +-1, +-1) (x slowest, + before -),
  then the cyclic permutations of (0, +-phi, +-1/phi), phi = golden ratio.
  """
  phi = (1.0 + math.sqrt(5.0)) / 2.0
  inv = 1.0 / phi
  signs = ((1, 1), (1, -1), (-1, 1), (-1, -1))
  corners = [(sx, sy, sz) for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)]
  ring_x = [(0.0, a * phi, b * inv) for a, b in signs]
  ring_y = [(a * inv, 0.0, b * phi) for a, b in signs]
  ring_z = [(a * phi, b * inv, 0.0) for a, b in signs]
  return DODECA_RADIUS_SCALE * np.array(corners + ring_x + ring_y + ring_z, np.float64)


def _look_at_axes(eye, center=(0.0, 0.0, 0.0), world_up=(0.0, 1.0, 0.0)):
  towards = np.asarray(center, np.float64) - eye
  towards /= np.linalg.norm(towards)
  right = np.cross(towards, world_up)
  right /= np.linalg.norm(right)
  up = np.cross(right, towards)
  up /= np.linalg.norm(up)
  return towards, right, up


def dodeca_cameras(exact=False):
  """The dodeca cameras as `.cam` rows, float64 [20, 12]: eye, towards, up, xfov, yfov, value.

  Each camera looks at the origin with world up +y; towards = normalize(-eye),
  right = normalize(towards x up), camera up = normalize(right x towards); xfov = yfov = 0.5 (half-angles),
  value 0. By default the numbers are rounded to 6 significant digits, i.e. exactly the rows of LDIF's
  `data/dodeca_cameras.cam` that GAPS scn2img rendered with (the rounding moves silhouettes by ~1e-4 pixel,
  which decides a few edge pixels); exact=True gives the unrounded values.
  """
  rows = []
  for eye in dodeca_eyes():
    towards, _, up = _look_at_axes(eye)
    rows.append(np.concatenate([eye, towards, up, [DODECA_XFOV, DODECA_XFOV, 0.0]]))
  rows = np.array(rows)
  if not exact:
    rows = np.char.mod('%g', rows).astype(np.float64)
  return rows


def dodeca_cam2world():
  """Camera-to-world matrices of the dodeca cameras, float64 [20, 4, 4] (port of get_dodeca_camera_to_worlds).

  Columns: right, up, -towards (the camera's x, y, z axes in the gaps frame) and the eye position.
  """
  matrices = np.tile(np.eye(4), (NUM_DODECA_VIEWS, 1, 1))
  for i, eye in enumerate(dodeca_eyes()):
    towards, right, up = _look_at_axes(eye)
    matrices[i, :3, :3] = np.stack([right, up, -towards], axis=1)
    matrices[i, :3, 3] = eye
  return matrices


def base_conf_intrinsics(width=224, height=224, xfov=DODECA_XFOV):
  """Pixel intrinsics float64 [3, 3] of a `width` x `height` render with half-angle `xfov` (base_conf.conf).

  f = (W / 2) / tan(xfov) for both axes (GAPS derives the vertical field of view from the aspect ratio, so the
  pixels are square), principal point (W / 2, H / 2). For 224 x 224: f = 205.014624832.
  Raises:
    ValueError: non-positive size or xfov outside (0, pi/2).
  """
  if width <= 0 or height <= 0:
    raise ValueError(f'image size must be positive, got {width}x{height}')
  if not 0.0 < xfov < math.pi / 2:
    raise ValueError(f'xfov must be a half-angle in (0, pi/2), got {xfov}')
  focal = 0.5 * width / math.tan(xfov)
  return np.array([[focal, 0.0, 0.5 * width], [0.0, focal, 0.5 * height], [0.0, 0.0, 1.0]])


def depth_image_to_cam_points(depth_units, xfov=DODECA_XFOV):
  """Back-projects a depth image to camera-space points (port of gaps_depth_image_to_cam_image).

  Args:
    depth_units: float [H, W] (or [H, W, 1]) planar depth in gaps units (PNG value / 1000); 0 = background.
    xfov: half-angle horizontal field of view in radians.
  Returns:
    float64 [H, W, 3] camera-space points: for row r, column c, with u = (c + 0.5) / W, v = (r + 0.5) / H,
    X = (2u - 1) d tan(xfov), Y = -(2v - 1) d (H / W) tan(xfov), Z = -d. Background pixels map to the origin.
  Raises:
    ValueError: not an [H, W] or [H, W, 1] array.
  """
  depth = np.asarray(depth_units, np.float64)
  if depth.ndim == 3 and depth.shape[2] == 1:
    depth = depth[:, :, 0]
  if depth.ndim != 2:
    raise ValueError(f'depth image must have shape [H, W] or [H, W, 1], got {depth.shape}')
  height, width = depth.shape
  tan_x = math.tan(xfov)
  tan_y = height / width * tan_x
  ndc_x = 2.0 * (np.arange(width) + 0.5) / width - 1.0
  ndc_y = 2.0 * (np.arange(height) + 0.5) / height - 1.0
  x = ndc_x[None, :] * depth * tan_x
  y = -ndc_y[:, None] * depth * tan_y
  return np.stack([x, y, -depth], axis=-1)

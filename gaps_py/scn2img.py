"""Port of GAPS scn2img -capture_depth_images: 16-bit depth renders of a mesh from a camera file.

Library: `render_depth_images(vertices, faces, cameras, width=224, height=224) -> uint16 [V, H, W]`.
CLI (GAPS flag spellings, as LDIF's process_mesh_local.sh calls it):

    python -m gaps_py.scn2img model_normalized.obj dodeca_cameras.cam depth_images/ \
        -capture_depth_images -width 224 -height 224

writes `depth_images/000000_depth.png`, `000001_depth.png`, ... (one per camera, in file order).

What GAPS does, and this port reproduces (see `gaps_py._raster` for the float32 OpenGL pipeline it emulates,
which makes the PNG values match GAPS's to the unit, not just within one):
  * Camera per `.cam` line: eye v, towards t, up u; right = t x u, up' = normalize(right x normalize(t)); the
    camera looks along t with y = up'. xfov is the half-angle (radians); the file's yfov is ignored and
    replaced by atan((H/W) tan xfov). `-xfov` overrides every camera's xfov.
  * gluPerspective projection, near = 0.01 R and far = 100 R, R = half the diagonal of the bounding box of the
    mesh's referenced vertices (so the depth precision depends on the mesh).
  * Stored value = floor(1000 d), d = -z_eye (planar depth along the view axis, not the ray length);
    background and values > 65535 are 0. PNG row 0 is the top of the image (+y camera).
  * Front faces win ties against back faces (GAPS's two-pass culling trick); a closed mesh seen from outside
    shows only front faces, a mesh with holes shows back faces through them.
"""

import math
import os
import sys

import numpy as np

from gaps_py import _cli
from gaps_py import _raster
from gaps_py import io as gaps_io
from ldif.util import log

NEAR_FACTOR = 0.01
FAR_FACTOR = 100.0


def camera_frames(cameras, width, height, xfov=None):
  """GAPS camera frames and pixel focal lengths for `.cam` rows.

  Args:
    cameras: float [V, 12] `.cam` rows (eye, towards, up, xfov, yfov, value).
    width, height: image size in pixels.
    xfov: optional half-angle (radians) overriding every camera's xfov (scn2img's `-xfov`).
  Returns:
    eyes float64 [V, 3], rotations float64 [V, 3, 3] (rows: camera right, up, backward axes in world
    coordinates; eye-space point = rotation @ (p - eye)), focal_x and focal_y float64 [V] in pixels.
  Raises:
    ValueError: wrong shape, non-finite values, zero towards vector, up parallel to towards, xfov not in
      (0, pi/2).
  """
  cameras = np.asarray(cameras, np.float64)
  if cameras.ndim != 2 or cameras.shape[1] != 12 or cameras.shape[0] == 0:
    raise ValueError(f'cameras must have shape [V, 12] with V >= 1, got {cameras.shape}')
  if not np.all(np.isfinite(cameras)):
    raise ValueError('cameras contain non-finite values')
  _check_size(width, height)
  num_views = cameras.shape[0]
  eyes = cameras[:, 0:3].copy()
  rotations = np.empty((num_views, 3, 3))
  focal_x = np.empty(num_views)
  focal_y = np.empty(num_views)
  for v, cam in enumerate(cameras):
    towards, up = cam[3:6], cam[6:9]
    right = np.cross(towards, up)
    towards_length = np.linalg.norm(towards)
    if towards_length == 0.0:
      raise ValueError(f'camera {v}: towards vector is zero')
    towards = towards / towards_length
    up = np.cross(right, towards)
    up_length = np.linalg.norm(up)
    if up_length < 1e-12:
      raise ValueError(f'camera {v}: up vector is zero or parallel to the towards vector')
    up = up / up_length
    # R3Triad(towards, up): z = -towards, x = up x z, y = z x x.
    back = -towards
    x_axis = np.cross(up, back)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(back, x_axis)
    y_axis /= np.linalg.norm(y_axis)
    rotations[v] = np.stack([x_axis, y_axis, back])
    half_x = cam[9] if xfov is None else float(xfov)
    if not 0.0 < half_x < math.pi / 2:
      raise ValueError(f'camera {v}: xfov {half_x} must be a half-angle in (0, pi/2) radians')
    half_y = math.atan(height / width * math.tan(half_x))
    focal_x[v] = 0.5 * width / math.tan(half_x)
    focal_y[v] = 0.5 * height / math.tan(half_y)
  return eyes, rotations, focal_x, focal_y


def clip_planes(vertices, faces):
  """GAPS's near and far clip depths: 0.01 R and 100 R, R = half the bbox diagonal of the used vertices."""
  used = vertices[np.unique(faces)]
  radius = 0.5 * float(np.linalg.norm(used.max(axis=0) - used.min(axis=0)))
  if radius <= 0.0:
    raise ValueError('mesh has zero extent (all referenced vertices coincide)')
  return NEAR_FACTOR * radius, FAR_FACTOR * radius


def gl_matrices(cameras, width, height, near, far, xfov=None):
  """The OpenGL modelview and projection matrices GAPS scn2img loads per camera, in float64.

  Modelview (R3Camera::Load): rows right, up, backward of the camera triad with translation -R eye (summed
  left to right, as R4Matrix::Translate does). Projection: gluPerspective(2 yfov in degrees, tan xfov / tan
  yfov, near, far) computed the way GLU computes it. OpenGL rounds both to float32 (see `gaps_py._raster`).

  Args:
    cameras: float [V, 12] `.cam` rows; width, height: image size; near, far: clip distances
      (`clip_planes`); xfov: optional half-angle override (scn2img's `-xfov`).
  Returns:
    modelviews float64 [V, 4, 4], projections float64 [V, 4, 4] (row-major, column vectors).
  Raises:
    ValueError: as `camera_frames`, or near/far not 0 < near < far.
  """
  eyes, rotations, _, _ = camera_frames(cameras, width, height, xfov)
  if not 0.0 < near < far:
    raise ValueError(f'clip distances must satisfy 0 < near < far, got near={near}, far={far}')
  cameras = np.asarray(cameras, np.float64)
  num_views = len(eyes)
  modelviews = np.zeros((num_views, 4, 4))
  projections = np.zeros((num_views, 4, 4))
  for v in range(num_views):
    modelviews[v, :3, :3] = rotations[v]
    for i in range(3):
      t = 0.0
      for j in range(3):
        t += rotations[v, i, j] * -eyes[v, j]
      modelviews[v, i, 3] = t
    modelviews[v, 3, 3] = 1.0
    half_x = cameras[v, 9] if xfov is None else float(xfov)
    half_y = math.atan(height / width * math.tan(half_x))
    fovy_degrees = 2.0 * (half_y * (180.0 / math.pi))
    radians = fovy_degrees / 2 * math.pi / 180
    cotangent = math.cos(radians) / math.sin(radians)
    depth_range = far - near
    projections[v, 0, 0] = cotangent / (math.tan(half_x) / math.tan(half_y))
    projections[v, 1, 1] = cotangent
    projections[v, 2, 2] = -(far + near) / depth_range
    projections[v, 2, 3] = -2 * near * far / depth_range
    projections[v, 3, 2] = -1.0
  return modelviews, projections


def render_depth_images(vertices, faces, cameras, *, width=224, height=224, xfov=None):
  """Renders one depth image per camera (port of GAPS scn2img -capture_depth_images).

  Args:
    vertices: float [N, 3] mesh vertices, gaps frame (LDIF renders the msh2msh-normalized mesh).
    faces: int [F, 3] triangles (a triangle soup is fine; nothing is welded). Winding defines front faces
      (counter-clockwise seen from outside).
    cameras: float [V, 12] `.cam` rows (see `gaps_py.io.read_cameras`), e.g.
    `ldif.util.camera_util.dodeca_cameras()`.
    width, height: image size in pixels.
    xfov: optional half-angle override for all cameras (scn2img's `-xfov`).
  Returns:
    uint16 [V, H, W]: floor(1000 * planar depth) in gaps units, 0 = background (the PNG values; LDIF's
    `depth_renders` feature). Row 0 is the top of the image.
  Raises:
    ValueError: bad shapes, non-finite vertices, face indices out of range, no faces, bad cameras or size.
  """
  vertices = np.asarray(vertices)
  faces = np.asarray(faces)
  if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] == 0:
    raise ValueError(f'vertices must have shape [N, 3] with N >= 1, got {vertices.shape}')
  if not np.issubdtype(vertices.dtype, np.floating) and not np.issubdtype(vertices.dtype, np.integer):
    raise ValueError(f'vertices must be numeric, got dtype {vertices.dtype}')
  vertices = vertices.astype(np.float64, copy=False)
  if not np.all(np.isfinite(vertices)):
    raise ValueError('vertices contain NaN or infinite values')
  if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
    raise ValueError(f'faces must have shape [F, 3] with F >= 1, got {faces.shape}')
  if not np.issubdtype(faces.dtype, np.integer):
    raise ValueError(f'faces must be integer indices, got dtype {faces.dtype}')
  faces = faces.astype(np.int64, copy=False)
  if faces.min() < 0 or faces.max() >= len(vertices):
    raise ValueError(f'face indices must be in [0, {len(vertices)}), got [{faces.min()}, {faces.max()}]')
  _check_size(width, height)
  near, far = clip_planes(vertices, faces)
  modelviews, projections = gl_matrices(cameras, width, height, near, far, xfov)
  out = np.zeros((len(modelviews), height, width), np.uint16)
  _raster.depth_views_kernel(np.ascontiguousarray(vertices), np.ascontiguousarray(faces), modelviews,
                             projections, int(width), int(height), out)
  return out


def _check_size(width, height):
  for name, value in (('width', width), ('height', height)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value <= 16384:
      raise ValueError(f'image {name} must be an integer in [1, 16384], got {value!r}')


_USAGE = ('usage: python -m gaps_py.scn2img input_mesh input_cameras.cam output_directory '
          '-capture_depth_images [-width W] [-height H] [-xfov X] [-v]')
_CLI = _cli.Cli(
    'scn2img', _USAGE, positional=('input_mesh', 'input_cameras', 'output_directory'),
    flags={
        **_cli.GL_PROGRAM_FLAGS,
        '-xfov': _cli.Flag('xfov', 1, float),
        '-capture_depth_images': _cli.Flag('capture_depth'),
        '-raycast': _cli.IGNORED,
    },
    defaults={'width': 640, 'height': 480, 'capture_depth': False},
    unsupported={'-capture_': 'only -capture_depth_images'})


def _run(args):
  if not args.capture_depth:
    raise _cli.UsageError('-capture_depth_images is required (the only capture gaps_py implements)')
  vertices, faces = gaps_io.load_mesh(args.input_mesh)
  cameras = gaps_io.read_cameras(args.input_cameras)
  images = render_depth_images(vertices, faces, cameras, width=args.width, height=args.height, xfov=args.xfov)
  os.makedirs(args.output_directory, exist_ok=True)
  for index, image in enumerate(images):
    gaps_io.write_png16(os.path.join(args.output_directory, f'{index:06d}_depth.png'), image)
  log.info('Wrote %d depth images to %s', len(images), args.output_directory)


def main(argv=None):
  """CLI with GAPS scn2img's flags. Returns the process exit status (0 on success).

  Supported: `-capture_depth_images` (required: the only capture gaps_py implements), `-width` and `-height`
  (GAPS defaults 640 x 480), `-xfov`, `-v`, `-debug`; `-mesa`, `-glut` and `-raycast` are accepted and
  ignored.
  """
  return _CLI.main(argv, _run)


if __name__ == '__main__':
  sys.exit(main())

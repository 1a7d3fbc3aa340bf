"""Port of GAPS conf2img -create_normal_images: per-pixel PCA normal images from 16-bit depth images.

Library: `normal_images(depth uint16 [H, W], intrinsics [3, 3]) -> uint16 [4, H, W]` (nx, ny, nz, radius PNG
values). CLI (GAPS flag spellings, as LDIF's process_mesh_local.sh calls it):

    python -m gaps_py.conf2img custom_conf.conf normals/ -create_normal_images -width 224 -height 224

reads every `image` of the configuration from its `depth_directory` and writes `<name>_nx.png`, `_ny.png`,
`_nz.png` and `_radius.png` (for `000000_depth.png`: `000000_depth_nx.png`, ...).

What GAPS does, and this port reproduces (details in `gaps_py._raster`):
  * depth = PNG / 1000 (0 = unknown); camera point of pixel (i, j), j counted from the bottom:
    X = (i + 0.5 - cx) d / fx, Y = (j + 0.5 - cy) d / fy, Z = -d (camera frame: x right, y up, looking down
    -z). LDIF's configuration has identity extrinsics, so the normals are in camera coordinates.
  * Silhouette/shadow boundary map from depth jumps > max(0.1 d, 0.1) on a hole-filled depth image.
  * Neighbourhood: depth-first search from the pixel within pixel radius round(2 W / 640) (at least 1: the
    4-neighbours at W = 224) and 0.1 world units, not crossing a silhouette/shadow pair; >= 3 points needed.
  * Normal = smallest principal axis of the neighbourhood covariance, flipped to face the camera; encoded as
    floor(32768 (n + 1)) clamped to [0, 65535]; radius image = 4000 * 3 sqrt(lambda_max) / 2, truncated.
  * Background and pixels with too few neighbours are 0 in all four images (LDIF detects background that way).
"""

import os
import sys

import numpy as np

from gaps_py import _cli
from gaps_py import _raster
from gaps_py import io as gaps_io
from ldif.util import log

WORLD_RADIUS = 0.1
PIXEL_RADIUS_AT_640 = 2
DEPTH_THRESHOLD = 0.1
PNG_DISTANCE_SCALE = 4000.0
CHANNELS = ('nx', 'ny', 'nz', 'radius')
# Dataset formats for which GAPS rescales or re-encodes depth; gaps_py reads plain millimetre PNGs only.
_UNSUPPORTED_DATASETS = ('sun3d', 'sunrgbd', 'matterport', 'tum', 'gsv', 'icl', 'sumo')


def pixel_radius_for_width(width, neighborhood_pixel_radius=PIXEL_RADIUS_AT_640):
  """GAPS's neighbourhood pixel radius for an image `width` pixels wide: int(r W / 640 + 0.5), at least 1."""
  return max(1, int(neighborhood_pixel_radius * width / 640.0 + 0.5))


def normal_images(depth, intrinsics, *, world_radius=WORLD_RADIUS,
                  neighborhood_pixel_radius=PIXEL_RADIUS_AT_640, depth_threshold=DEPTH_THRESHOLD,
                  png_distance_scale=PNG_DISTANCE_SCALE):
  """Per-pixel PCA normals of one depth image in camera coordinates (port of GAPS conf2img).

  Args:
    depth: uint16 [H, W] depth PNG values (1000 x planar depth in gaps units, 0 = background; row 0 = top),
      e.g. one image of `gaps_py.scn2img.render_depth_images`.
    intrinsics: float [3, 3] pixel intrinsics [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
      (`ldif.util.camera_util.base_conf_intrinsics()` for LDIF's renders).
    world_radius, neighborhood_pixel_radius, depth_threshold, png_distance_scale: GAPS's parameters
      (defaults as conf2img uses them).
  Returns:
    uint16 [4, H, W]: nx, ny, nz PNG values floor(32768 (n + 1)) (camera frame: x right, y up, z towards the
    viewer) and the radius PNG value; 0 in all four where there is no normal.
  Raises:
    ValueError: depth not a 2-D uint16 array, intrinsics not a finite [3, 3] matrix with non-zero focal
      lengths.
  """
  depth = np.asarray(depth)
  if depth.ndim != 2 or depth.size == 0:
    raise ValueError(f'depth must be a non-empty [H, W] image, got shape {depth.shape}')
  if depth.dtype != np.uint16:
    raise ValueError(f'depth must hold uint16 PNG values (1000 x depth), got dtype {depth.dtype}')
  intrinsics = np.asarray(intrinsics, np.float64)
  if intrinsics.shape != (3, 3) or not np.all(np.isfinite(intrinsics)):
    raise ValueError(f'intrinsics must be a finite [3, 3] matrix, got shape {intrinsics.shape}')
  if intrinsics[0, 0] == 0.0 or intrinsics[1, 1] == 0.0:
    raise ValueError('intrinsics have a zero focal length')
  if not world_radius >= 0.0 or not neighborhood_pixel_radius >= 0:
    raise ValueError('world_radius and neighborhood_pixel_radius must be non-negative')
  out = np.empty((4,) + depth.shape, np.uint16)
  pixel_radius = pixel_radius_for_width(depth.shape[1], neighborhood_pixel_radius)
  _raster.normals_kernel(np.ascontiguousarray(depth), intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2],
                         intrinsics[1, 2], float(world_radius), pixel_radius, int(neighborhood_pixel_radius),
                         float(depth_threshold), float(png_distance_scale), False, out)
  return out


def decode_normals(images):
  """PNG values uint16 [..., 3, H, W] (nx, ny, nz) -> unit normals float32 [..., H, W, 3] and a mask [..., H,
  W].

  Decodes n = v / 32768 - 1 and renormalizes (as LDIF's `file_util.read_normals`); background (all three 0)
  gives mask False and normal 0.
  """
  images = np.asarray(images)
  values = np.moveaxis(images[..., :3, :, :], -3, -1).astype(np.float64)
  mask = np.any(values > 0, axis=-1)
  normals = values / 32768.0 - 1.0
  length = np.linalg.norm(normals, axis=-1, keepdims=True)
  normals = np.where(mask[..., None], normals / np.maximum(length, 1e-12), 0.0)
  return normals.astype(np.float32), mask


_USAGE = ('usage: python -m gaps_py.conf2img input.conf output_directory -create_normal_images '
          '[-width W] [-height H] [-png_distance_scale S] [-v]')
_CLI = _cli.Cli(
    'conf2img', _USAGE, positional=('input_conf', 'output_directory'),
    flags={
        **_cli.GL_PROGRAM_FLAGS,
        '-png_distance_scale': _cli.Flag('png_distance_scale', 1, float),
        '-create_normal_images': _cli.Flag('create_normals'),
    },
    defaults={'png_distance_scale': PNG_DISTANCE_SCALE, 'create_normals': False},
    unsupported={'-create_': 'only -create_normal_images', '-capture_': 'only -create_normal_images'})


def _run(args):
  if not args.create_normals:
    raise _cli.UsageError('-create_normal_images is required (the only output gaps_py.conf2img implements)')
  conf_path, output_directory = args.input_conf, args.output_directory
  conf = gaps_io.read_conf(conf_path)
  if conf['dataset'] in _UNSUPPORTED_DATASETS:
    raise ValueError(f'{conf_path}: dataset {conf["dataset"]} rescales depth in GAPS; '
                     'not supported by gaps_py')
  os.makedirs(output_directory, exist_ok=True)
  written = 0
  for name, _ in conf['images']:
    stem = os.path.splitext(os.path.basename(name))[0]
    outputs = [os.path.join(output_directory, f'{stem}_{channel}.png') for channel in CHANNELS]
    if os.path.exists(outputs[0]):
      continue
    depth_path = os.path.join(conf['depth_directory'], name) if conf['depth_directory'] else name
    depth = gaps_io.read_png16(depth_path)
    expected = (args.height or depth.shape[0], args.width or depth.shape[1])
    if depth.shape != expected:
      raise ValueError(f'{depth_path}: image is {depth.shape[1]}x{depth.shape[0]}, expected '
                       f'{expected[1]}x{expected[0]} (-width/-height); gaps_py does not resample')
    images = normal_images(depth, conf['intrinsics'], png_distance_scale=args.png_distance_scale)
    for path, image in zip(outputs, images):
      gaps_io.write_png16(path, image)
    written += 1
  log.info('Wrote normal images for %d of %d depth images to %s', written, len(conf['images']),
           output_directory)


def main(argv=None):
  """CLI with GAPS conf2img's flags. Returns the process exit status (0 on success).

  Supported: `-create_normal_images` (required), `-width`/`-height` (must equal the depth images' size:
  gaps_py does not resample; GAPS derives the height from the width and the image's aspect),
  `-png_distance_scale`, `-v`, `-debug`; `-mesa` and `-glut` are accepted and ignored. As GAPS, an image whose
  `_nx.png` already exists in the output directory is skipped. Depth file names are joined to the
  configuration's depth_directory, relative to the working directory.
  """
  return _CLI.main(argv, _run)


if __name__ == '__main__':
  sys.exit(main())

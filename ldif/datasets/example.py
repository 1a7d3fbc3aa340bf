"""Example directories: their file names, the surface samples from the dodecahedron, and reading into the
schema.

An example directory `<dataset>/<split>/<class>/<name>/` made by `meshes2dataset.py` holds (reference §1.3):

| file                              | content                                                                |
|-----------------------------------|------------------------------------------------------------------------|
| `mesh_orig.<ext>`                 | symlink to the input mesh (absolute target), mesh frame                |
| `orig_to_gaps.txt`                | 4x4 mesh frame -> gaps frame matrix, 16 x `%g`                         |
| `coarse_grid.grd`                 | 32^3 SDF grid (GAPS .grd)                                              |
| `nss_points.sdf`                  | float32 [100000, 4] near-surface samples, binary SDF                   |
| `uniform_points.sdf`              | float32 [100000, 4] uniform samples, approximate SDF                   |
| `depth_and_normals.npz`           | key `arr_0`, float32 [20, 224, 224, 4]: depth in gaps units, "normals" |
| `surface_samples_from_dodeca.pts` | float32 [100000, 6] surface points + normals, gaps frame               |

Every file is written atomically and `surface_samples_from_dodeca.pts` is written last, so a directory is
complete exactly when that file exists (`is_complete`).

Normals quirk (reference §2.3, kept on purpose): the original builds the npz normal channels by L2-normalizing
the raw 16-bit normal PNG values without decoding them (`v / 32768 - 1` is never applied), so the stored
"normals" are the direction of (n + 1), all components >= 0 in camera coordinates. They flow into
`surface_samples_from_dodeca.pts` and into the PointNet inputs of trained models, so this port reproduces them
by default (`decode_normals=False`); `decode_normals=True` gives the true camera-space normals instead.

Port of ldif/scripts/make_example.py (`write_depth_and_normals_npz`), ldif/util/gaps_util.py
(`read_normals_im`), ldif/inference/example.py (`InferenceExample.surface_samples_from_dodeca`,
`precomputed_surface_samples_from_dodeca`) and ldif/datasets/process_element.py (`load_example_dict`).
"""

import hashlib
import os

import numpy as np

from ldif.datasets import schema

MESH_ORIG_STEM = 'mesh_orig'
ORIG_TO_GAPS = 'orig_to_gaps.txt'
COARSE_GRID = 'coarse_grid.grd'
NSS_POINTS = 'nss_points.sdf'
UNIFORM_POINTS = 'uniform_points.sdf'
DEPTH_AND_NORMALS = 'depth_and_normals.npz'
SURFACE_SAMPLES = 'surface_samples_from_dodeca.pts'
# Written last: a directory is complete exactly when this file exists.
COMPLETION_FILE = SURFACE_SAMPLES
# The regular files of an example directory, in the order they are written.
EXAMPLE_FILES = (ORIG_TO_GAPS, COARSE_GRID, NSS_POINTS, UNIFORM_POINTS, DEPTH_AND_NORMALS, SURFACE_SAMPLES)
MESH_EXTENSIONS = ('.ply', '.obj', '.off', '.stl')

_NORMAL_PNG_SCALE = 32768.0


def derive_seed(seed, *tokens):
  """A 63-bit seed determined by `seed` and string tokens (e.g. a purpose and an example path).

  Uses SHA-256, so it does not depend on Python's hash randomization or on the order of calls.
  """
  text = '\x1f'.join([str(int(seed))] + [str(t) for t in tokens])
  return int.from_bytes(hashlib.sha256(text.encode('utf-8')).digest()[:8], 'little') >> 1


def example_identity(example_dir):
  """Returns (split, class_name, name) from `<...>/<split>/<class>/<name>[/]`.

  Raises:
    ValueError: if the path has fewer than three components.
  """
  parts = [p for p in os.path.normpath(os.fspath(example_dir)).split(os.sep) if p]
  if len(parts) < 3:
    raise ValueError(f'{example_dir}: an example directory must be <dataset>/<split>/<class>/<name>')
  return parts[-3], parts[-2], parts[-1]


def mesh_name_for_directory(example_dir):
  """The schema `mesh_name` of an example directory: `"<synset>|<name>"`."""
  _, class_name, name = example_identity(example_dir)
  return schema.make_mesh_name(class_name, name)


def is_complete(example_dir):
  """True when the example directory's last-written file exists (every file is written atomically)."""
  return os.path.isfile(os.path.join(example_dir, COMPLETION_FILE))


def find_mesh_orig(example_dir):
  """Path of the `mesh_orig.<ext>` link of an example directory, or None if there is none."""
  for ext in MESH_EXTENSIONS + tuple(e.upper() for e in MESH_EXTENSIONS):
    path = os.path.join(example_dir, MESH_ORIG_STEM + ext)
    if os.path.lexists(path):
      return path
  return None


def depth_and_normals_array(depth, normals, *, decode_normals=False):
  """Builds the `depth_and_normals.npz` array from the depth and normal PNG values.

  Args:
    depth: uint16 [V, H, W] depth PNG values (floor(1000 * depth), 0 = background), as scn2img writes them.
    normals: uint16 [V, 3, H, W] (or [V, 4, H, W] with the radius channel, which is ignored) nx, ny, nz PNG
      values as conf2img writes them (floor(32768 * (n + 1)), 0 = unknown), camera coordinates.
    decode_normals: False (default) reproduces the original: the raw values are only L2-normalized (reference
      §2.3 quirk). True decodes them (v / 32768 - 1) first; unknown pixels stay 0.

  Returns:
    float32 [V, H, W, 4]: channel 0 depth in gaps units (value / 1000), channels 1..3 the normals.

  Raises:
    ValueError: on wrong shapes or dtypes.
  """
  depth = np.asarray(depth)
  normals = np.asarray(normals)
  if depth.ndim != 3 or depth.dtype != np.uint16:
    raise ValueError(f'depth must be uint16 [V, H, W], got {depth.dtype} {depth.shape}')
  if normals.ndim != 4 or normals.shape[1] not in (3, 4) or normals.dtype != np.uint16:
    raise ValueError(f'normals must be uint16 [V, 3, H, W], got {normals.dtype} {normals.shape}')
  if normals.shape[0] != depth.shape[0] or normals.shape[2:] != depth.shape[1:]:
    raise ValueError(f'normals shape {normals.shape} does not match depth shape {depth.shape}')
  # Same float32 arithmetic as the original: PNG -> float32, / 1000; normals stacked on the last axis.
  depth_units = depth.astype(np.float32) / np.float32(schema.DEPTH_SCALE)
  raw = np.moveaxis(normals[:, :3], 1, -1).astype(np.float32)
  if decode_normals:
    unknown = np.all(raw == 0, axis=-1, keepdims=True)
    raw = np.where(unknown, np.float32(0), raw / np.float32(_NORMAL_PNG_SCALE) - np.float32(1))
  norm = np.linalg.norm(raw, axis=-1, keepdims=True)
  raw /= np.maximum(norm, np.float32(1e-8))
  return np.concatenate([depth_units[..., np.newaxis], raw], axis=-1)


def _depth_units_from_npz_channel(depth_channel):
  # The original scales the npz depth by 1000 (depth_images) and divides by 1000 again before unprojecting;
  # both in float32.
  thousandths = depth_channel.astype(np.float32) * np.float32(schema.DEPTH_SCALE)
  return thousandths / np.float32(schema.DEPTH_SCALE)


def surface_samples_from_dodeca(depth_and_normals, *, sample_count=schema.STORED_SURFACE_SAMPLE_COUNT,
                                seed=None):
  """Surface points with normals from the 20 dodecahedron depth images (reference §2.4).

  Every pixel with depth != 0 is unprojected (camera model of §2.2, xfov 0.5) and moved to the gaps frame with
  the dodecahedron cam2world; its stored normal is rotated to the gaps frame (inverse transpose of cam2world)
  and renormalized. The points of all views are shuffled, tiled (doubling) until there are enough, and the
  first `sample_count` kept.

  Args:
    depth_and_normals: float32 [20, H, W, 4] as stored in `depth_and_normals.npz`.
    sample_count: number of rows to return.
    seed: seed of the shuffle (the original's is unseeded); None draws fresh entropy.

  Returns:
    float32 [sample_count, 6]: xyz and normal, gaps frame.

  Raises:
    ValueError: on a wrong shape or when no pixel has depth (nothing was visible).

  Port of ldif/inference/example.py `InferenceExample.surface_samples_from_dodeca`.
  """
  from ldif.util import camera_util  # pylint: disable=g-import-not-at-top
  arr = np.asarray(depth_and_normals)
  if arr.ndim != 4 or arr.shape[0] != schema.VIEW_COUNT or arr.shape[-1] != 4:
    raise ValueError(f'depth_and_normals must be [20, H, W, 4], got {arr.shape}')
  if sample_count < 1:
    raise ValueError(f'sample_count must be >= 1, got {sample_count}')
  depth_units = _depth_units_from_npz_channel(arr[..., 0])
  if np.min(depth_units) < 0:
    raise ValueError('depth images contain negative depth')
  cam2world = camera_util.dodeca_cam2world()
  rows = []
  for view in range(arr.shape[0]):
    valid = depth_units[view] != 0
    if not np.any(valid):
      continue
    cam = camera_util.depth_image_to_cam_points(depth_units[view], xfov=camera_util.DODECA_XFOV)[valid]
    c2w = np.asarray(cam2world[view], dtype=np.float64)
    homogeneous = np.concatenate([cam, np.ones_like(cam[:, :1])], axis=-1)
    xyz = (homogeneous @ c2w.T)[:, :3].astype(np.float32)
    # Directions transform with the inverse transpose; as row vectors that is n @ inv(c2w)[:3, :3].
    normal_tx = np.linalg.inv(c2w)[:3, :3]
    nrm = (arr[view, ..., 1:][valid].astype(np.float32) @ normal_tx).astype(np.float32)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True) + np.float32(1e-10)
    rows.append(np.concatenate([xyz, nrm], axis=-1))
  if not rows:
    raise ValueError('no surface visible in any of the 20 depth images (all depth values are 0)')
  samples = np.concatenate(rows, axis=0)
  samples = samples[np.random.default_rng(seed).permutation(samples.shape[0])]
  while samples.shape[0] < sample_count:
    samples = np.concatenate([samples, samples], axis=0)
  return np.ascontiguousarray(samples[:sample_count], dtype=np.float32)


def read_depth_and_normals(path):
  """Reads `depth_and_normals.npz` -> float32 [20, 224, 224, 4].

  Raises:
    ValueError: naming the file, if it is unreadable, lacks `arr_0` or has the wrong shape/dtype.
  """
  try:
    with np.load(path, allow_pickle=False) as npz:
      keys = list(npz.files)
      arr = npz['arr_0'] if 'arr_0' in keys else None
  except Exception as e:  # ValueError (not an npz), zipfile.BadZipFile, OSError, EOFError ...
    raise ValueError(f'{path}: cannot read npz ({type(e).__name__}: {e})') from e
  if arr is None:
    raise ValueError(f'{path}: missing key arr_0 (keys: {keys})')
  expected = (schema.VIEW_COUNT, schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH, 4)
  if arr.shape != expected or arr.dtype != np.float32:
    raise ValueError(f'{path}: expected float32 {expected}, got {arr.dtype} {arr.shape}')
  return arr


def _read_checked(reader, path, shape):
  try:
    arr = reader(path)
  except FileNotFoundError as e:
    raise ValueError(f'{path}: missing ({e})') from e
  except ValueError as e:
    msg = str(e)
    raise ValueError(msg if path in msg else f'{path}: {msg}') from e
  arr = np.asarray(arr, dtype=np.float32)
  if arr.shape != shape:
    raise ValueError(f'{path}: expected shape {shape}, got {arr.shape}')
  return arr


def read_example_directory(example_dir, *, surface_sample_count=schema.SURFACE_SAMPLE_COUNT, seed=None):
  """Reads an example directory into the schema dict (see `ldif.datasets.schema`).

  Args:
    example_dir: `<dataset>/<split>/<class>/<name>` made by meshes2dataset.
    surface_sample_count: rows of `surface_point_samples`, drawn without replacement from the 100000 stored
      surface samples (the original draws 10000 with an unseeded RNG on every load).
    seed: seed of that draw; None draws fresh entropy (original behaviour).

  Returns:
    dict: `bounding_box_samples` float32 [100000, 4], `depth_renders` float32 [20, 224, 224, 1] (thousandths,
    computed as float32(npz depth * 1000) as the original does), `mesh_name` bytes, `near_surface_samples`
    float32 [100000, 4], `grid` float32 [32, 32, 32] ([z][y][x]), `world2grid` float32 [4, 4],
    `surface_point_samples` float32 [surface_sample_count, 6]. All in the gaps frame.

  Raises:
    ValueError: naming the file, for an incomplete directory or a missing/malformed file.

  Port of ldif/datasets/process_element.py `load_example_dict`.
  """
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  example_dir = os.fspath(example_dir)
  if not os.path.isdir(example_dir):
    raise ValueError(f'{example_dir}: not an example directory')
  if not is_complete(example_dir):
    raise ValueError(f'{example_dir}: incomplete example ({COMPLETION_FILE} is missing)')
  n = schema.SAMPLE_COUNT
  uniform = _read_checked(gaps_io.read_sdf, os.path.join(example_dir, UNIFORM_POINTS), (n, 4))
  nss = _read_checked(gaps_io.read_sdf, os.path.join(example_dir, NSS_POINTS), (n, 4))
  grid_path = os.path.join(example_dir, COARSE_GRID)
  try:
    grid, world2grid = gaps_io.read_grd(grid_path)
  except FileNotFoundError as e:
    raise ValueError(f'{grid_path}: missing ({e})') from e
  res = schema.GRID_RESOLUTION
  if np.shape(grid) != (res, res, res) or np.shape(world2grid) != (4, 4):
    raise ValueError(f'{grid_path}: expected a {res}^3 grid, got {np.shape(grid)}')
  dn = read_depth_and_normals(os.path.join(example_dir, DEPTH_AND_NORMALS))
  depth_renders = (dn[..., 0:1] * np.float32(schema.DEPTH_SCALE)).astype(np.float32)
  surface = _read_checked(gaps_io.read_pts, os.path.join(example_dir, SURFACE_SAMPLES),
                          (schema.STORED_SURFACE_SAMPLE_COUNT, 6))
  if not 1 <= surface_sample_count <= surface.shape[0]:
    raise ValueError(f'surface_sample_count must be in [1, {surface.shape[0]}], got {surface_sample_count}')
  chosen = np.random.default_rng(seed).choice(surface.shape[0], surface_sample_count, replace=False)
  return {
      'bounding_box_samples': uniform,
      'depth_renders': depth_renders,
      'mesh_name': mesh_name_for_directory(example_dir).encode('utf-8'),
      'near_surface_samples': nss,
      'grid': np.asarray(grid, dtype=np.float32),
      'world2grid': np.asarray(world2grid, dtype=np.float32),
      'surface_point_samples': np.ascontiguousarray(surface[chosen]),
  }

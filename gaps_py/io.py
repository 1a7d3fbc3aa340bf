"""Readers and writers for the GAPS file formats LDIF uses, byte-compatible with GAPS.

Owns the grid-to-world convention (see `read_grd`). All binary values are little-endian.
"""

# ---- section: atomic writes, meshes, grids, point files, matrices (owner: gaps-geometry) ----

import contextlib
import os
import tempfile

import numpy as np

from ldif.util import log

MESH_EXTENSIONS = ('.ply', '.obj', '.off', '.stl')
_GRD_HEADER_BYTES = 12 + 64


@contextlib.contextmanager
def atomic_path(path):
  """Context manager yielding a temporary path (str) beside `path`; on success it is moved onto `path`.

  For libraries that insist on writing to a path themselves. The temporary name keeps the extension of `path`
  (so format detection by extension works). On an exception the temporary file is removed and `path` is left
  untouched. If the body wrote nothing, nothing is moved.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  base = os.path.basename(path)
  stem, ext = os.path.splitext(base)
  fd, tmp = tempfile.mkstemp(prefix=f'.{stem}.', suffix=f'.tmp{ext}', dir=directory)
  os.close(fd)
  os.remove(tmp)
  try:
    yield tmp
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise
  if os.path.exists(tmp):
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
  """Context manager yielding an open file object whose content replaces `path` atomically on success.

  Writes to a temporary file in the same directory, then `os.replace`s it onto `path`; on an exception the
  temporary file is removed and `path` is left untouched. `mode` is 'w' or 'wb' (or 'x'/'xb', which also fail
  if `path` exists when the write completes).
  """
  if mode not in ('w', 'wb', 'x', 'xb'):
    raise ValueError(f'atomic_write mode must be w, wb, x or xb, got {mode!r}')
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  stem, ext = os.path.splitext(os.path.basename(path))
  fd, tmp = tempfile.mkstemp(prefix=f'.{stem}.', suffix=f'.tmp{ext}', dir=directory)
  binary = 'b' in mode
  try:
    text_args = {} if binary else {'encoding': 'utf-8', 'newline': ''}
    with os.fdopen(fd, 'wb' if binary else 'w', **text_args) as f:
      yield f
    if mode.startswith('x') and os.path.exists(path):
      raise FileExistsError(f'{path}: already exists')
    # Keep the permissions an ordinary open() would have given (mkstemp makes the file 0600).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


class MeshError(ValueError):
  """An unusable mesh file. `str(e)` is "<path>: <problem>"; attributes `path` and `problem`."""

  def __init__(self, path, problem):
    self.path = os.fspath(path)
    self.problem = problem
    super().__init__(f'{self.path}: {problem}')


def load_mesh(path):
  """Reads a triangle mesh the way GAPS does: no welding, no reordering, no cleanup beyond what is listed.

  Supported: .ply, .obj, .off, .stl (read with trimesh, `process=False`). Quads and polygons are triangulated;
  multi-object files are concatenated; triangle soups stay soups; unused vertices are kept; holes are fine.
  Zero-area faces are dropped (with a warning naming the file and count).

  Args:
    path: mesh file (mesh frame).
  Returns:
    (vertices float64 [V,3], faces int64 [F,3]).
  Raises:
    MeshError: "<path>: <problem>" for a missing/unreadable file, an unsupported extension, no faces, NaN/inf
      vertex coordinates, face indices out of range, or only degenerate faces.
  Used in place of GAPS's R3Mesh::ReadFile.
  """
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  if ext not in MESH_EXTENSIONS:
    raise MeshError(path, f'unsupported mesh extension {ext!r} '
                          f'(expected one of {", ".join(MESH_EXTENSIONS)})')
  if not os.path.isfile(path):
    raise MeshError(path, 'no such file')
  import trimesh  # pylint: disable=g-import-not-at-top
  # OBJ: keep the file's vertex indexing (trimesh would otherwise split vertices at texture seams; GAPS does
  # not, and its vertex normals depend on that indexing).
  options = {'maintain_order': True} if ext == '.obj' else {}
  try:
    mesh = trimesh.load(path, file_type=ext[1:], process=False, force='mesh', **options)
  except Exception as e:  # pylint: disable=broad-except
    raise MeshError(path, f'could not read the mesh ({type(e).__name__}: {e})') from e
  faces = getattr(mesh, 'faces', None)
  vertices = getattr(mesh, 'vertices', None)
  if faces is None or vertices is None or len(faces) == 0:
    raise MeshError(path, 'the mesh has no faces')
  vertices = np.array(vertices, dtype=np.float64).reshape(-1, 3)
  faces = np.array(faces, dtype=np.int64).reshape(-1, 3)
  bad = ~np.all(np.isfinite(vertices), axis=1)
  if bad.any():
    raise MeshError(path, f'{int(bad.sum())} of {len(vertices)} vertices have NaN or inf coordinates')
  if faces.min() < 0 or faces.max() >= len(vertices):
    raise MeshError(path, f'face indices out of range [0, {len(vertices)}): '
                          f'min {faces.min()}, max {faces.max()}')
  tris = vertices[faces]
  cross = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
  area2 = np.einsum('ij,ij->i', cross, cross)
  degenerate = ~(area2 > 0.0)
  if degenerate.all():
    raise MeshError(path, f'all {len(faces)} faces are degenerate (zero area)')
  if degenerate.any():
    log.warning(f'{path}: dropped {int(degenerate.sum())} degenerate (zero-area) faces of {len(faces)}')
    faces = faces[~degenerate]
  return vertices, faces


def _check_mesh_arrays(vertices, faces):
  v = np.asarray(vertices)
  f = np.asarray(faces)
  if v.ndim != 2 or v.shape[1] != 3:
    raise ValueError(f'vertices must have shape [V, 3], got {v.shape}')
  if f.ndim != 2 or f.shape[1] != 3:
    raise ValueError(f'faces must have shape [F, 3], got {f.shape}')
  if f.size and (f.min() < 0 or f.max() >= len(v)):
    raise ValueError(f'face indices out of range [0, {len(v)})')
  return v, f.astype(np.int64)


def write_mesh(path, vertices, faces):
  """Writes a triangle mesh atomically; the format follows the extension.

  .ply: binary little-endian, float32 x y z, `list uchar int vertex_indices` (as GAPS writes PLY);
  .obj: `v %g %g %g` / `f a b c` (1-based) lines, as GAPS's OBJ writer (6 significant digits);
  .off: ASCII with 17 significant digits (lossless for float64).
  Args: path; vertices float [V,3]; faces int [F,3].
  Raises: ValueError for bad shapes/indices or an unsupported extension.
  """
  path = os.fspath(path)
  v, f = _check_mesh_arrays(vertices, faces)
  ext = os.path.splitext(path)[1].lower()
  if ext == '.ply':
    header = ('ply\nformat binary_little_endian 1.0\n'
              f'element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n'
              f'element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n')
    face_rec = np.empty(len(f), dtype=[('n', 'u1'), ('idx', '<i4', (3,))])
    face_rec['n'] = 3
    face_rec['idx'] = f
    with atomic_write(path, 'wb') as out:
      out.write(header.encode('ascii'))
      out.write(np.ascontiguousarray(v, dtype='<f4').tobytes())
      out.write(face_rec.tobytes())
  elif ext == '.obj':
    with atomic_write(path, 'w') as out:
      if len(v):
        out.write(('v %g %g %g\n' * len(v)) % tuple(np.asarray(v, np.float64).ravel().tolist()))
      if len(f):
        out.write(('f %d %d %d\n' * len(f)) % tuple((f + 1).ravel().tolist()))
  elif ext == '.off':
    with atomic_write(path, 'w') as out:
      out.write(f'OFF\n{len(v)} {len(f)} 0\n')
      if len(v):
        out.write(('%.17g %.17g %.17g\n' * len(v)) % tuple(np.asarray(v, np.float64).ravel().tolist()))
      if len(f):
        out.write(('3 %d %d %d\n' * len(f)) % tuple(f.ravel().tolist()))
  else:
    raise ValueError(f'{path}: unsupported mesh extension {ext!r} for writing (use .ply, .obj or .off)')


def _read_bytes(path, what, size=-1):
  """(path as str, the file's first `size` bytes or all of them for -1).

  Raises: ValueError "<path>: cannot read <what> (<reason>)" when the file cannot be opened or read.
  """
  path = os.fspath(path)
  try:
    with open(path, 'rb') as f:
      return path, f.read(size)
  except OSError as e:
    raise ValueError(f'{path}: cannot read {what} ({e.strerror or e})') from e


def read_grd(path):
  """Reads a GAPS grid (.grd): int32[3] resolution (X,Y,Z), float32[16] world2grid row-major, float32 values.

  Grid-to-world convention (owned here): world2grid maps a world point p (column vector [x, y, z, 1]) to
  continuous grid coordinates g = (i, j, k) with i along x; grid point (i, j, k) holds `values[k, j, i]`
  (the file stores x fastest, so a C-order reshape gives [Z, Y, X]). Samples sit at integer g.
  Returns:
    (values float32 [Z,Y,X], world2grid float32 [4,4]).
  Raises:
    ValueError: "<path>: <problem>" for a missing file, a short/odd-sized file or a bad resolution.
  """
  path, data = _read_bytes(path, 'grid')
  if len(data) < _GRD_HEADER_BYTES:
    raise ValueError(f'{path}: {len(data)} bytes is too short for a GAPS grid header ({_GRD_HEADER_BYTES})')
  res = np.frombuffer(data, '<i4', 3, 0)
  if np.any(res <= 0):
    raise ValueError(f'{path}: bad grid resolution {res.tolist()}')
  n = int(np.prod(res.astype(np.int64)))
  if len(data) != _GRD_HEADER_BYTES + 4 * n:
    raise ValueError(f'{path}: size {len(data)} does not match resolution {res.tolist()} '
                     f'(expected {_GRD_HEADER_BYTES + 4 * n} bytes)')
  world2grid = np.frombuffer(data, '<f4', 16, 12).reshape(4, 4).astype(np.float32)
  values = np.frombuffer(data, '<f4', n, _GRD_HEADER_BYTES).reshape(res[2], res[1], res[0]).astype(np.float32)
  return values, world2grid


def write_grd(path, values, world2grid):
  """Writes a GAPS grid (layout and convention as `read_grd`), atomically.

  Args: values float [Z,Y,X] (stored as float32, x fastest); world2grid float [4,4] (stored as float32).
  Raises: ValueError for bad shapes.
  """
  values = np.asarray(values)
  world2grid = np.asarray(world2grid)
  if values.ndim != 3 or min(values.shape) < 1:
    raise ValueError(f'grid values must have shape [Z, Y, X], got {values.shape}')
  if world2grid.shape != (4, 4):
    raise ValueError(f'world2grid must have shape [4, 4], got {world2grid.shape}')
  with atomic_write(path, 'wb') as f:
    f.write(np.array(values.shape[::-1], '<i4').tobytes())
    f.write(np.ascontiguousarray(world2grid, '<f4').tobytes())
    f.write(np.ascontiguousarray(values, '<f4').tobytes())


def _read_float_records(path, width, kind):
  path = os.fspath(path)
  try:
    data = np.fromfile(path, dtype='<f4')
  except OSError as e:
    raise ValueError(f'{path}: cannot read {kind} file ({e.strerror or e})') from e
  if data.size % width:
    raise ValueError(f'{path}: {data.size * 4} bytes is not a whole number of '
                     f'{width * 4}-byte {kind} records')
  return data.reshape(-1, width).astype(np.float32)


def _write_float_records(path, records, width, kind):
  arr = np.asarray(records)
  if arr.ndim != 2 or arr.shape[1] != width:
    raise ValueError(f'{kind} records must have shape [N, {width}], got {arr.shape}')
  with atomic_write(path, 'wb') as f:
    f.write(np.ascontiguousarray(arr, '<f4').tobytes())


def read_sdf(path):
  """Reads a binary GAPS .sdf point file (msh2pts): headerless float32 records x y z value -> float32 [N,4].

  Raises: ValueError naming the file if it cannot be read or its size is not a multiple of 16 bytes.
  """
  return _read_float_records(path, 4, 'sdf')


def write_sdf(path, samples):
  """Writes float [N,4] samples (x y z value) as a headerless float32 .sdf file, atomically."""
  _write_float_records(path, samples, 4, 'sdf')


def read_pts(path):
  """Reads a binary GAPS .pts point file: headerless float32 records x y z nx ny nz -> float32 [N,6].

  Raises: ValueError naming the file if it cannot be read or its size is not a multiple of 24 bytes.
  """
  return _read_float_records(path, 6, 'pts')


def write_pts(path, points):
  """Writes float [N,6] points (x y z nx ny nz) as a headerless float32 .pts file, atomically."""
  _write_float_records(path, points, 6, 'pts')


def read_matrix(path):
  """Reads a 4x4 matrix written as 16 whitespace-separated numbers, row-major (e.g. orig_to_gaps.txt).

  Returns: float64 [4,4]. Raises: ValueError naming the file if it cannot be read or has != 16 numbers.
  """
  path = os.fspath(path)
  try:
    with open(path, 'r', encoding='utf-8') as f:
      tokens = f.read().split()
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f'{path}: cannot read matrix ({e})') from e
  if len(tokens) != 16:
    raise ValueError(f'{path}: expected 16 numbers for a 4x4 matrix, found {len(tokens)}')
  try:
    return np.array([float(t) for t in tokens], np.float64).reshape(4, 4)
  except ValueError as e:
    raise ValueError(f'{path}: not a matrix of numbers ({e})') from e


def write_matrix(path, m):
  """Writes a 4x4 matrix as GAPS msh2msh -debug_matrix does: 16 x '%g ' row-major, one line, no newline."""
  m = np.asarray(m, np.float64)
  if m.shape != (4, 4):
    raise ValueError(f'matrix must have shape [4, 4], got {m.shape}')
  with atomic_write(path, 'w') as f:
    f.write(''.join('%g ' % x for x in m.ravel()))



# ---- section: cameras, configurations, 16-bit images (owner: gaps-render) ----

import struct as _struct

_CAMERA_FIELDS = 12
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def _read_text(path, kind):
  path, data = _read_bytes(path, f'{kind} file')
  try:
    return path, data.decode('utf-8')
  except UnicodeDecodeError as e:
    raise ValueError(f'{path}: not a text {kind} file (byte {e.start} is not UTF-8)') from e


def _parse_floats(tokens, path, what):
  values = []
  for token in tokens:
    try:
      values.append(float(token))
    except ValueError:
      raise ValueError(f'{path}: {what}: {token!r} is not a number') from None
  values = np.array(values, np.float64)
  if not np.all(np.isfinite(values)):
    raise ValueError(f'{path}: {what}: non-finite number')
  return values


def read_cameras(path):
  """Reads a GAPS camera file (`.cam`, as scn2img reads it).

  Each camera is 12 whitespace-separated numbers, conventionally one camera per line:
  `vx vy vz  tx ty tz  ux uy uz  xfov yfov value` (eye position, towards vector, up vector, half-angle
  fields of view in radians, and a score GAPS stores but does not use). Frame: whatever frame the scene is in
  (the gaps frame for LDIF's `dodeca_cameras.cam`).

  Returns:
    float64 [V, 12], one row per camera, in file order.
  Raises:
    ValueError naming the file: missing/unreadable, not text, a token that is not a finite number, a number
    count that is not a positive multiple of 12.
  """
  path, text = _read_text(path, 'camera')
  tokens = text.split()
  if not tokens:
    raise ValueError(f'{path}: camera file is empty')
  values = _parse_floats(tokens, path, 'camera file')
  if len(values) % _CAMERA_FIELDS:
    raise ValueError(f'{path}: {len(values)} numbers is not a multiple of {_CAMERA_FIELDS} '
                     '(vx vy vz tx ty tz ux uy uz xfov yfov value per camera)')
  return values.reshape(-1, _CAMERA_FIELDS)


def write_cameras(path, cams, *, digits=6):
  """Writes cameras float [V, 12] as a GAPS `.cam` file (atomically), one camera per line.

  Layout as LDIF's `dodeca_cameras.cam`: `vx vy vz  tx ty tz  ux uy uz  xfov yfov  value`, each number printed
  with `digits` significant digits (6 = C's `%g`, what GAPS and LDIF write; 17 round-trips float64 exactly).

  Raises:
    ValueError: cams not of shape [V, 12] with V >= 1, or not finite.
  """
  cams = np.asarray(cams, np.float64)
  if cams.ndim != 2 or cams.shape[1] != _CAMERA_FIELDS or cams.shape[0] == 0:
    raise ValueError(f'cameras must have shape [V, {_CAMERA_FIELDS}] with V >= 1, got {cams.shape}')
  if not np.all(np.isfinite(cams)):
    raise ValueError('cameras contain non-finite values')
  fmt = f'%.{int(digits)}g'
  groups = ((0, 3), (3, 6), (6, 9), (9, 11), (11, 12))
  with atomic_write(path, 'w') as f:
    for cam in cams:
      f.write('  '.join(' '.join(fmt % x for x in cam[a:b]) for a, b in groups) + '\n')


def read_conf(path):
  """Reads a GAPS RGBD configuration file (`.conf`, as conf2img reads it).

  Recognised lines (first word is the keyword; `#` starts a comment line; other keywords are ignored as GAPS
  ignores them, e.g. LDIF's `dataset_processed`):
    `intrinsics_matrix` (or `depth_intrinsics_matrix`) + 9 numbers, row-major;
    `image` (or `scan`) + depth file name + color file name + 16 numbers (camera-to-world, row-major);
    `depth_directory <dir>` (`-` for none); `dataset <name>`.
  Every image must come after an intrinsics matrix; all images must share one intrinsics matrix.

  Returns:
    dict with `intrinsics` float64 [3, 3] (pixels), `images` = [(depth file name, float64 [4, 4]
    camera-to-world extrinsics), ...] in file order, `depth_directory` (str, as written, or None) and
    `dataset` (str or None).
  Raises:
    ValueError naming the file (and line): missing/unreadable, malformed line, image before intrinsics,
    several different intrinsics matrices, no images.
  """
  path, text = _read_text(path, 'configuration')
  intrinsics = None
  images = []
  depth_directory = None
  dataset = None
  for number, line in enumerate(text.splitlines(), start=1):
    words = line.split()
    if not words or words[0].startswith('#'):
      continue
    keyword = words[0]
    where = f'line {number} ({keyword})'
    if keyword in ('intrinsics_matrix', 'depth_intrinsics_matrix'):
      if len(words) < 10:
        raise ValueError(f'{path}: {where}: expected 9 numbers, got {len(words) - 1}')
      matrix = _parse_floats(words[1:10], path, where).reshape(3, 3)
      if intrinsics is not None and images and not np.array_equal(matrix, intrinsics):
        raise ValueError(f'{path}: {where}: images with different intrinsics matrices are not supported')
      intrinsics = matrix
    elif keyword in ('image', 'scan'):
      if intrinsics is None:
        raise ValueError(f'{path}: {where}: image listed before any intrinsics_matrix')
      if len(words) < 19:
        raise ValueError(f'{path}: {where}: expected depth name, color name and 16 numbers, '
                         f'got {len(words) - 1} fields')
      images.append((words[1], _parse_floats(words[3:19], path, where).reshape(4, 4)))
    elif keyword == 'depth_directory':
      if len(words) < 2:
        raise ValueError(f'{path}: {where}: missing directory name')
      depth_directory = None if words[1] == '-' else words[1]
    elif keyword == 'dataset':
      if len(words) < 2:
        raise ValueError(f'{path}: {where}: missing dataset name')
      dataset = words[1]
  if not images:
    raise ValueError(f'{path}: no image lines (expected "image <depth.png> <color> <16 numbers>")')
  if intrinsics[0, 0] == 0 or intrinsics[1, 1] == 0:
    raise ValueError(f'{path}: intrinsics matrix has a zero focal length')
  return dict(intrinsics=intrinsics, images=images, depth_directory=depth_directory, dataset=dataset)


def write_conf(path, intrinsics, images, depth_directory=None, *, dataset=None, extra_lines=()):
  """Writes a GAPS RGBD configuration file (atomically), in the layout of LDIF's `base_conf.conf`.

  Args:
    intrinsics: float [3, 3] pixel intrinsics.
    images: list of depth file names or of (name, extrinsics float [4, 4] camera-to-world or None = identity).
    depth_directory: written as a `depth_directory` line when not None.
    dataset: written as a `dataset` line when not None.
    extra_lines: lines written verbatim first (LDIF's custom conf starts with `dataset_processed`).
  Raises:
    ValueError: wrong shapes, non-finite numbers, names containing whitespace, no images.
  """
  intrinsics = np.asarray(intrinsics, np.float64)
  if intrinsics.shape != (3, 3) or not np.all(np.isfinite(intrinsics)):
    raise ValueError(f'intrinsics must be a finite [3, 3] matrix, got shape {intrinsics.shape}')
  if not images:
    raise ValueError('a configuration needs at least one image')

  def number(x):
    return '%.12g' % (x + 0.0)

  lines = [str(line) for line in extra_lines]
  if dataset is not None:
    lines.append(f'dataset {dataset}')
  if depth_directory is not None:
    depth_directory = os.fspath(depth_directory)
    if not depth_directory or any(c.isspace() for c in depth_directory):
      raise ValueError(f'depth_directory {depth_directory!r} must be non-empty without whitespace')
    lines.append(f'depth_directory {depth_directory}')
  lines.append('intrinsics_matrix ' + ' '.join(number(x) for x in intrinsics.ravel()))
  for item in images:
    name, extrinsics = (item, None) if isinstance(item, (str, os.PathLike)) else item
    name = os.fspath(name)
    if not name or any(c.isspace() for c in name):
      raise ValueError(f'image name {name!r} must be non-empty without whitespace')
    extrinsics = np.eye(4) if extrinsics is None else np.asarray(extrinsics, np.float64)
    if extrinsics.shape != (4, 4) or not np.all(np.isfinite(extrinsics)):
      raise ValueError(f'extrinsics of {name} must be a finite [4, 4] matrix, got shape {extrinsics.shape}')
    lines.append(f'image {name} -  ' + ' '.join(number(x) for x in extrinsics.ravel()))
  with atomic_write(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def read_png16(path):
  """Reads a 16-bit grayscale PNG (GAPS depth/normal images) -> uint16 [H, W], row 0 = top of the image.

  Raises:
    ValueError naming the file: missing/unreadable, not a PNG, not 16-bit single-channel grayscale, corrupt
      data.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel
  path, header = _read_bytes(path, 'PNG file', 33)
  if len(header) < 33 or header[:8] != _PNG_SIGNATURE or header[12:16] != b'IHDR':
    raise ValueError(f'{path}: not a PNG file')
  width, height, bit_depth, color_type = _struct.unpack('>IIBB', header[16:26])
  if bit_depth != 16 or color_type != 0:
    kinds = {0: 'grayscale', 2: 'RGB', 3: 'palette', 4: 'grayscale+alpha', 6: 'RGBA'}
    raise ValueError(f'{path}: expected a 16-bit grayscale PNG, got a {bit_depth}-bit '
                     f'{kinds.get(color_type, f"color type {color_type}")} PNG')
  try:
    with Image.open(path) as image:
      array = np.array(image)
  except (OSError, SyntaxError, ValueError) as e:
    raise ValueError(f'{path}: corrupt PNG ({e})') from e
  if array.shape != (height, width):
    raise ValueError(f'{path}: decoded shape {array.shape} does not match the header ({height}, {width})')
  return array.astype(np.uint16, copy=False)


def write_png16(path, image):
  """Writes uint16 [H, W] as a 16-bit grayscale PNG (atomically), row 0 = top, as GAPS's R2Grid writes them.

  Raises:
    ValueError: not a 2-D array of unsigned 16-bit integers (other integer dtypes are accepted when every
      value is in [0, 65535]) or an empty image.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel
  array = np.asarray(image)
  if array.ndim != 2 or array.size == 0:
    raise ValueError(f'a 16-bit image must be a non-empty [H, W] array, got shape {array.shape}')
  if array.dtype != np.uint16:
    if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 65535:
      raise ValueError(f'a 16-bit image must hold integers in [0, 65535], got dtype {array.dtype}')
    array = array.astype(np.uint16)
  with atomic_path(path) as tmp:
    Image.fromarray(np.ascontiguousarray(array)).save(tmp, format='PNG')

"""SIF/LDIF file formats: the `.txt` shape file (SIF v1) and the `.occnet` decoder-weight file.

Port of the serialization in the original's `inference/predict.py` (`Decoder.savetxt`/`encode_sif_v1`,
`Decoder.write_occnet_file`) and of the readers in `util/file_util.py` (`read_sif_v1`), `torch/sif.py`
(`_load_v1_txt`) and `ldif2mesh/ldif2mesh.cu` (file loading). Reference: ldif-reference.md §4.7 and §7.5.

`.txt` (SIF v1), all in the gaps frame::

    SIF
    <E> 0 <L>
    c mu_x mu_y mu_z sigma_x sigma_y sigma_z roll pitch yaw <flag> [L latent values]   (one line per element)

Numbers are written `%.9g`; sigma = sqrt(variance); flag is 1 for the first `symmetry_count` rows (they get a
mirror copy reflected across z = 0) and 0 for the rest. Axis-aligned ('aa') radii are written with three zero
angles; isotropic ('iso') radii cannot be written (the format has no way to mark them).

`.occnet`: int32 residual-layer count (1), int32 hidden width W, then float32 arrays (little-endian,
row-major),
each dense layer as kernel [in, out] then bias [out]: sample_resize_fc; cbn_1 (beta_fc, gamma_fc,
running_mean,
running_variance); fc_1; cbn_2; fc_2; final_cbn; final_activation. The original always has latent size
L = W = 32 (34468 bytes); other latent sizes are recognised from the file size.
"""

import dataclasses
import struct
from typing import Optional

import numpy as np

RADIUS_WIDTHS = {'iso': 1, 'aa': 3, 'cov': 6}
EXPLICIT_WIDTH = 10  # c, mu (3), sigma (3), angles (3) in a .txt row.
CBN_NAMES = ('cbn_1', 'cbn_2', 'final_cbn')


class SifFileError(ValueError):
  """A malformed `.txt` or `.occnet` file; the message is `"<path>: <problem>"`."""

  def __init__(self, path, problem):
    super().__init__(f'{path}: {problem}')
    self.path = str(path)
    self.problem = problem


@dataclasses.dataclass
class SifFile:
  """The contents of a SIF v1 `.txt` file (gaps frame).

  Fields (numpy, float32):
    constants: [E] element constants c (<= 0 for trained models).
    centers: [E, 3] element centres mu.
    variances: [E, 3] per-axis variances sigma^2 (the file stores sigma; they are squared on load).
    rotations: [E, 3] Euler angles (roll, pitch, yaw), radians.
    symmetry_count: int, the number of leading rows flagged symmetric (mirror copies across z = 0).
    latents: [E, L] latent codes, or None when L = 0 (a plain SIF).
    path: the file it was read from ('' when built in memory).
  """
  constants: np.ndarray
  centers: np.ndarray
  variances: np.ndarray
  rotations: np.ndarray
  symmetry_count: int
  latents: Optional[np.ndarray] = None
  path: str = ''

  @property
  def element_count(self):
    """E, the number of elements (without mirror copies)."""
    return int(self.constants.shape[0])

  @property
  def latent_size(self):
    """L, the latent length (0 for a SIF)."""
    return 0 if self.latents is None else int(self.latents.shape[1])

  @property
  def radii(self):
    """[E, 6] float32: the packed 'cov' radii (3 variances then roll, pitch, yaw), reference §4.1."""
    return np.concatenate([self.variances, self.rotations], axis=1).astype(np.float32)

  def packed(self):
    """[E, 10 + L] float32: the packed 'cov' vector (c, mu, variances, angles, latents), reference §4.1."""
    parts = [self.constants[:, None], self.centers, self.variances, self.rotations]
    if self.latents is not None:
      parts.append(self.latents)
    return np.concatenate(parts, axis=1).astype(np.float32)


def _as_float_array(value, name, shape, path):
  arr = np.asarray(value, dtype=np.float64)
  if arr.shape != shape:
    raise SifFileError(path, f'{name} has shape {arr.shape}, expected {shape}')
  if not np.all(np.isfinite(arr)):
    raise SifFileError(path, f'{name} contains NaN or infinite values')
  return arr


def encode_sif_txt(constants, centers, radii, symmetry_count, latents=None, radius_type='cov',
                   path='<memory>'):
  """Encodes a SIF/LDIF as SIF v1 text (the string `write_sif_txt` writes). Arguments as `write_sif_txt`."""
  if radius_type not in RADIUS_WIDTHS:
    raise SifFileError(path, f'unknown radius_type {radius_type!r}; expected one of {sorted(RADIUS_WIDTHS)}')
  if radius_type == 'iso':
    raise SifFileError(path, "isotropic ('iso') radii cannot be written to a SIF v1 .txt file: the format "
                       'stores three per-axis radii and three angles and has no way to mark an isotropic '
                       'element '
                       "(the original asserts here too); use radius_type 'aa' or 'cov'")
  constants = np.asarray(constants)
  if constants.ndim == 2 and constants.shape[1] == 1:
    constants = constants[:, 0]
  if constants.ndim != 1:
    raise SifFileError(path, f'constants must have shape [E] (or [E, 1]), got {constants.shape}')
  e = int(constants.shape[0])
  r = RADIUS_WIDTHS[radius_type]
  constants = _as_float_array(constants, 'constants', (e,), path)
  centers = _as_float_array(centers, 'centers', (e, 3), path)
  radii = _as_float_array(radii, f'radii ({radius_type})', (e, r), path)
  if radius_type == 'aa':
    radii = np.concatenate([radii, np.zeros([e, 3])], axis=1)
  symmetry_count = int(symmetry_count)
  if not 0 <= symmetry_count <= e:
    raise SifFileError(path, f'symmetry_count {symmetry_count} is outside [0, {e}]')
  if latents is not None:
    latents = np.asarray(latents)
    if latents.ndim != 2 or latents.shape[0] != e:
      raise SifFileError(path, f'latents must have shape [E={e}, L], got {latents.shape}')
    latents = _as_float_array(latents, 'latents', latents.shape, path)
    if latents.shape[1] == 0:
      latents = None
  latent_size = 0 if latents is None else latents.shape[1]
  # Values are stored as float32 (as the model produces them); sqrt in float32 so that sigma -> variance ->
  # sigma round-trips exactly.
  radii = radii.astype(np.float32)
  sigmas = np.sqrt(np.maximum(radii[:, :3], np.float32(0.0)))
  explicit = np.concatenate([constants[:, None].astype(np.float32), centers.astype(np.float32), sigmas,
                             radii[:, 3:]], axis=1)
  if latents is not None:
    latents = latents.astype(np.float32)
  lines = ['SIF', f'{e} 0 {latent_size}']
  for i in range(e):
    tokens = [f'{v:.9g}' for v in explicit[i].tolist()]
    tokens.append('1' if i < symmetry_count else '0')
    if latents is not None:
      tokens.extend(f'{v:.9g}' for v in latents[i].tolist())
    lines.append(' '.join(tokens))
  return '\n'.join(lines) + '\n'


def write_sif_txt(path, constants, centers, radii, symmetry_count, latents=None, radius_type='cov'):
  """Writes a SIF/LDIF `.txt` file (SIF v1), atomically. Port of the original's `Decoder.savetxt`.

  Args:
    path: output path.
    constants: [E] (or [E, 1]) element constants.
    centers: [E, 3] centres, gaps frame.
    radii: [E, R] radii in the packed convention: R = 3 ('aa': per-axis variances) or 6 ('cov': 3 variances
    then
      roll, pitch, yaw). Variances are written as sigma = sqrt(max(v, 0)).
    symmetry_count: int in [0, E]: the first `symmetry_count` rows are flagged symmetric.
    latents: [E, L] latent codes, or None (a SIF; written with L = 0).
    radius_type: 'aa' or 'cov' ('iso' raises).

  Raises:
    SifFileError (a ValueError): iso radii, inconsistent shapes, NaN/inf values, bad symmetry_count.
  """
  text = encode_sif_txt(constants, centers, radii, symmetry_count, latents, radius_type, path=path)
  from gaps_py.io import atomic_write  # pylint: disable=g-import-not-at-top
  with atomic_write(path, mode='w') as f:
    f.write(text)


def write_sif_file(path, sif):
  """Writes a `SifFile` (as read by `read_sif_txt`) back to a `.txt` file; see `write_sif_txt`."""
  write_sif_txt(path, sif.constants, sif.centers, sif.radii, sif.symmetry_count, sif.latents, 'cov')


def _parse_float_tokens(tokens, path, what):
  try:
    values = np.array([float(t) for t in tokens], dtype=np.float64)
  except ValueError as e:
    raise SifFileError(path, f'{what}: not a number ({e})') from None
  if not np.all(np.isfinite(values)):
    raise SifFileError(path, f'{what}: contains NaN or infinite values')
  return values


def decode_sif_txt(text, path='<memory>'):
  """Parses SIF v1 text into a `SifFile`; see `read_sif_txt`."""
  lines = text.splitlines()
  while lines and not lines[-1].strip():
    lines.pop()
  if not lines:
    raise SifFileError(path, 'empty file (expected the header line "SIF")')
  if lines[0].strip() != 'SIF':
    raise SifFileError(path, f'bad header: first line is {lines[0][:40]!r}, expected "SIF"')
  if len(lines) < 2:
    raise SifFileError(path, 'truncated file: the count line "<E> 0 <L>" is missing')
  counts = lines[1].split()
  try:
    if len(counts) != 3:
      raise ValueError
    e, version, latent_size = (int(t) for t in counts)
  except ValueError:
    raise SifFileError(path, f'bad count line {lines[1][:60]!r}: expected three integers '
                       '"<E> 0 <L>"') from None
  if version != 0:
    raise SifFileError(path, f'unsupported SIF version identifier {version} (only version 0, SIF v1, exists)')
  if e < 0 or latent_size < 0:
    raise SifFileError(path, f'negative element count or latent size in count line {lines[1]!r}')
  rows = lines[2:]
  if len(rows) < e:
    raise SifFileError(path, f'truncated file: the header announces {e} elements but there are '
                       f'{len(rows)} rows')
  if len(rows) > e:
    raise SifFileError(path, f'wrong counts: the header announces {e} elements but there are '
                       f'{len(rows)} rows')
  width = EXPLICIT_WIDTH + 1 + latent_size
  explicit = np.zeros([e, EXPLICIT_WIDTH], dtype=np.float64)
  latents = np.zeros([e, latent_size], dtype=np.float64)
  symmetry_count = 0
  seen_unflagged = False
  for i, row in enumerate(rows):
    tokens = row.split()
    if len(tokens) != width:
      raise SifFileError(path, f'row {i} (line {i + 3}) has {len(tokens)} values; expected {width} '
                         f'(10 parameters, the symmetry flag and L = {latent_size} latents)')
    explicit[i] = _parse_float_tokens(tokens[:EXPLICIT_WIDTH], path, f'row {i} (line {i + 3})')
    flag = tokens[EXPLICIT_WIDTH]
    if flag not in ('0', '1'):
      raise SifFileError(path, f'row {i} (line {i + 3}) has symmetry flag {flag!r}; expected 0 or 1')
    if flag == '1':
      if seen_unflagged:
        raise SifFileError(path, f'row {i} (line {i + 3}) is flagged symmetric but follows an unflagged row; '
                           'symmetric elements must come first')
      symmetry_count += 1
    else:
      seen_unflagged = True
    latents[i] = _parse_float_tokens(tokens[EXPLICIT_WIDTH + 1:], path, f'row {i} (line {i + 3}) latents')
  sigmas = explicit[:, 4:7]
  if np.any(sigmas < 0):
    row = int(np.argwhere(sigmas < 0)[0, 0])
    raise SifFileError(path, f'row {row} (line {row + 3}) has a negative radius (sigma)')
  return SifFile(
      constants=explicit[:, 0].astype(np.float32),
      centers=explicit[:, 1:4].astype(np.float32),
      variances=np.square(sigmas.astype(np.float32)),
      rotations=explicit[:, 7:10].astype(np.float32),
      symmetry_count=symmetry_count,
      latents=latents.astype(np.float32) if latent_size else None,
      path=str(path))


def read_sif_txt(path):
  """Reads a SIF v1 `.txt` file (SIF or LDIF). Port of `file_util.read_sif_v1` / torch `_load_v1_txt`.

  Unlike the original's `read_sif_v1`, plain SIFs (L = 0) are accepted (reference §10.12). The variances are
  the
  squares of the float32 sigmas in the file, as in the original readers.

  Returns:
    SifFile with float32 fields: constants [E], centers [E, 3], variances [E, 3], rotations [E, 3],
    latents [E, L] or None; symmetry_count (int).

  Raises:
    SifFileError (a ValueError) naming the file and the problem: missing/unreadable file, bad header, bad
    count
    line, version != 0, truncated file or extra rows, a row with the wrong number of values, a non-number,
    NaN/inf, a negative sigma, a flag other than 0/1, a flagged row after an unflagged one.
  """
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except OSError as e:
    raise SifFileError(path, f'cannot read file ({e.strerror or e})') from None
  try:
    text = raw.decode('ascii')
  except UnicodeDecodeError:
    raise SifFileError(path, 'not a text file (non-ASCII bytes); expected a SIF v1 .txt file') from None
  return decode_sif_txt(text, path=path)


# ---- .occnet ----


def _occnet_layout(width, latent_size):
  """[(key, shape)] in file order for hidden width W and latent size L."""
  w, l = width, latent_size
  layout = [('sample_resize_fc/kernel', (3, w)), ('sample_resize_fc/bias', (w,))]

  def cbn(name):
    return [(f'{name}/beta_fc/kernel', (l, w)), (f'{name}/beta_fc/bias', (w,)),
            (f'{name}/gamma_fc/kernel', (l, w)), (f'{name}/gamma_fc/bias', (w,)),
            (f'{name}/running_mean', (1,)), (f'{name}/running_variance', (1,))]

  layout += cbn('cbn_1')
  layout += [('fc_1/kernel', (w, w)), ('fc_1/bias', (w,))]
  layout += cbn('cbn_2')
  layout += [('fc_2/kernel', (w, w)), ('fc_2/bias', (w,))]
  layout += cbn('final_cbn')
  layout += [('final_activation/kernel', (w, 1)), ('final_activation/bias', (1,))]
  return layout


OCCNET_KEYS = tuple(k for k, _ in _occnet_layout(32, 32))


def occnet_float_count(width, latent_size):
  """The number of float32 values after the 8-byte header of an `.occnet` file for W and L."""
  return int(sum(int(np.prod(s)) for _, s in _occnet_layout(width, latent_size)))


def occnet_dims(weights, path='<weights>'):
  """(W, L) of a decoder-weight dict, validating every key and shape.

  Raises:
    SifFileError (a ValueError) naming the missing key or the inconsistent shape.
  """
  missing = [k for k in OCCNET_KEYS if k not in weights]
  if missing:
    raise SifFileError(path, f'decoder weights lack {missing}')
  w = int(np.shape(weights['sample_resize_fc/kernel'])[-1])
  l = int(np.shape(weights['cbn_1/beta_fc/kernel'])[0])
  for key, shape in _occnet_layout(w, l):
    got = tuple(np.shape(weights[key]))
    if got != shape and not (len(shape) == 1 and shape == (1,) and got == ()):
      raise SifFileError(path, f'decoder weight {key} has shape {got}; expected {shape} (W = {w}, L = {l})')
  return w, l


def flatten_occnet(weights, path='<weights>'):
  """[F] float32: the decoder weights concatenated in `.occnet` order (no header)."""
  w, l = occnet_dims(weights, path)
  return np.concatenate([np.asarray(weights[k], np.float32).reshape(-1) for k, _ in _occnet_layout(w, l)])


def unflatten_occnet(flat, width, latent_size):
  """Dict of float32 arrays (pinned keys) from `.occnet`-ordered floats for hidden width W and latent size
  L."""
  out = {}
  offset = 0
  for key, shape in _occnet_layout(width, latent_size):
    n = int(np.prod(shape))
    out[key] = np.array(flat[offset:offset + n], dtype=np.float32).reshape(shape)
    offset += n
  return out


def read_occnet(path, latent_size=None):
  """Reads an `.occnet` decoder-weight file into the pinned weights dict. Port of the original's loader in
  `ldif2mesh.cu` (`OccNet::LoadFile`) for the layout written by `Decoder.write_occnet_file`.

  Args:
    path: the `.occnet` file.
    latent_size: expected L, or None to take it from the file size (the original's files have L = W).

  Returns:
    dict of float32 arrays with the keys listed in CONVENTIONS.md (`sample_resize_fc/kernel [3, W]`, ...,
    `{cbn}/running_mean [1]`, `final_activation/bias [1]`).

  Raises:
    SifFileError (a ValueError): missing/unreadable file, truncated header, residual-layer count other than 1,
    non-positive width, a size that does not match the header (or the requested latent size), NaN/inf weights.
  """
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except OSError as e:
    raise SifFileError(path, f'cannot read file ({e.strerror or e})') from None
  if len(raw) < 8:
    raise SifFileError(path, f'truncated file: {len(raw)} bytes, shorter than the 8-byte header')
  layers, width = struct.unpack('<ii', raw[:8])
  if layers != 1:
    raise SifFileError(path, f'bad header: {layers} residual layers; only 1 is supported (as in the '
                       'original)')
  if not 0 < width <= 4096:
    raise SifFileError(path, f'bad header: hidden width {width} is not in [1, 4096]')
  body = len(raw) - 8
  if body % 4:
    raise SifFileError(path, f'size {len(raw)} bytes is not 8 + a whole number of float32 values')
  count = body // 4
  base = occnet_float_count(width, 0)
  if latent_size is None:
    if (count - base) % (6 * width) or count <= base:
      raise SifFileError(path, f'size {len(raw)} bytes does not match the header (1 layer, width {width}): '
                         f'expected {8 + 4 * occnet_float_count(width, width)} bytes for latent size '
                         f'{width}, or '
                         f'8 + 4 * ({base} + {6 * width} * L) bytes for latent size L')
    latent_size = (count - base) // (6 * width)
  else:
    expected = occnet_float_count(width, int(latent_size))
    if count != expected:
      raise SifFileError(path, f'size {len(raw)} bytes does not match the header (1 layer, width {width}) '
                         'and '
                         f'latent size {latent_size}: expected {8 + 4 * expected} bytes')
  flat = np.frombuffer(raw, dtype='<f4', offset=8)
  if not np.all(np.isfinite(flat)):
    raise SifFileError(path, 'contains NaN or infinite weights')
  return unflatten_occnet(flat, width, int(latent_size))


def write_occnet(path, weights):
  """Writes the pinned decoder-weight dict as an `.occnet` file, atomically. Port of `write_occnet_file`.

  Raises:
    SifFileError (a ValueError): missing keys, inconsistent shapes, NaN/inf weights.
  """
  w, _ = occnet_dims(weights, path)
  flat = flatten_occnet(weights, path)
  if not np.all(np.isfinite(flat)):
    raise SifFileError(path, 'decoder weights contain NaN or infinite values')
  from gaps_py.io import atomic_write  # pylint: disable=g-import-not-at-top
  with atomic_write(path, mode='wb') as f:
    f.write(struct.pack('<ii', 1, w))
    f.write(flat.astype('<f4').tobytes())


def sif_file_from_arrays(constants, centers, variances, rotations, symmetry_count, latents=None):
  """A `SifFile` from in-memory arrays (float32 copies), e.g. to feed the evaluation op. Shapes as
  `SifFile`."""
  return SifFile(
      constants=np.asarray(constants, np.float32).reshape(-1),
      centers=np.asarray(centers, np.float32),
      variances=np.asarray(variances, np.float32),
      rotations=np.asarray(rotations, np.float32),
      symmetry_count=int(symmetry_count),
      latents=None if latents is None or np.shape(latents)[-1] == 0 else np.asarray(latents, np.float32),
      path='')


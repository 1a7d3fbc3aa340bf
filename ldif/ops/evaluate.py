"""Evaluating SIFs/LDIFs at points and on grids: the custom op when it is built, else pure TensorFlow.

Port of the grid evaluation of the original's `inference/predict.py` (`Decoder._grid_eval_cuda`, which ran the
`ldif2mesh` CUDA binary) and of that binary's per-voxel value (`ldif2mesh/ldif2mesh.cu`, reference §7.4):

  F(x) = pass A (all E elements at x) + pass B (the first symmetry_count elements at x~ = (x, y, -z));
  RBF weights <= 1e-4 are skipped (LDIF: per element; SIF: a pass counts only where one of its weights exceeds
  1e-4), as the kernel does (reference §10.3).

The rule is discontinuous (a skipped term is about 1e-4 |c| |1 + O|), so float32 rounding, which differs between
TF, C++ and CUDA, could decide `w > 1e-4` differently near the threshold. The original decided it in float32 on
the GPU; here the decision is made in float64 so that every path agrees: w > 1e-4 <=> q < RBF_CUTOFF =
-2 ln(1e-4), with q = d^T Sigma^-1 d computed in float64 from the float32 parameters (centres, variances, Euler
angles; Sigma^-1 = R diag(1/(v + 1e-8)) R^T) and the float32 sample position (x~ for pass B). The values are
computed in float32 as before.

Both paths compute this: the op (`ldif.ops.loader`, C++/CUDA) and the pure-TensorFlow path, which is
`StructuredImplicit.implicit_values(..., rbf_threshold=1e-4)` with `occnet_decode` evaluated in chunks of
points.
They agree to about 1e-6 (tests check 1e-5). Values are raw F (no class transfer); inside is F < -0.07. All
positions are in the gaps frame.

Typical use::

    model = EvalModel.from_files('shape.txt', 'decoder.occnet')
    grid = evaluate_kernel_grid(model, 128)[0]         # [128, 128, 128], [z][y][x], kernel sample positions
    values = evaluate_points(model, points)[0]         # points [N, 3] -> [N]
"""

import dataclasses
import math
from typing import Optional

import numpy as np

from ldif.ops import loader
from ldif.representation import sif_file
from ldif.util import log

RBF_THRESHOLD = 1e-4
"""The kernel's rule: RBF weights at or below this are skipped (reference §7.4)."""

RBF_CUTOFF = -2.0 * math.log(RBF_THRESHOLD)
"""18.420680743952364: an element counts where its float64 q = -2 ln w is below this (the C++ kRbfCutoff)."""

DEFAULT_EXTENT = 0.75
"""Half-width of the mesh-extraction box (reference §7.3)."""

MAX_RESOLUTION = 1024

_OP_CHUNK_POINTS = 1 << 22
_OP_CHUNK_VOXELS = 1 << 22
_TF_CHUNK_POINTS_LDIF = 8192
_TF_CHUNK_POINTS_SIF = 65536


@dataclasses.dataclass
class EvalModel:
  """A batch of SIFs/LDIFs to evaluate, as numpy arrays (gaps frame).

  Attributes:
    constants: float32 [B, E].
    centers: float32 [B, E, 3].
    radii: float32 [B, E, R] in the packed convention (variances; 'cov' adds roll, pitch, yaw).
    radius_type: 'cov' (R = 6), 'aa' (R = 3) or 'iso' (R = 1; pure-TensorFlow path only).
    symmetry_count: the first symmetry_count elements get mirror copies at (x, y, -z).
    latents: float32 [B, E, L] (LDIF) or None (SIF).
    decoder_weights: the OccNet weights dict (`sif_file.read_occnet` keys) for an LDIF, else None.
    name: where it came from (for messages).
  """
  constants: np.ndarray
  centers: np.ndarray
  radii: np.ndarray
  radius_type: str = 'cov'
  symmetry_count: int = 0
  latents: Optional[np.ndarray] = None
  decoder_weights: Optional[dict] = None
  name: str = '<model>'

  # ---- construction ----

  @classmethod
  def from_sif_file(cls, sif, decoder_weights=None, name=None):
    """From a `sif_file.SifFile` (B = 1, 'cov' radii) and, for an LDIF, its decoder weights. Validated."""
    model = cls(constants=sif.constants[None], centers=sif.centers[None], radii=sif.radii[None],
                radius_type='cov', symmetry_count=sif.symmetry_count,
                latents=None if sif.latents is None else sif.latents[None], decoder_weights=decoder_weights,
                name=name or sif.path or '<sif>')
    model.validate()
    return model

  @classmethod
  def from_files(cls, txt_path, occnet_path=None):
    """Reads a `.txt` SIF/LDIF and, if it has latents, the `.occnet` decoder (ignored for a SIF, as the
    original's ldif2mesh does).

    Raises:
      ValueError (sif_file.SifFileError) naming the file and the problem, including a `.txt` latent size that
      does not match the `.occnet`.
    """
    sif = sif_file.read_sif_txt(txt_path)
    weights = None
    if sif.latent_size > 0:
      if occnet_path is None:
        raise sif_file.SifFileError(txt_path, f'is an LDIF (latent size {sif.latent_size}) and needs an '
                                    '.occnet '
                                    'decoder file')
      weights = sif_file.read_occnet(occnet_path)
      _, l = sif_file.occnet_dims(weights, occnet_path)
      if l != sif.latent_size:
        raise sif_file.SifFileError(
            occnet_path, f'decoder latent size {l} does not match the latent size {sif.latent_size} of '
            f'{txt_path} (each .txt row must carry as many latent values as the decoder takes)')
    return cls.from_sif_file(sif, weights, name=str(txt_path))

  @classmethod
  def from_structured_implicit(cls, structured_implicit, decoder_weights=None):
    """From a TF `StructuredImplicit` (any radius type) and, for an LDIF, its decoder weights. Validated."""
    si = structured_implicit
    latents = None if si.latents is None else np.asarray(si.latents, np.float32)
    model = cls(constants=np.asarray(si.constants, np.float32)[..., 0],
                centers=np.asarray(si.centers, np.float32),
                radii=np.asarray(si.radii, np.float32), radius_type=si.radius_type,
                symmetry_count=int(si.symmetry_count), latents=latents, decoder_weights=decoder_weights,
                name='<StructuredImplicit>')
    model.validate()
    return model

  @classmethod
  def from_packed(cls, packed, *, radius_type, symmetry_count, decoder_weights=None):
    """From a packed vector [E, D] or [B, E, D] (D = 1 + 3 + R (+ L), reference §4.1). Validated."""
    packed = np.asarray(packed, np.float32)
    if packed.ndim == 2:
      packed = packed[None]
    r = sif_file.RADIUS_WIDTHS.get(radius_type)
    if r is None:
      raise ValueError(f'unknown radius_type {radius_type!r}')
    if packed.ndim != 3 or packed.shape[-1] < 4 + r:
      raise ValueError(f'packed vector must be [B, E, >= {4 + r}] for radius type {radius_type!r}, '
                       f'got {packed.shape}')
    latents = packed[..., 4 + r:] if packed.shape[-1] > 4 + r else None
    model = cls(constants=packed[..., 0], centers=packed[..., 1:4], radii=packed[..., 4:4 + r],
                radius_type=radius_type, symmetry_count=int(symmetry_count), latents=latents,
                decoder_weights=decoder_weights, name='<packed>')
    model.validate()
    return model

  # ---- properties ----

  @property
  def batch_size(self):
    return int(self.constants.shape[0])

  @property
  def element_count(self):
    return int(self.constants.shape[1])

  @property
  def latent_size(self):
    return 0 if self.latents is None else int(self.latents.shape[-1])

  @property
  def op_supported(self):
    """Whether the op can evaluate this model (it has no isotropic-RBF formula; reference §4.7)."""
    return self.radius_type in ('cov', 'aa')

  def variances(self):
    """[B, E, 3] per-axis variances (the op's input)."""
    if self.radius_type == 'iso':
      return np.repeat(self.radii, 3, axis=-1)
    return self.radii[..., :3]

  def rotations(self):
    """[B, E, 3] roll, pitch, yaw (zeros unless 'cov')."""
    if self.radius_type == 'cov':
      return self.radii[..., 3:6]
    return np.zeros(self.centers.shape, np.float32)

  def validate(self):
    """Checks shapes, finiteness and the decoder, normalizing dtypes to float32.

    Raises:
      ValueError naming the model and the problem (NaN/inf parameters, negative variances, bad shapes, an LDIF
      without decoder weights or with weights of another latent size).
    """
    name = self.name
    if self.radius_type not in sif_file.RADIUS_WIDTHS:
      raise ValueError(f'{name}: unknown radius_type {self.radius_type!r}')
    r = sif_file.RADIUS_WIDTHS[self.radius_type]
    self.constants = np.asarray(self.constants, np.float32)
    if self.constants.ndim != 2:
      raise ValueError(f'{name}: constants must be [B, E], got {self.constants.shape}')
    b, e = self.constants.shape
    self.centers = np.asarray(self.centers, np.float32)
    self.radii = np.asarray(self.radii, np.float32)
    if self.centers.shape != (b, e, 3):
      raise ValueError(f'{name}: centers must be [B, E, 3] = [{b}, {e}, 3], got {self.centers.shape}')
    if self.radii.shape != (b, e, r):
      raise ValueError(f'{name}: radii must be [B, E, {r}] for radius type {self.radius_type!r}, '
                       f'got {self.radii.shape}')
    if not 0 <= int(self.symmetry_count) <= e:
      raise ValueError(f'{name}: symmetry_count {self.symmetry_count} is outside [0, {e}]')
    for field in ('constants', 'centers', 'radii'):
      if not np.all(np.isfinite(getattr(self, field))):
        raise ValueError(f'{name}: {field} contain NaN or infinite values')
    variances = self.radii if self.radius_type != 'cov' else self.radii[..., :3]
    if np.any(variances < 0):
      raise ValueError(f'{name}: negative variances')
    if self.latents is not None:
      self.latents = np.asarray(self.latents, np.float32)
      if self.latents.ndim != 3 or self.latents.shape[:2] != (b, e):
        raise ValueError(f'{name}: latents must be [B, E, L] = [{b}, {e}, L], got {self.latents.shape}')
      if self.latents.shape[-1] == 0:
        self.latents = None
    if self.latents is not None:
      if not np.all(np.isfinite(self.latents)):
        raise ValueError(f'{name}: latents contain NaN or infinite values')
      if self.decoder_weights is None:
        raise ValueError(f'{name}: an LDIF (latent size {self.latent_size}) needs decoder weights')
      _, l = sif_file.occnet_dims(self.decoder_weights, f'{name} decoder')
      if l != self.latent_size:
        raise ValueError(f'{name}: decoder latent size {l} does not match the latent size {self.latent_size}')
      for key, value in self.decoder_weights.items():
        if not np.all(np.isfinite(value)):
          raise ValueError(f'{name}: decoder weight {key} contains NaN or infinite values')


# ---- grid positions ----


def kernel_grid_spec(resolution, extent=DEFAULT_EXTENT):
  """Sample positions of the original kernel's grid (reference §7.3/§7.4), as origin + spacing * index.

  p(i) = -extent + 2 extent (0.5 + (R - 0.5) i / R) / R, the same along x, y and z.

  Returns:
    (origin float64 [3], spacing float64 [3]) for `evaluate_grid`.
  """
  r = float(resolution)
  origin = -extent + 2.0 * extent * 0.5 / r
  spacing = 2.0 * extent * (r - 0.5) / (r * r)
  return np.full(3, origin), np.full(3, spacing)


def kernel_grid_positions(resolution, extent=DEFAULT_EXTENT):
  """[R] float64: the kernel's sample coordinate p(i) for i in [0, R) (same on every axis)."""
  origin, spacing = kernel_grid_spec(resolution, extent)
  return origin[0] + spacing[0] * np.arange(resolution)


def check_resolution(resolution):
  """Raises ValueError unless 1 <= resolution <= 1024 (an int)."""
  if isinstance(resolution, bool) or int(resolution) != resolution or not 1 <= resolution <= MAX_RESOLUTION:
    raise ValueError(f'resolution must be an integer in [1, {MAX_RESOLUTION}], got {resolution!r}')


# ---- path selection ----


def _choose_op(model, use_op):
  """The loaded op module to use, or None for pure TensorFlow."""
  if use_op is False:
    return None
  module = loader.load_op()
  if not model.op_supported:
    if use_op:
      raise ValueError(f"{model.name}: the op cannot evaluate radius type 'iso'; use use_op=False")
    return None
  if module is None and use_op:
    raise RuntimeError(f'the LDIF evaluation op is not available: {loader.op_status()["reason"]}')
  return module


def _op_inputs(model):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  b, e = model.constants.shape
  if model.latents is not None:
    latents = model.latents
    decoder = sif_file.flatten_occnet(model.decoder_weights)
    width, _ = sif_file.occnet_dims(model.decoder_weights)
  else:
    latents = np.zeros([b, e, 0], np.float32)
    decoder = np.zeros([0], np.float32)
    width = 0
  tensors = [tf.constant(x, tf.float32) for x in (model.constants, model.centers, model.variances(),
                                                   model.rotations(), latents, decoder)]
  return tensors, width


# ---- pure TensorFlow ----


class _TfEvaluator:
  """Pure-TF evaluation of one model in fixed-size chunks of points (one traced function per chunk shape)."""

  def __init__(self, model):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    # pylint: disable-next=g-import-not-at-top
    from ldif.representation import structured_implicit_function as sif_tf
    latents = None if model.latents is None else tf.constant(model.latents)
    self._si = sif_tf.StructuredImplicit(
        constants=tf.constant(model.constants[..., None]), centers=tf.constant(model.centers),
        radii=tf.constant(model.radii), latents=latents, radius_type=model.radius_type,
        symmetry_count=int(model.symmetry_count))
    self._decoder = sif_tf.occnet_decoder_fn(model.decoder_weights) if latents is not None else None
    self.batch_size = model.batch_size
    self.chunk = _TF_CHUNK_POINTS_LDIF if latents is not None else _TF_CHUNK_POINTS_SIF
    self._fn = tf.function(self._values, reduce_retracing=True)

  def _values(self, points):
    return self._si.implicit_values(points, self._decoder, rbf_threshold=RBF_THRESHOLD)[..., 0]

  def __call__(self, points):
    """points float32 [B, n, 3] (n <= chunk) -> numpy [B, n]; pads to the chunk size to reuse one trace."""
    n = points.shape[1]
    if n < self.chunk:
      points = np.concatenate([points, np.zeros([points.shape[0], self.chunk - n, 3], np.float32)], axis=1)
    return self._fn(points).numpy()[:, :n]


def tf_implicit_values(model, points):
  """Pure-TF values (kernel rules) as a tf.Tensor: points [B, N, 3] (tensor) -> [B, N]. No chunking; for use
  inside TF code that wants the twin of the op."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # pylint: disable-next=g-import-not-at-top
  from ldif.representation import structured_implicit_function as sif_tf
  si = sif_tf.StructuredImplicit(
      constants=tf.constant(model.constants[..., None]), centers=tf.constant(model.centers),
      radii=tf.constant(model.radii), latents=None if model.latents is None else tf.constant(model.latents),
      radius_type=model.radius_type, symmetry_count=int(model.symmetry_count))
  decoder = sif_tf.occnet_decoder_fn(model.decoder_weights) if model.latents is not None else None
  return si.implicit_values(points, decoder, rbf_threshold=RBF_THRESHOLD)[..., 0]


# ---- public evaluation API ----


def _batched_points(model, points):
  points = np.asarray(points, np.float32)
  squeeze = points.ndim == 2
  if squeeze:
    points = np.broadcast_to(points[None], (model.batch_size,) + points.shape)
  if points.ndim != 3 or points.shape[-1] != 3 or points.shape[0] != model.batch_size:
    raise ValueError(f'points must be [N, 3] or [B={model.batch_size}, N, 3], got {points.shape}')
  if not np.all(np.isfinite(points)):
    raise ValueError('points contain NaN or infinite values')
  return np.ascontiguousarray(points)


def evaluate_points(model, points, *, use_op=None, cpu_method='tiled'):
  """F at points (kernel rules, reference §7.4), with the op if available (or `use_op`), else pure TF.

  Args:
    model: EvalModel.
    points: float32 [N, 3] (the same points for every batch item) or [B, N, 3], gaps frame.
    use_op: None (op if built and loadable, else pure TF), True (require the op), False (pure TF).
    cpu_method: the op's CPU algorithm, 'tiled' or 'pointwise' (the CUDA kernel's code; for tests).

  Returns:
    float32 numpy [B, N].

  Raises:
    ValueError: bad points or model; RuntimeError: use_op=True without a loadable op.
  """
  model.validate()
  points = _batched_points(model, points)
  b, n, _ = points.shape
  out = np.empty([b, n], np.float32)
  module = _choose_op(model, use_op)
  if module is not None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tensors, width = _op_inputs(model)
    for start in range(0, n, _OP_CHUNK_POINTS):
      chunk = tf.constant(points[:, start:start + _OP_CHUNK_POINTS])
      out[:, start:start + _OP_CHUNK_POINTS] = module.ldif_eval_points(
          *tensors, chunk, symmetry_count=int(model.symmetry_count), hidden_width=width,
          cpu_method=cpu_method).numpy()
    return out
  evaluator = _TfEvaluator(model)
  for start in range(0, n, evaluator.chunk):
    out[:, start:start + evaluator.chunk] = evaluator(points[:, start:start + evaluator.chunk])
  return out


def index_to_position(origin, spacing, index):
  """float32 [..., 3] positions of integer grid indices [..., 3] (x, y, z order), exactly as the op computes
  them: float32 origin and spacing, origin + spacing * index in float64, rounded once to float32."""
  o = np.asarray(origin, np.float32).astype(np.float64)
  s = np.asarray(spacing, np.float32).astype(np.float64)
  return (o + s * np.asarray(index, np.float64)).astype(np.float32)


def grid_points(origin, spacing, shape, z_begin=0, z_end=None):
  """float32 [nz', ny, nx, 3] sample positions (x, y, z) of planes [z_begin, z_end) of a grid of shape
  (nz, ny, nx), exactly as the op computes them (see `index_to_position`)."""
  nz, ny, nx = (int(s) for s in shape)
  z_end = nz if z_end is None else z_end
  xs = index_to_position(origin[0], spacing[0], np.arange(nx))
  ys = index_to_position(origin[1], spacing[1], np.arange(ny))
  zs = index_to_position(origin[2], spacing[2], np.arange(z_begin, z_end))
  zz, yy, xx = np.meshgrid(zs, ys, xs, indexing='ij')
  return np.stack([xx, yy, zz], axis=-1)


def evaluate_grid(model, origin, spacing, shape, *, use_op=None, cpu_method='tiled', max_chunk_voxels=None):
  """F on a regular grid, in slabs of z planes (bounded memory).

  Sample (k, j, i) (index order [z][y][x]) sits at origin + spacing * (i, j, k), computed in float32.

  Args:
    model: EvalModel.
    origin: [3] (x, y, z) position of sample (0, 0, 0), gaps frame.
    spacing: [3] sample spacing along x, y, z.
    shape: (nz, ny, nx).
    use_op, cpu_method: as `evaluate_points`.
    max_chunk_voxels: voxels per slab (default 4M for the op; the pure-TF path uses its point chunks).

  Returns:
    float32 numpy [B, nz, ny, nx].
  """
  model.validate()
  nz, ny, nx = (int(s) for s in shape)
  if min(nz, ny, nx) < 0:
    raise ValueError(f'grid shape must be non-negative, got {shape}')
  origin = np.asarray(origin, np.float64).reshape(3)
  spacing = np.asarray(spacing, np.float64).reshape(3)
  if not (np.all(np.isfinite(origin)) and np.all(np.isfinite(spacing))):
    raise ValueError('grid origin and spacing must be finite')
  out = np.empty([model.batch_size, nz, ny, nx], np.float32)
  if out.size == 0:
    return out
  module = _choose_op(model, use_op)
  plane = ny * nx
  if module is not None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tensors, width = _op_inputs(model)
    slab = max(1, (max_chunk_voxels or _OP_CHUNK_VOXELS) // plane)
    origin_t = tf.constant(origin.astype(np.float32))
    spacing_t = tf.constant(spacing.astype(np.float32))
    for z0 in range(0, nz, slab):
      z1 = min(nz, z0 + slab)
      out[:, z0:z1] = module.ldif_eval_grid(
          *tensors, origin_t, spacing_t, tf.constant([z1 - z0, ny, nx], tf.int32), tf.constant(z0, tf.int32),
          symmetry_count=int(model.symmetry_count), hidden_width=width, cpu_method=cpu_method).numpy()
    return out
  evaluator = _TfEvaluator(model)
  slab = max(1, min(nz, (max_chunk_voxels or max(evaluator.chunk * 16, plane)) // plane))
  for z0 in range(0, nz, slab):
    z1 = min(nz, z0 + slab)
    points = grid_points(origin, spacing, (nz, ny, nx), z0, z1).reshape(1, -1, 3)
    points = np.broadcast_to(points, (model.batch_size,) + points.shape[1:])
    values = np.empty([model.batch_size, points.shape[1]], np.float32)
    for start in range(0, points.shape[1], evaluator.chunk):
      values[:, start:start + evaluator.chunk] = evaluator(
          np.ascontiguousarray(points[:, start:start + evaluator.chunk]))
    out[:, z0:z1] = values.reshape(model.batch_size, z1 - z0, ny, nx)
  return out


def evaluate_kernel_grid(model, resolution, *, extent=DEFAULT_EXTENT, use_op=None, cpu_method='tiled'):
  """F on the original kernel's R^3 grid (reference §7.4): [B, R, R, R] float32, index order [z][y][x].

  Raises:
    ValueError: resolution not in [1, 1024], or a bad model.
  """
  check_resolution(resolution)
  origin, spacing = kernel_grid_spec(resolution, extent)
  return evaluate_grid(model, origin, spacing, (resolution,) * 3, use_op=use_op, cpu_method=cpu_method)


def path_in_use(model=None):
  """'op' or 'tf': which path `evaluate_*` would take with use_op=None (for logs and benchmarks)."""
  if model is not None and not model.op_supported:
    return 'tf'
  return 'op' if loader.load_op() is not None else 'tf'


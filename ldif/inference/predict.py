"""Decoding a predicted SIF/LDIF: evaluation on points and grids, IoU, mesh extraction, files.

Port of the `Decoder` half of ldif/inference/predict.py (reference §7.2, §7.3). The encoder half (depth images
-> packed SIF/LDIF vector) is `ldif.inference.experiment.Experiment`.

A `Decoder` holds one decoded shape (batch 1): a `StructuredImplicit` and, for LDIF, the OccNet decoder
weights as the pinned weights dict (the same dict the `.occnet` file stores and the Keras OccNet layer's
`decoder_weights()` returns). Everything here is in the gaps frame (the normalized frame of the training
data).

Points are evaluated in pure TensorFlow with the original's TF semantics (every element counts): one
`tf.function` per (radius type, symmetry count, latents or not, chunk size) in fixed-size chunks (the last
chunk zero-padded, as the original's `_chunk_sample_eval`), so a new shape of the same model does not retrace.
Mesh extraction can instead use the custom op (`ldif.ops`), which computes F as the original's ldif2mesh CUDA
kernel did (RBF weights <= 1e-4 skipped), and evaluates coarse-to-fine by default
(`ldif.inference.extract_mesh`, owned by the ops module).

Grid conventions (reference §7.3): the grid over [-E_x, E_x]^3 (E_x = 0.75), its [z][y][x] indexing, the
sample positions p(i) ('tf', 'kernel', 'aligned') and the marching-cubes mapping back to the gaps frame are
defined once, in `ldif.inference.extract_mesh` (see its docstring), and used here. Each path defaults to the
original's positions ('tf' in pure TF, 'kernel' with the op).
"""

import functools

import numpy as np
import tensorflow as tf

from ldif.inference import extract_mesh as extraction
from ldif.representation import sif_file
from ldif.representation import structured_implicit_function as sif_lib
from ldif.util import log

DEFAULT_EXTENT = extraction.DEFAULT_EXTENT
"""Half the side of the cube marching cubes works in (gaps units), as the original's `extract_mesh`."""

DEFAULT_RESOLUTION = 256
"""eval.py's default marching-cubes resolution (the original's `extract_mesh` default is 128)."""

GRID_POSITIONS = extraction.GRID_POSITIONS

SIF_CHUNK_SIZE = 65536
LDIF_CHUNK_SIZE = 16384


def grid_sample_spec(resolution, extent=DEFAULT_EXTENT, positions='tf'):
  """(origin float64 [3], spacing float64 [3]) of the R^3 sample grid, gaps frame:
  `extract_mesh.sample_grid_spec` with the pure-TF path's default positions, 'tf'. Raises ValueError as it."""
  return extraction.sample_grid_spec(resolution, extent, positions)


def grid_sample_coordinates(resolution, extent=DEFAULT_EXTENT, positions='tf'):
  """float32 [R]: the coordinate p(i) at which grid index i is sampled, on any axis
  (`extract_mesh.sample_grid_coordinates` with the pure-TF path's default positions, 'tf')."""
  return extraction.sample_grid_coordinates(resolution, extent, positions)


@functools.lru_cache(maxsize=None)
def _values_function(radius_type, symmetry_count, has_latents, chunk_size):
  """A tf.function (constants, centers, radii, latents, weights, points [chunk, 3]) -> F [chunk]."""

  @tf.function(input_signature=None, reduce_retracing=False)
  def evaluate(constants, centers, radii, latents, weights, points):
    shape = sif_lib.StructuredImplicit(constants, centers, radii, latents if has_latents else None,
                                       radius_type=radius_type, symmetry_count=symmetry_count)
    decoder = None
    if has_latents:
      decoder = lambda z, q: sif_lib.occnet_decode(weights, z, q)
    return shape.implicit_values(points[tf.newaxis], decoder)[0, :, 0]

  del chunk_size  # Part of the cache key only: one trace per chunk size.
  return evaluate


class Decoder:
  """One decoded SIF/LDIF (batch 1) and its evaluation on points and grids, gaps frame.

  Port of ldif/inference/predict.py `Decoder` (iou, class_at_samples, _grid_eval, extract_mesh, savetxt,
  write_occnet_file), without a TF1 session: the shape is data, the decoder weights a dict.

  Attributes:
    shape: `StructuredImplicit` with batch size 1.
    occnet_weights: the pinned OccNet weights dict (float32 numpy arrays), or None for a SIF.
    chunk_size: points per evaluation call.
  """

  def __init__(self, shape, occnet_weights=None, chunk_size=None):
    """Args:
      shape: `StructuredImplicit`, batch size 1 (constants [1, E, 1], ...).
      occnet_weights: dict (pinned keys) or None; required when `shape.latents` is not None.
      chunk_size: points per evaluation call; default 65536 for SIFs and 16384 for LDIFs (memory grows with
        chunk_size x E' x 32 floats for LDIFs).

    Raises:
      ValueError: batch size other than 1, or an LDIF without decoder weights.
    """
    if shape.constants.shape[0] != 1:
      raise ValueError(f'A Decoder holds one shape; got batch size {shape.constants.shape[0]}')
    if shape.latents is not None and occnet_weights is None:
      raise ValueError('An LDIF (with latents) needs the OccNet decoder weights')
    self.shape = shape
    self.occnet_weights = None
    self._weight_tensors = None
    if shape.latents is not None:
      self.occnet_weights = {k: np.asarray(v, np.float32) for k, v in occnet_weights.items()}
      sif_file.occnet_dims(self.occnet_weights)
      self._weight_tensors = {k: tf.constant(v) for k, v in self.occnet_weights.items()}
    if chunk_size is None:
      chunk_size = LDIF_CHUNK_SIZE if self.is_ldif else SIF_CHUNK_SIZE
    if chunk_size < 1:
      raise ValueError(f'chunk_size must be positive, got {chunk_size}')
    self.chunk_size = int(chunk_size)

  # ---- construction ----

  @classmethod
  def from_packed(cls, packed, *, radius_type, symmetry_count, occnet_weights=None, chunk_size=None):
    """A Decoder from a packed vector [E, D] or [1, E, D] (reference §4.1; D > 4 + R means LDIF latents)."""
    packed = np.asarray(packed, np.float32)
    if packed.ndim == 2:
      packed = packed[np.newaxis]
    if packed.ndim != 3 or packed.shape[0] != 1:
      raise ValueError(f'packed vector must be [E, D] or [1, E, D], got {packed.shape}')
    shape = sif_lib.StructuredImplicit.from_packed(tf.constant(packed), radius_type=radius_type,
                                                   symmetry_count=symmetry_count)
    return cls(shape, occnet_weights, chunk_size)

  @classmethod
  def from_files(cls, txt_path, occnet_path=None, chunk_size=None):
    """A Decoder from a SIF v1 `.txt` file (and, for LDIFs, the `.occnet` decoder file).

    Raises:
      sif_file.SifFileError (a ValueError) naming the file, for a malformed file or an LDIF `.txt` given
      without an `.occnet` file.
    """
    sif = sif_file.read_sif_txt(txt_path)
    weights = None
    if sif.latents is not None:
      if occnet_path is None:
        raise sif_file.SifFileError(txt_path, f'has latents (L = {sif.latent_size}); an .occnet decoder '
                                    'file is needed to evaluate it')
      weights = sif_file.read_occnet(occnet_path, latent_size=sif.latent_size)
    return cls.from_packed(sif.packed(), radius_type='cov', symmetry_count=sif.symmetry_count,
                           occnet_weights=weights, chunk_size=chunk_size)

  # ---- properties ----

  @property
  def is_ldif(self):
    """True when the shape has per-element latents (LDIF)."""
    return self.shape.latents is not None

  @property
  def radius_type(self):
    return self.shape.radius_type

  @property
  def symmetry_count(self):
    return self.shape.symmetry_count

  @property
  def element_count(self):
    return self.shape.element_count

  def packed(self):
    """float32 [E, D]: the packed vector of the shape (reference §4.1)."""
    return self.shape.packed().numpy()[0]

  # ---- evaluation ----

  def implicit_values(self, points):
    """The raw function value F (no class transfer) at gaps-frame points.

    Args:
      points: float [N, 3], gaps frame (any N >= 0).

    Returns:
      float32 [N]; inside where F < -0.07.

    Raises:
      ValueError: if points is not [N, 3] or not finite.
    """
    points = np.asarray(points, np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
      raise ValueError(f'points must be [N, 3], got {points.shape}')
    if not np.all(np.isfinite(points)):
      raise ValueError('points contain NaN or infinite values')
    n = points.shape[0]
    out = np.empty([n], np.float32)
    if n == 0:
      return out
    fn = _values_function(self.radius_type, self.symmetry_count, self.is_ldif, self.chunk_size)
    s = self.shape
    latents = s.latents if self.is_ldif else tf.zeros([1, 1, 1])
    weights = self._weight_tensors if self.is_ldif else {}
    chunk = np.zeros([self.chunk_size, 3], np.float32)
    for start in range(0, n, self.chunk_size):
      stop = min(n, start + self.chunk_size)
      chunk[:stop - start] = points[start:stop]
      chunk[stop - start:] = 0.0
      values = fn(s.constants, s.centers, s.radii, latents, weights, tf.constant(chunk))
      out[start:stop] = values.numpy()[:stop - start]
    return out

  def class_at_samples(self, points):
    """Soft class sigmoid(100 (F + 0.07)) at gaps-frame points [N, 3] -> float32 [N]; > 0.5 is outside."""
    values = self.implicit_values(points)
    return tf.sigmoid(sif_lib.CLASS_HARDNESS * (values - sif_lib.LEVEL_SET)).numpy()

  def iou(self, uniform_samples):
    """IoU in percent on the uniform samples of an example (reference §7.2; port of `Decoder.iou`).

    Args:
      uniform_samples: float [N, 4] (xyz + approximate signed distance, negative inside), gaps frame: the
        100000 rows of the example's `uniform_points.sdf`.

    Returns:
      float, 100 |P & G| / (|P | G| + 1e-5): P = predicted class < 0.5, G = sdf < 0.
    """
    from ldif.inference import metrics  # pylint: disable=g-import-not-at-top
    samples = np.asarray(uniform_samples, np.float32)
    if samples.ndim != 2 or samples.shape[1] != 4:
      raise ValueError(f'uniform samples must be [N, 4], got {samples.shape}')
    pred_inside = self.class_at_samples(samples[:, :3]) < 0.5
    return metrics.point_iou(pred_inside, samples[:, 3] < 0.0)

  def grid_values(self, resolution, extent=DEFAULT_EXTENT, positions='tf'):
    """F on a dense R^3 grid, pure TF (port of `Decoder._grid_eval`; reference §7.3).

    Args:
      resolution: R.
      extent: E_x; the grid covers [-E_x, E_x]^3 (gaps frame).
      positions: sample positions 'tf' (original TF path), 'kernel' (ldif2mesh) or 'aligned'.

    Returns:
      float32 [R, R, R] indexed [z][y][x], raw F.
    """
    return extraction.dense_grid(self.implicit_values, int(resolution), extent=extent, positions=positions)

  def extract_mesh(self, resolution=128, extent=DEFAULT_EXTENT, use_inference_kernel=False, positions='tf',
                   coarse_to_fine=True):
    """Extracts the -0.07 level set as a mesh in the gaps frame (port of `Decoder.extract_mesh`).

    Two paths, as the original's (reference §7.3, §7.4):
    - `use_inference_kernel` and the custom op built (`ldif.ops`): F as the ldif2mesh kernel computes it (RBF
      weights <= 1e-4 skipped) at the kernel's sample positions ('kernel');
    - otherwise (the op's absence is logged once): F in pure TF as the original's `_grid_eval` (every element
      counts) at `positions` ('tf', the original's, by default).
    Both go through `ldif.inference.extract_mesh.extract_mesh`: with `coarse_to_fine` (default) only the
    cells near the surface are evaluated at full resolution, which gives the dense grid's mesh at a fraction
    of the cost; False evaluates the dense grid as the original did. Marching cubes and the index -> gaps
    mapping are the original's (`ldif.inference.extract_mesh.marching_cubes`).

    Args:
      resolution: R (eval.py uses 256).
      extent: E_x.
      use_inference_kernel: prefer the custom op.
      positions: sample positions of the pure-TF path ('tf', 'kernel' or 'aligned').
      coarse_to_fine: evaluate coarse-to-fine (True) or the dense grid (False).

    Returns:
      (trimesh.Trimesh in the gaps frame, had_crossing bool). Without a crossing the mesh is the original's
      fallback, a sphere of radius 0.5 (logged as a warning).
    """
    model = inference_kernel_model(self) if use_inference_kernel else None
    if model is not None:
      result = extraction.extract_mesh(model, int(resolution), extent=extent, coarse_to_fine=coarse_to_fine,
                                       positions='kernel', use_op=True)
    else:
      result = extraction.extract_mesh(self.implicit_values, int(resolution), extent=extent,
                                       coarse_to_fine=coarse_to_fine, positions=positions)
    return mesh_from_marching_cubes(result.had_crossing, result.vertices, result.faces)

  # ---- files ----

  def write_txt(self, path):
    """Writes the shape as a SIF v1 `.txt` file, gaps frame (port of `Decoder.savetxt`).

    Raises:
      sif_file.SifFileError: for 'iso' radii (the format cannot hold them) or non-finite parameters.
    """
    s = self.shape
    latents = s.latents.numpy()[0] if self.is_ldif else None
    sif_file.write_sif_txt(path, s.constants.numpy()[0, :, 0], s.centers.numpy()[0], s.radii.numpy()[0],
                           s.symmetry_count, latents, s.radius_type)

  def write_occnet(self, path):
    """Writes the OccNet decoder weights as an `.occnet` file (port of `Decoder.write_occnet_file`).

    Raises:
      ValueError: for a SIF (no decoder).
    """
    if not self.is_ldif:
      raise ValueError(f'{path}: a SIF has no OccNet decoder to write')
    sif_file.write_occnet(path, self.occnet_weights)


def inference_kernel_model(decoder):
  """The `ldif.ops.evaluate.EvalModel` of a Decoder when the custom op can evaluate it, else None.

  None when the op is not built or cannot load (why is logged once per process by `ldif.ops.loader`), or for
  isotropic ('iso') shapes, which the kernel cannot evaluate.
  """
  from ldif.ops import evaluate as ops_evaluate  # pylint: disable=g-import-not-at-top
  model = ops_evaluate.EvalModel.from_structured_implicit(decoder.shape, decoder.occnet_weights)
  if ops_evaluate.path_in_use(model) != 'op':
    return None
  return model


def kernel_grid_values(decoder, resolution, extent=DEFAULT_EXTENT):
  """F on the ldif2mesh kernel's dense grid through the custom op, or None when the op cannot be used.

  The op reproduces the original CUDA kernel (reference §7.4): its sample positions ('kernel' in
  `grid_sample_spec`) and its rule of skipping RBF weights <= 1e-4.

  Args:
    decoder: `Decoder`.
    resolution: R.
    extent: E_x.

  Returns:
    float32 [R, R, R] indexed [z][y][x], or None (see `inference_kernel_model`).
  """
  from ldif.ops import evaluate as ops_evaluate  # pylint: disable=g-import-not-at-top
  model = inference_kernel_model(decoder)
  if model is None:
    return None
  return ops_evaluate.evaluate_kernel_grid(model, int(resolution), extent=extent, use_op=True)[0]


def mesh_from_marching_cubes(had_crossing, vertices, faces):
  """A trimesh.Trimesh (gaps frame) from marching-cubes output, or the original's fallback when there was no
  crossing: a sphere of radius 0.5 (logged as a warning).

  Returns:
    (trimesh.Trimesh, had_crossing).
  """
  import trimesh  # pylint: disable=g-import-not-at-top
  if not had_crossing or len(faces) == 0:
    log.warning('Marching cubes found no surface at level -0.07; using the fallback sphere of radius 0.5.')
    return trimesh.primitives.Sphere(radius=0.5).to_mesh(), False
  return trimesh.Trimesh(vertices=np.asarray(vertices, np.float64), faces=np.asarray(faces, np.int64)), True


def gaps_to_mesh_frame(vertices, orig_to_gaps):
  """Maps gaps-frame vertices back to the input mesh's frame with the inverse of `orig_to_gaps`.

  The original inverts the matrix as read from `orig_to_gaps.txt` (6 significant digits), so this does too.

  Args:
    vertices: float [V, 3], gaps frame.
    orig_to_gaps: float [4, 4] mesh frame -> gaps frame (row-major, column-vector convention).

  Returns:
    float64 [V, 3] in the mesh frame.

  Raises:
    ValueError: if the matrix is not 4x4, not finite, or singular.
  """
  m = np.asarray(orig_to_gaps, np.float64)
  if m.shape != (4, 4) or not np.all(np.isfinite(m)):
    raise ValueError(f'orig_to_gaps must be a finite 4x4 matrix, got shape {m.shape}')
  try:
    inverse = np.linalg.inv(m)
  except np.linalg.LinAlgError:
    raise ValueError('orig_to_gaps is singular; cannot map back to the mesh frame') from None
  v = np.asarray(vertices, np.float64)
  homogeneous = np.concatenate([v, np.ones([v.shape[0], 1])], axis=1) @ inverse.T
  return homogeneous[:, :3] / homogeneous[:, 3:4]

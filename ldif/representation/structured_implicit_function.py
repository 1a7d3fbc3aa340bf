"""The structured implicit function (SIF) and its LDIF extension, in TensorFlow.

Port of ldif/representation/structured_implicit_function.py and quadrics.py (reference §4).

A SIF is a sum of E shape elements, each a scaled Gaussian RBF:

    F(x) = sum_i c_i * w_i(x_i)                          (SIF, SIF++: no latents)
    F(x) = sum_i c_i * w_i(x_i) * (1 + O(z_i, W2L_i x_i))  (LDIF: per-element latent z_i and OccNet O)

with c_i <= 0 the element constant, w_i the RBF weight of element i, and x_i = x for the E real elements and the
reflection x~ = (x, y, -z) for the `symmetry_count` mirror copies appended after them (elements E..E'-1 copy elements
0..symmetry_count-1). The surface is the level set F = -0.07; inside is F < -0.07. All positions are in the gaps frame
(the normalized frame made by msh2msh).

Parameter layout of one element in the packed vector [B, E, D] (reference §4.1), D = 1 + 3 + R (+ L):
  constant (1) | center (3) | radii (R: 'iso' 1 variance; 'aa' 3 variances; 'cov' 3 variances then roll, pitch, yaw)
  | latent (L, LDIF only).
The packed vector stores variances (sigma^2); the `.txt` files store sigma.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

LEVEL_SET = -0.07
"""The iso-level of F that defines the surface (hparam `lset`)."""

CLASS_HARDNESS = 100.0
"""The sharpness of the soft class transfer sigma(hdn * (F - lset)) (hparam `hdn`)."""

MAX_RADIUS = 0.15
"""Largest per-axis standard deviation an activation can produce (reference §4.2)."""

MAX_EULER_ANGLE = np.pi / 4.0
"""Euler angles of 'cov' elements are clipped to [-pi/4, pi/4] (reference §4.2)."""

RADIUS_DIMS = {'iso': 1, 'aa': 3, 'cov': 6}

COV_EPS = 1e-8  # added to variances before inverting ('cov' and 'aa' RBFs)
ISO_MIN_VARIANCE = 1e-4  # floor on the variance of 'iso' RBFs
LOCAL_SCALE_EPS = 1e-8  # world2local scale = 1 / (sqrt(v + 1e-8) + 1e-8)
OCCNET_VARIANCE_EPS = 1e-5  # CBN: (h - m) / sqrt(s + 1e-5)

OCCNET_CBN_NAMES = ('cbn_1', 'cbn_2', 'final_cbn')


def explicit_element_dim(radius_type):
  """The width of one element's analytic parameters: 1 + 3 + R (5 'iso', 7 'aa', 10 'cov').

  Raises:
    ValueError: for an unknown radius type.
  """
  return 1 + 3 + radius_dim(radius_type)


def radius_dim(radius_type):
  """R, the width of the radius slot: 1 ('iso'), 3 ('aa') or 6 ('cov')."""
  if radius_type not in RADIUS_DIMS:
    raise ValueError(f"Unknown radius type {radius_type!r}; expected 'iso', 'aa' or 'cov'")
  return RADIUS_DIMS[radius_type]


def rotation_matrices(angles):
  """Rotation matrices from roll, pitch, yaw Euler angles: R = Rz(yaw) @ Ry(pitch) @ Rx(roll).

  Port of ldif/util/camera_util.py roll_pitch_yaw_to_rotation_matrices (reference §4.3).

  Args:
    angles: float32 tensor [..., 3] (roll, pitch, yaw) in radians.

  Returns:
    float32 tensor [..., 3, 3]. Rotates points by roll about x, then pitch about y, then yaw about z.
  """
  angles = tf.convert_to_tensor(angles)
  cos = tf.cos(angles)
  sin = tf.sin(angles)
  cx, cy, cz = tf.unstack(cos, axis=-1)
  sx, sy, sz = tf.unstack(sin, axis=-1)
  rows = [
      tf.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], axis=-1),
      tf.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], axis=-1),
      tf.stack([-sy, cy * sx, cy * cx], axis=-1),
  ]
  return tf.stack(rows, axis=-2)


def rbf_weights(diffs, radii, radius_type):
  """Gaussian RBF weight of each element at sample offsets (reference §4.3).

  Args:
    diffs: float32 [B, E, N, 3]; sample minus element center, gaps frame.
    radii: float32 [B, E, R]; the radius slot of the packed vector (variances, then angles for 'cov').
    radius_type: 'iso', 'aa' or 'cov'.

  Returns:
    float32 [B, E, N] in (0, 1].
  """
  if radius_type == 'cov':
    variances = radii[..., :3]
    rotation = rotation_matrices(radii[..., 3:6])  # [B, E, 3, 3]
    # d^T R diag(1/(v+eps)) R^T d, with the full inverse covariance as the original builds it.
    inv_diag = 1.0 / (variances + COV_EPS)
    inv_cov = tf.matmul(rotation * inv_diag[..., tf.newaxis, :], rotation, transpose_b=True)
    projected = tf.matmul(diffs, inv_cov)  # [B, E, N, 3]; inv_cov is symmetric
    dist = tf.reduce_sum(projected * diffs, axis=-1)
    return tf.exp(-0.5 * dist)
  if radius_type == 'aa':
    scale = tf.minimum(-2.0 * radii[..., tf.newaxis, :], -COV_EPS)  # [B, E, 1, 3]
    return tf.exp(tf.reduce_sum(tf.square(diffs) / scale, axis=-1))
  if radius_type == 'iso':
    variance = tf.maximum(ISO_MIN_VARIANCE, radii)  # [B, E, 1]
    return tf.exp(-0.5 * tf.reduce_sum(tf.square(diffs), axis=-1) / variance)
  raise ValueError(f"Unknown radius type {radius_type!r}; expected 'iso', 'aa' or 'cov'")


def rbf_quadratic_forms64(diffs, radii, radius_type):
  """q = -2 ln w of each element at sample offsets, in float64: what the kernel's 1e-4 rule decides on.

  w > threshold is decided as q < -2 ln(threshold) with q from this function (see
  `StructuredImplicit.rbf_active`). The original decided `w > 1e-4` in float32 on the GPU; here the decision
  is made in float64 so that every path (the op's CPU and CUDA kernels, this pure-TF path, the numpy twin,
  torch sif.py) agrees. The same quadratic forms as `rbf_weights`:
    'cov': d^T R diag(1/(v + 1e-8)) R^T d;  'aa': -2 sum_k d_k^2 / min(-2 v_k, -1e-8);
    'iso': |d|^2 / max(1e-4, v).

  Args:
    diffs: float64 [B, E, N, 3]; sample minus element center (formed in float64 from the float32 sample and
      center), gaps frame.
    radii: [B, E, R] (float32 parameters; cast to float64 here).
    radius_type: 'iso', 'aa' or 'cov'.

  Returns:
    float64 [B, E, N], >= 0.
  """
  radii = tf.cast(radii, tf.float64)
  if radius_type == 'cov':
    rotation = rotation_matrices(radii[..., 3:6])  # [B, E, 3, 3] float64
    inv_diag = 1.0 / (radii[..., :3] + COV_EPS)
    inv_cov = tf.matmul(rotation * inv_diag[..., tf.newaxis, :], rotation, transpose_b=True)
    return tf.reduce_sum(tf.matmul(diffs, inv_cov) * diffs, axis=-1)
  if radius_type == 'aa':
    scale = tf.minimum(-2.0 * radii[..., tf.newaxis, :], -COV_EPS)
    return -2.0 * tf.reduce_sum(tf.square(diffs) / scale, axis=-1)
  if radius_type == 'iso':
    variance = tf.maximum(tf.constant(ISO_MIN_VARIANCE, tf.float64), radii)  # [B, E, 1]
    return tf.reduce_sum(tf.square(diffs), axis=-1) / variance
  raise ValueError(f"Unknown radius type {radius_type!r}; expected 'iso', 'aa' or 'cov'")


def world2local_matrices(centers, radii, radius_type):
  """World-to-local frames of shape elements, tx='crs' (reference §4.5).

  x_local = S R^T (x - mu), with S = diag(1 / (sqrt(v + 1e-8) + 1e-8)) for 'aa' and 'cov' (identity for 'iso')
  and R the element rotation for 'cov' (identity otherwise). The original inverts R with a matrix inverse; R^T is the
  same rotation.

  Args:
    centers: float32 [B, E, 3], gaps frame.
    radii: float32 [B, E, R].
    radius_type: 'iso', 'aa' or 'cov'.

  Returns:
    float32 [B, E, 4, 4] homogeneous matrices mapping gaps-frame points to element-local points.
  """
  batch_shape = tf.shape(centers)[:-1]
  if radius_type == 'cov':
    rotation_t = tf.linalg.matrix_transpose(rotation_matrices(radii[..., 3:6]))
  else:
    radius_dim(radius_type)
    rotation_t = tf.eye(3, batch_shape=batch_shape, dtype=centers.dtype)
  if radius_type in ('aa', 'cov'):
    scale = 1.0 / (tf.sqrt(radii[..., :3] + COV_EPS) + LOCAL_SCALE_EPS)
    linear = rotation_t * scale[..., :, tf.newaxis]  # diag(s) @ R^T
  else:
    linear = rotation_t
  translation = -tf.linalg.matvec(linear, centers)  # [B, E, 3]
  top = tf.concat([linear, translation[..., tf.newaxis]], axis=-1)  # [B, E, 3, 4]
  bottom = tf.broadcast_to(tf.constant([0.0, 0.0, 0.0, 1.0], dtype=centers.dtype),
                           tf.concat([batch_shape, [1, 4]], axis=0))
  return tf.concat([top, bottom], axis=-2)


def reflect_z(points):
  """The left-right reflection used for symmetric elements: (x, y, z) -> (x, y, -z). Shape preserved."""
  return points * tf.constant([1.0, 1.0, -1.0], dtype=points.dtype)


def class_transfer(values, level_set=LEVEL_SET, hardness=CLASS_HARDNESS):
  """Soft inside/outside class: sigmoid(hardness * (F - level_set)); > 0.5 means outside (reference §4.6)."""
  return tf.sigmoid(hardness * (values - level_set))


def _dense(x, weights, name):
  return tf.matmul(x, weights[f'{name}/kernel']) + weights[f'{name}/bias']


def occnet_decode(weights, latents, local_points):
  """Evaluates the LDIF OccNet decoder in inference mode (stored CBN running statistics).

  Port of ldif/nets/occnet.py (one residual block, fon='t', no sigmoid; reference §5.6):
      h0 = Lin(q); a = CBN1(h0; z); h = Lin1(relu(a)); h = Lin2(relu(CBN2(h; z))); h = a + h
      O = Linf(CBNf(h; z))
  with CBN(h; z) = gamma(z) * (h - m) / sqrt(s + 1e-5) + beta(z), m and s scalar running statistics.

  Args:
    weights: dict of float32 arrays or tensors with the keys listed in `occnet_weight_shapes` (W = hidden width).
    latents: float32 [..., L]; one latent code per decoded element.
    local_points: float32 [..., N, 3]; query points in each element's local frame.

  Returns:
    float32 [..., N, 1], the residual O added as F = sum c w (1 + O).
  """
  weights = {k: tf.convert_to_tensor(v, dtype=tf.float32) for k, v in weights.items()}
  latents = latents[..., tf.newaxis, :]  # [..., 1, L]

  def cbn(h, name):
    beta = _dense(latents, weights, f'{name}/beta_fc')
    gamma = _dense(latents, weights, f'{name}/gamma_fc')
    mean = weights[f'{name}/running_mean']
    variance = weights[f'{name}/running_variance']
    return gamma * ((h - mean) / tf.sqrt(variance + OCCNET_VARIANCE_EPS)) + beta

  h0 = _dense(local_points, weights, 'sample_resize_fc')
  a = cbn(h0, 'cbn_1')
  h = _dense(tf.nn.relu(a), weights, 'fc_1')
  h = _dense(tf.nn.relu(cbn(h, 'cbn_2')), weights, 'fc_2')
  h = a + h
  return _dense(cbn(h, 'final_cbn'), weights, 'final_activation')


def occnet_weight_shapes(latent_size=32, width=32):
  """The keys and shapes of the OccNet decoder weights dict (the order of the `.occnet` file, reference §7.5).

  Returns:
    dict name -> shape tuple, in file order.
  """
  shapes = {'sample_resize_fc/kernel': (3, width), 'sample_resize_fc/bias': (width,)}

  def add_cbn(name):
    shapes.update({
        f'{name}/beta_fc/kernel': (latent_size, width), f'{name}/beta_fc/bias': (width,),
        f'{name}/gamma_fc/kernel': (latent_size, width), f'{name}/gamma_fc/bias': (width,),
        f'{name}/running_mean': (1,), f'{name}/running_variance': (1,)})

  add_cbn('cbn_1')
  shapes.update({'fc_1/kernel': (width, width), 'fc_1/bias': (width,)})
  add_cbn('cbn_2')
  shapes.update({'fc_2/kernel': (width, width), 'fc_2/bias': (width,)})
  add_cbn('final_cbn')
  shapes.update({'final_activation/kernel': (width, 1), 'final_activation/bias': (1,)})
  return shapes


def occnet_decoder_fn(weights):
  """Wraps `occnet_decode` as the decoder callable `StructuredImplicit.implicit_values` expects.

  Args:
    weights: the OccNet weights dict (see `occnet_decode`).

  Returns:
    callable(latents [B, E', L], local_points [B, E', N, 3]) -> [B, E', N, 1].
  """
  tensors = {k: tf.constant(np.asarray(v, np.float32)) for k, v in weights.items()}
  return lambda latents, local_points: occnet_decode(tensors, latents, local_points)


@dataclasses.dataclass(frozen=True)
class StructuredImplicit:
  """A batch of structured implicit functions (SIF) or local deep implicit functions (LDIF).

  Port of ldif/representation/structured_implicit_function.py StructuredImplicit. All tensors float32,
  gaps frame.

  Attributes:
    constants: [B, E, 1], <= 0 for valid elements.
    centers: [B, E, 3].
    radii: [B, E, R]: variances ('iso' 1, 'aa' 3) or 3 variances then roll, pitch, yaw ('cov').
    latents: [B, E, L] per-element latent codes (LDIF) or None (SIF, SIF++).
    radius_type: 'iso', 'aa' or 'cov'.
    symmetry_count: the first `symmetry_count` elements get a mirror copy across z = 0 (hparam `lyr`).
  """
  constants: tf.Tensor
  centers: tf.Tensor
  radii: tf.Tensor
  latents: tf.Tensor | None = None
  radius_type: str = 'cov'
  symmetry_count: int = 0

  def __post_init__(self):
    r = radius_dim(self.radius_type)
    if self.radii.shape[-1] is not None and self.radii.shape[-1] != r:
      raise ValueError(f'radius type {self.radius_type!r} needs radii [B, E, {r}], got {self.radii.shape}')
    e = self.constants.shape[1]
    if e is not None and not 0 <= self.symmetry_count <= e:
      raise ValueError(f'symmetry_count {self.symmetry_count} must be in [0, {e}]')

  # ---- construction ----

  @classmethod
  def from_activation(cls, activations, latents=None, *, radius_type, symmetry_count, constant_mode='a'):
    """Parses raw network outputs into element parameters (reference §4.2, `cp`).

    constant = -|a0| (constant_mode 'a') or sigmoid(a0) - 1 ('s'); center = a1..3 / 2;
    variance_k = (0.15 * sigmoid(a_k))^2; 'cov' angles = clip(a, -pi/4, pi/4) (zero gradient outside, as the
    original's hard clip).

    Args:
      activations: float32 [B, E, 1 + 3 + R].
      latents: float32 [B, E, L] or None. Latents take no activation.
      radius_type: 'iso', 'aa' or 'cov'.
      symmetry_count: number of left-right symmetric elements (`lyr`).
      constant_mode: 'a' (abs, all presets) or 's' (sigmoid).

    Raises:
      ValueError: if the activation width does not match the radius type, or constant_mode is unknown.
    """
    r = radius_dim(radius_type)
    if activations.shape[-1] != 4 + r:
      raise ValueError(f'activations must be [B, E, {4 + r}] for radius type {radius_type!r}, '
                       f'got {activations.shape}')
    raw_constant, raw_center, raw_radius = tf.split(activations, [1, 3, r], axis=-1)
    if constant_mode == 'a':
      constants = -tf.abs(raw_constant)
    elif constant_mode == 's':
      constants = tf.sigmoid(raw_constant) - 1.0
    else:
      raise ValueError(f"Unknown constant mode {constant_mode!r}; expected 'a' or 's'")
    sigma = MAX_RADIUS * tf.sigmoid(raw_radius[..., :3])
    variances = sigma * sigma
    if radius_type == 'cov':
      angles = tf.clip_by_value(raw_radius[..., 3:], -MAX_EULER_ANGLE, MAX_EULER_ANGLE)
      radii = tf.concat([variances, angles], axis=-1)
    else:
      radii = variances
    return cls(constants, raw_center / 2.0, radii, latents, radius_type=radius_type,
               symmetry_count=symmetry_count)

  @classmethod
  def from_packed(cls, packed, *, radius_type, symmetry_count):
    """Splits an already packed vector [B, E, D] (not a network activation); D > 4 + R means latents follow."""
    packed = tf.convert_to_tensor(packed, dtype=tf.float32)
    r = radius_dim(radius_type)
    latent_size = packed.shape[-1] - 4 - r
    if latent_size < 0:
      raise ValueError(f'packed vector of width {packed.shape[-1]} is too short for radius type '
                       f'{radius_type!r} (needs at least {4 + r})')
    parts = tf.split(packed, [1, 3, r, latent_size], axis=-1)
    return cls(parts[0], parts[1], parts[2], parts[3] if latent_size else None,
               radius_type=radius_type, symmetry_count=symmetry_count)

  def packed(self):
    """The packed vector [B, E, 1 + 3 + R (+ L)]."""
    parts = [self.constants, self.centers, self.radii]
    if self.latents is not None:
      parts.append(self.latents)
    return tf.concat(parts, axis=-1)

  # ---- shapes ----

  @property
  def element_count(self):
    """E, the number of real shape elements."""
    return self.constants.shape[1]

  @property
  def effective_element_count(self):
    """E' = E + symmetry_count."""
    return self.element_count + self.symmetry_count

  def tile_for_symmetry(self, tensor):
    """Appends the mirror copies: [B, E, ...] -> [B, E', ...] (copies of elements 0..symmetry_count-1)."""
    if not self.symmetry_count:
      return tensor
    return tf.concat([tensor, tensor[:, :self.symmetry_count]], axis=1)

  # ---- geometry ----

  def world2local(self):
    """World-to-local frames of the E real elements, [B, E, 4, 4] (reference §4.5)."""
    return world2local_matrices(self.centers, self.radii, self.radius_type)

  def tiled_world2local(self):
    """Frames of all E' effective elements, [B, E', 4, 4]; a mirror copy maps x by W2L_i @ diag(1, 1, -1, 1)."""
    w2l = self.world2local()
    if not self.symmetry_count:
      return w2l
    mirrored = w2l[:, :self.symmetry_count] * tf.constant([1.0, 1.0, -1.0, 1.0])
    return tf.concat([w2l, mirrored], axis=1)

  def _effective_diffs(self, points, dtype=tf.float32):
    """Sample offsets x_i - mu_i for every effective element: [B, N, 3] -> [B, E', N, 3].

    The float32 points (reflected for the mirror copies) and centers are cast to `dtype` before subtracting.
    """
    points = tf.convert_to_tensor(points, dtype=tf.float32)
    centers = tf.cast(self.centers, dtype)
    diffs = tf.cast(points, dtype)[:, tf.newaxis] - centers[:, :, tf.newaxis]
    if not self.symmetry_count:
      return diffs
    mirrored = tf.cast(reflect_z(points), dtype)[:, tf.newaxis]
    mirrored = mirrored - centers[:, :self.symmetry_count, tf.newaxis]
    return tf.concat([diffs, mirrored], axis=1)

  def rbf_influence(self, points):
    """RBF weight of every effective element at the samples.

    Args:
      points: float32 [B, N, 3], gaps frame.

    Returns:
      float32 [B, E', N].
    """
    return rbf_weights(self._effective_diffs(points), self.tile_for_symmetry(self.radii), self.radius_type)

  def rbf_active(self, points, rbf_threshold):
    """Whether each effective element's RBF weight exceeds `rbf_threshold` (the ldif2mesh kernel's test).

    Decided as q < -2 ln(rbf_threshold) with q = -2 ln w computed in float64 (`rbf_quadratic_forms64`) from
    the float32 parameters and samples. The original decided `w > 1e-4` in float32 on the GPU; here the
    decision is made in float64 so that every path agrees (float32 rounding, which differs between TF, C++ and
    CUDA, cannot flip it). No gradient flows through the result.

    Args:
      points: float32 [B, N, 3], gaps frame.
      rbf_threshold: the weight threshold (1e-4 in the kernel), > 0.

    Returns:
      bool [B, E', N].
    """
    cutoff = -2.0 * math.log(rbf_threshold)
    q = rbf_quadratic_forms64(self._effective_diffs(tf.stop_gradient(points), tf.float64),
                              tf.stop_gradient(self.tile_for_symmetry(self.radii)), self.radius_type)
    return q < cutoff

  def local_points(self, points):
    """Samples in every effective element's local frame: [B, N, 3] -> [B, E', N, 3] (mirror copies see x~)."""
    points = tf.convert_to_tensor(points, dtype=tf.float32)
    w2l = self.tiled_world2local()
    return tf.matmul(points[:, tf.newaxis], w2l[..., :3, :3], transpose_b=True) + w2l[..., tf.newaxis, :3, 3]

  def implicit_values(self, points, decoder=None, rbf_threshold=None):
    """The function value F at the samples (reference §4.6), raw (no class transfer).

    Args:
      points: float32 [B, N, 3], gaps frame.
      decoder: for LDIF (latents present): callable(latents [B, E', L], local_points [B, E', N, 3]) ->
        [B, E', N, 1], e.g. `occnet_decoder_fn(weights)` or the Keras OccNet layer. Ignored for SIFs.
      rbf_threshold: None (the TF training/inference semantics: every element counts), or the ldif2mesh CUDA
        kernel's rule (reference §7.4, threshold 1e-4): for LDIFs only elements with weight > threshold count; for
        SIFs the real elements count only where any of them exceeds the threshold, and likewise the mirror copies.
        `weight > threshold` is decided in float64 (`rbf_active`), as the op does; values stay float32.

    Returns:
      float32 [B, N, 1].

    Raises:
      ValueError: if the function has latents and no decoder is given.
    """
    weights = self.rbf_influence(points)  # [B, E', N]
    constants = self.tile_for_symmetry(self.constants)  # [B, E', 1]
    terms = constants * weights
    if self.latents is not None:
      if decoder is None:
        raise ValueError('An LDIF (with latents) needs a decoder to evaluate its function value')
      residuals = decoder(self.tile_for_symmetry(self.latents), self.local_points(points))
      terms = terms * (1.0 + residuals[..., 0])
    if rbf_threshold is not None:
      active = self.rbf_active(points, rbf_threshold)
      if self.latents is None:
        e = self.element_count
        real_any = tf.reduce_any(active[:, :e], axis=1, keepdims=True)
        mirror_any = tf.reduce_any(active[:, e:], axis=1, keepdims=True)
        active = tf.concat([tf.broadcast_to(real_any, tf.shape(active[:, :e])),
                            tf.broadcast_to(mirror_any, tf.shape(active[:, e:]))], axis=1)
      terms = tf.where(active, terms, tf.zeros_like(terms))
    return tf.reduce_sum(terms, axis=1)[..., tf.newaxis]

  def class_at_samples(self, points, decoder=None, level_set=LEVEL_SET, hardness=CLASS_HARDNESS):
    """Soft class sigmoid(hardness * (F - level_set)) at the samples, [B, N, 1]; > 0.5 is outside."""
    return class_transfer(self.implicit_values(points, decoder), level_set, hardness)

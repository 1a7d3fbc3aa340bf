"""The structured implicit function in plain numpy: the twin of structured_implicit_function.py.

For tools that must not import TensorFlow (file conversion, quick inspection), and as the reference the TF code is
tested against. Same formulas, shapes and conventions as `ldif.representation.structured_implicit_function`
(reference §4, §5.6); computed in float64 unless the inputs force otherwise.
"""

import dataclasses
import math

import numpy as np

LEVEL_SET = -0.07
CLASS_HARDNESS = 100.0
MAX_RADIUS = 0.15
MAX_EULER_ANGLE = np.pi / 4.0
RADIUS_DIMS = {'iso': 1, 'aa': 3, 'cov': 6}
COV_EPS = 1e-8
ISO_MIN_VARIANCE = 1e-4
LOCAL_SCALE_EPS = 1e-8
OCCNET_VARIANCE_EPS = 1e-5


def _radius_dim(radius_type):
  if radius_type not in RADIUS_DIMS:
    raise ValueError(f"Unknown radius type {radius_type!r}; expected 'iso', 'aa' or 'cov'")
  return RADIUS_DIMS[radius_type]


def _sigmoid(x):
  return 0.5 * (1.0 + np.tanh(0.5 * x))


def rotation_matrices(angles):
  """R = Rz(yaw) @ Ry(pitch) @ Rx(roll) from angles [..., 3] (roll, pitch, yaw); returns [..., 3, 3]."""
  angles = np.asarray(angles, dtype=np.float64)
  cx, cy, cz = np.moveaxis(np.cos(angles), -1, 0)
  sx, sy, sz = np.moveaxis(np.sin(angles), -1, 0)
  rot = np.stack([
      np.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], axis=-1),
      np.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], axis=-1),
      np.stack([-sy, cy * sx, cy * cx], axis=-1)], axis=-2)
  return rot


def rbf_weights(diffs, radii, radius_type):
  """RBF weights: diffs [B, E, N, 3], radii [B, E, R] -> [B, E, N] (reference §4.3)."""
  diffs = np.asarray(diffs, dtype=np.float64)
  radii = np.asarray(radii, dtype=np.float64)
  if radius_type == 'cov':
    rot = rotation_matrices(radii[..., 3:6])
    inv_cov = np.einsum('beij,bej,bekj->beik', rot, 1.0 / (radii[..., :3] + COV_EPS), rot)
    dist = np.einsum('beni,beij,benj->ben', diffs, inv_cov, diffs)
    return np.exp(-0.5 * dist)
  if radius_type == 'aa':
    scale = np.minimum(-2.0 * radii[:, :, None, :], -COV_EPS)
    return np.exp(np.sum(diffs**2 / scale, axis=-1))
  if radius_type == 'iso':
    return np.exp(-0.5 * np.sum(diffs**2, axis=-1) / np.maximum(ISO_MIN_VARIANCE, radii))
  raise ValueError(f"Unknown radius type {radius_type!r}")


def rbf_quadratic_forms64(diffs, radii, radius_type):
  """q = -2 ln w in float64 (twin of the TF `rbf_quadratic_forms64`): diffs [B, E, N, 3], radii [B, E, R] ->
  [B, E, N]. The kernel's `w > threshold` is decided as q < -2 ln(threshold) on this q (the original decided
  it in float32 on the GPU; here it is decided in float64 so that every path agrees)."""
  diffs = np.asarray(diffs, dtype=np.float64)
  radii = np.asarray(radii, dtype=np.float64)
  if radius_type == 'cov':
    rot = rotation_matrices(radii[..., 3:6])
    inv_cov = np.einsum('beij,bej,bekj->beik', rot, 1.0 / (radii[..., :3] + COV_EPS), rot)
    return np.einsum('beni,beij,benj->ben', diffs, inv_cov, diffs)
  if radius_type == 'aa':
    scale = np.minimum(-2.0 * radii[:, :, None, :], -COV_EPS)
    return -2.0 * np.sum(diffs**2 / scale, axis=-1)
  if radius_type == 'iso':
    return np.sum(diffs**2, axis=-1) / np.maximum(ISO_MIN_VARIANCE, radii)
  raise ValueError(f"Unknown radius type {radius_type!r}")


def world2local_matrices(centers, radii, radius_type):
  """[B, E, 4, 4] frames x_local = S R^T (x - mu) (reference §4.5)."""
  centers = np.asarray(centers, dtype=np.float64)
  radii = np.asarray(radii, dtype=np.float64)
  batch_shape = centers.shape[:-1]
  if radius_type == 'cov':
    linear = np.swapaxes(rotation_matrices(radii[..., 3:6]), -1, -2)
  else:
    _radius_dim(radius_type)
    linear = np.broadcast_to(np.eye(3), batch_shape + (3, 3)).copy()
  if radius_type in ('aa', 'cov'):
    linear = linear * (1.0 / (np.sqrt(radii[..., :3] + COV_EPS) + LOCAL_SCALE_EPS))[..., :, None]
  out = np.zeros(batch_shape + (4, 4))
  out[..., :3, :3] = linear
  out[..., :3, 3] = -np.einsum('...ij,...j->...i', linear, centers)
  out[..., 3, 3] = 1.0
  return out


def occnet_decode(weights, latents, local_points):
  """The OccNet decoder in inference mode: latents [..., L], local_points [..., N, 3] -> [..., N, 1]."""
  w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
  z = np.asarray(latents, dtype=np.float64)[..., None, :]

  def dense(x, name):
    return x @ w[f'{name}/kernel'] + w[f'{name}/bias']

  def cbn(h, name):
    beta = dense(z, f'{name}/beta_fc')
    gamma = dense(z, f'{name}/gamma_fc')
    norm = (h - w[f'{name}/running_mean']) / np.sqrt(w[f'{name}/running_variance'] + OCCNET_VARIANCE_EPS)
    return gamma * norm + beta

  h0 = dense(np.asarray(local_points, dtype=np.float64), 'sample_resize_fc')
  a = cbn(h0, 'cbn_1')
  h = dense(np.maximum(a, 0.0), 'fc_1')
  h = dense(np.maximum(cbn(h, 'cbn_2'), 0.0), 'fc_2')
  return dense(cbn(a + h, 'final_cbn'), 'final_activation')


@dataclasses.dataclass(frozen=True)
class StructuredImplicitNp:
  """Numpy twin of `StructuredImplicit`: constants [B, E, 1], centers [B, E, 3], radii [B, E, R],
  latents [B, E, L] or None; gaps frame."""
  constants: np.ndarray
  centers: np.ndarray
  radii: np.ndarray
  latents: np.ndarray | None = None
  radius_type: str = 'cov'
  symmetry_count: int = 0

  @classmethod
  def from_activation(cls, activations, latents=None, *, radius_type, symmetry_count, constant_mode='a'):
    """Twin of `StructuredImplicit.from_activation`: activations [B, E, 4 + R]."""
    a = np.asarray(activations, dtype=np.float64)
    r = _radius_dim(radius_type)
    if a.shape[-1] != 4 + r:
      raise ValueError(f'activations must be [B, E, {4 + r}], got {a.shape}')
    if constant_mode == 'a':
      constants = -np.abs(a[..., :1])
    elif constant_mode == 's':
      constants = _sigmoid(a[..., :1]) - 1.0
    else:
      raise ValueError(f'Unknown constant mode {constant_mode!r}')
    variances = (MAX_RADIUS * _sigmoid(a[..., 4:4 + min(r, 3)]))**2
    if radius_type == 'cov':
      radii = np.concatenate([variances, np.clip(a[..., 7:10], -MAX_EULER_ANGLE, MAX_EULER_ANGLE)], axis=-1)
    else:
      radii = variances
    return cls(constants, a[..., 1:4] / 2.0, radii, None if latents is None else np.asarray(latents, np.float64),
               radius_type=radius_type, symmetry_count=symmetry_count)

  @classmethod
  def from_packed(cls, packed, *, radius_type, symmetry_count):
    """Twin of `StructuredImplicit.from_packed`: packed [B, E, 4 + R (+ L)]."""
    p = np.asarray(packed, dtype=np.float64)
    r = _radius_dim(radius_type)
    if p.shape[-1] < 4 + r:
      raise ValueError(f'packed vector of width {p.shape[-1]} is too short for radius type {radius_type!r}')
    latents = p[..., 4 + r:] if p.shape[-1] > 4 + r else None
    return cls(p[..., :1], p[..., 1:4], p[..., 4:4 + r], latents, radius_type=radius_type,
               symmetry_count=symmetry_count)

  def packed(self):
    parts = [self.constants, self.centers, self.radii] + ([self.latents] if self.latents is not None else [])
    return np.concatenate(parts, axis=-1)

  @property
  def element_count(self):
    return self.constants.shape[1]

  @property
  def effective_element_count(self):
    return self.element_count + self.symmetry_count

  def tile_for_symmetry(self, array):
    """[B, E, ...] -> [B, E', ...]."""
    if not self.symmetry_count:
      return array
    return np.concatenate([array, array[:, :self.symmetry_count]], axis=1)

  def world2local(self):
    return world2local_matrices(self.centers, self.radii, self.radius_type)

  def tiled_world2local(self):
    w2l = self.world2local()
    if not self.symmetry_count:
      return w2l
    return np.concatenate([w2l, w2l[:, :self.symmetry_count] * np.array([1.0, 1.0, -1.0, 1.0])], axis=1)

  def _effective_points(self, points):
    """[B, N, 3] -> [B, E', N, 3] (reflected for mirror copies)."""
    p = np.asarray(points, dtype=np.float64)
    tiled = np.broadcast_to(p[:, None], (p.shape[0], self.element_count) + p.shape[1:])
    if not self.symmetry_count:
      return tiled
    mirrored = np.broadcast_to((p * [1.0, 1.0, -1.0])[:, None],
                               (p.shape[0], self.symmetry_count) + p.shape[1:])
    return np.concatenate([tiled, mirrored], axis=1)

  def rbf_influence(self, points):
    """[B, N, 3] -> [B, E', N]."""
    diffs = self._effective_points(points) - self.tile_for_symmetry(self.centers)[:, :, None]
    return rbf_weights(diffs, self.tile_for_symmetry(self.radii), self.radius_type)

  def rbf_active(self, points, rbf_threshold):
    """bool [B, E', N]: weight > rbf_threshold, decided as q < -2 ln(rbf_threshold) with the float64
    `rbf_quadratic_forms64` (twin of `StructuredImplicit.rbf_active`, the rule of the op's kernels)."""
    diffs = self._effective_points(points) - self.tile_for_symmetry(self.centers)[:, :, None]
    q = rbf_quadratic_forms64(diffs, self.tile_for_symmetry(self.radii), self.radius_type)
    return q < -2.0 * math.log(rbf_threshold)

  def local_points(self, points):
    """[B, N, 3] -> [B, E', N, 3]."""
    w2l = self.tiled_world2local()
    p = np.asarray(points, dtype=np.float64)
    return np.einsum('beij,bnj->beni', w2l[..., :3, :3], p) + w2l[:, :, None, :3, 3]

  def implicit_values(self, points, occnet_weights=None, rbf_threshold=None):
    """F at the samples: [B, N, 3] -> [B, N, 1]; LDIFs need `occnet_weights` (the pinned weights dict).

    rbf_threshold: None (every element counts) or the ldif2mesh kernel's rule (see the TF twin), with
    `weight > threshold` decided by `rbf_active`.
    """
    weights = self.rbf_influence(points)
    terms = self.tile_for_symmetry(self.constants) * weights
    if self.latents is not None:
      if occnet_weights is None:
        raise ValueError('An LDIF (with latents) needs OccNet weights to evaluate its function value')
      residuals = occnet_decode(occnet_weights, self.tile_for_symmetry(self.latents), self.local_points(points))
      terms = terms * (1.0 + residuals[..., 0])
    if rbf_threshold is not None:
      active = self.rbf_active(points, rbf_threshold)
      if self.latents is None:
        e = self.element_count
        active = np.concatenate([
            np.broadcast_to(active[:, :e].any(axis=1, keepdims=True), active[:, :e].shape),
            np.broadcast_to(active[:, e:].any(axis=1, keepdims=True), active[:, e:].shape)], axis=1)
      terms = np.where(active, terms, 0.0)
    return terms.sum(axis=1)[..., None]

  def class_at_samples(self, points, occnet_weights=None, level_set=LEVEL_SET, hardness=CLASS_HARDNESS):
    return _sigmoid(hardness * (self.implicit_values(points, occnet_weights) - level_set))

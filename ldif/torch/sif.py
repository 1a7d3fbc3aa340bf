"""Standalone PyTorch loader and evaluator for SIF and LDIF shapes (`.txt` SIF v1 files, `.occnet` decoders).

Port of the original's `ldif/torch/sif.py` + `sif_evaluation.py` (reference §8), keeping its public API
(`Sif.from_file`, `Sif.from_flat_tensor`, `to_flat_tensor`, `rbf_influence`, `world2local`, `constants`,
`eval`)
and extending it: any device (`device=` argument, CPU by default; the original hard-coded CUDA), LDIFs (latent
codes + the OccNet decoder from an `.occnet` file, reference §5.6/§7.5), the soft class, and the ldif2mesh
kernel's 1e-4 RBF rule as an option. Everything is differentiable with respect to the parameters and samples.

This file imports only torch and numpy and works when copied out of the project on its own.

All positions are in the gaps frame (the normalized frame the shapes were fit in). F(x) is the raw function
value: F < -0.07 is inside.

    shape = Sif.from_file('shape.txt', occnet_path='decoder.occnet', device='cuda')
    values = shape.eval(torch.rand(1000, 3, device='cuda') - 0.5)        # [1000]
"""

import math
import struct

import numpy as np
import torch

LEVEL_SET = -0.07
CLASS_HARDNESS = 100.0
KERNEL_RBF_THRESHOLD = 1e-4
_DIV_EPS = 1e-8
_CBN_EPS = 1e-5
_CBN_NAMES = ('cbn_1', 'cbn_2', 'final_cbn')


def _fail(path, problem):
  raise ValueError(f'{path}: {problem}')


def _load_v1_txt(path):
  """Parses a SIF v1 `.txt` file (reference §4.7).

  Returns:
    (constants [E], centers [E, 3], radii [E, 3] (variances: sigma squared on load), rotations [E, 3],
    symmetry_count int, features [E, L] or None), float32 numpy arrays.

  Raises:
    ValueError naming the file: bad header, version != 0, truncated file, wrong token count (11 + L), NaN/inf,
    a flag other than 0/1, a flagged row after an unflagged one.
  """
  try:
    with open(path, 'r', encoding='ascii') as f:
      lines = [line.strip() for line in f.read().splitlines()]
  except (OSError, UnicodeDecodeError) as e:
    _fail(path, f'cannot read SIF file ({e})')
  while lines and not lines[-1]:
    lines.pop()
  if not lines or lines[0] != 'SIF':
    _fail(path, f'bad header {lines[0][:40] if lines else ""!r}: expected "SIF"')
  try:
    shape_count, version, implicit_len = (int(x) for x in lines[1].split())
  except (IndexError, ValueError):
    _fail(path, 'bad or missing count line "<E> 0 <L>"')
  if version != 0:
    _fail(path, f'unsupported version {version}; only v1 files (version id 0) exist')
  if shape_count < 0 or implicit_len < 0:
    _fail(path, 'negative counts')
  rows = lines[2:]
  if len(rows) != shape_count:
    _fail(path, f'the header announces {shape_count} elements but there are {len(rows)} rows'
          + (' (truncated file)' if len(rows) < shape_count else ''))
  explicit = np.zeros([shape_count, 10], np.float32)
  features = np.zeros([shape_count, implicit_len], np.float32)
  symmetry_count = 0
  last_was_symmetric = True
  for i, row in enumerate(rows):
    tokens = row.split()
    if len(tokens) != 11 + implicit_len:
      _fail(path, f'row {i} has {len(tokens)} values; expected {11 + implicit_len}')
    try:
      explicit[i] = [float(x) for x in tokens[:10]]
      features[i] = [float(x) for x in tokens[11:]]
    except ValueError as e:
      _fail(path, f'row {i}: {e}')
    if tokens[10] not in ('0', '1'):
      _fail(path, f'row {i}: symmetry flag {tokens[10]!r} is not 0 or 1')
    is_symmetric = tokens[10] == '1'
    if is_symmetric:
      if not last_was_symmetric:
        _fail(path, f'row {i} is symmetric but follows an asymmetric element')
      symmetry_count += 1
    last_was_symmetric = is_symmetric
  if not (np.all(np.isfinite(explicit)) and np.all(np.isfinite(features))):
    _fail(path, 'contains NaN or infinite values')
  radii = explicit[:, 4:7] * explicit[:, 4:7]  # the file stores sigma
  return (explicit[:, 0].copy(), explicit[:, 1:4].copy(), radii, explicit[:, 7:10].copy(), symmetry_count,
          features if implicit_len > 0 else None)


def _occnet_layout(width, latent_size):
  layout = [('sample_resize_fc/kernel', (3, width)), ('sample_resize_fc/bias', (width,))]
  for cbn, fc in (('cbn_1', 'fc_1'), ('cbn_2', 'fc_2'), ('final_cbn', None)):
    layout += [(f'{cbn}/beta_fc/kernel', (latent_size, width)), (f'{cbn}/beta_fc/bias', (width,)),
               (f'{cbn}/gamma_fc/kernel', (latent_size, width)), (f'{cbn}/gamma_fc/bias', (width,)),
               (f'{cbn}/running_mean', (1,)), (f'{cbn}/running_variance', (1,))]
    if fc:
      layout += [(f'{fc}/kernel', (width, width)), (f'{fc}/bias', (width,))]
  layout += [('final_activation/kernel', (width, 1)), ('final_activation/bias', (1,))]
  return layout


def _load_occnet(path, latent_size):
  """Reads an `.occnet` file (reference §7.5) into a dict of float32 numpy arrays."""
  try:
    with open(path, 'rb') as f:
      raw = f.read()
  except OSError as e:
    _fail(path, f'cannot read decoder file ({e})')
  if len(raw) < 8:
    _fail(path, 'truncated .occnet header')
  layers, width = struct.unpack('<ii', raw[:8])
  if layers != 1 or width <= 0:
    _fail(path, f'bad .occnet header (layers {layers}, width {width})')
  layout = _occnet_layout(width, latent_size)
  count = sum(int(np.prod(s)) for _, s in layout)
  if len(raw) != 8 + 4 * count:
    _fail(path, f'size {len(raw)} bytes does not match width {width} and latent size {latent_size} '
          f'(expected {8 + 4 * count})')
  flat = np.frombuffer(raw, '<f4', count, 8)
  weights, offset = {}, 0
  for key, shape in layout:
    n = int(np.prod(shape))
    weights[key] = flat[offset:offset + n].reshape(shape).astype(np.float32)
    offset += n
  return weights


def _tile_for_symgroups(elements, symmetry_count):
  """[bs, E, ...] -> [bs, E + symmetry_count, ...]: appends copies of the first symmetry_count elements."""
  if symmetry_count:
    elements = torch.cat([elements, elements[:, :symmetry_count]], dim=1)
  return elements


def reflect_z(samples):
  """(x, y, z) -> (x, y, -z) for samples [..., 3]."""
  return torch.cat([samples[..., :-1], -samples[..., -1:]], dim=-1)


def roll_pitch_yaw_to_rotation_matrices(roll_pitch_yaw):
  """[..., 3] (roll, pitch, yaw) -> [..., 3, 3], R = Rz(yaw) Ry(pitch) Rx(roll) (reference §4.3)."""
  c = torch.cos(roll_pitch_yaw)
  s = torch.sin(roll_pitch_yaw)
  cx, cy, cz = torch.unbind(c, dim=-1)
  sx, sy, sz = torch.unbind(s, dim=-1)
  rows = [torch.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], dim=-1),
          torch.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], dim=-1),
          torch.stack([-sy, cy * sx, cy * cx], dim=-1)]
  return torch.stack(rows, dim=-2)


class OccNetDecoder:
  """The LDIF OccNet decoder in inference mode (reference §5.6), as plain differentiable tensor maths.

  Attributes:
    weights: dict name -> tensor with the `.occnet` keys (`sample_resize_fc/kernel [3, W]`, ...).
    width: W; latent_size: L.
  """

  def __init__(self, weights, device=None, dtype=torch.float32):
    self.weights = {k: torch.as_tensor(np.asarray(v), dtype=dtype, device=device) for k, v in weights.items()}
    self.width = int(self.weights['sample_resize_fc/kernel'].shape[1])
    self.latent_size = int(self.weights['cbn_1/beta_fc/kernel'].shape[0])

  @classmethod
  def from_file(cls, path, latent_size, device=None, dtype=torch.float32):
    """Loads an `.occnet` file for latent size L (the original's files have L = W = 32)."""
    return cls(_load_occnet(path, latent_size), device=device, dtype=dtype)

  def to(self, device):
    return OccNetDecoder({k: v.to(device) for k, v in self.weights.items()}, device=device,
                         dtype=next(iter(self.weights.values())).dtype)

  def __call__(self, latents, local_points):
    """latents [..., L], local_points [..., N, 3] -> decoder output O [..., N]."""
    w = self.weights
    z = latents.unsqueeze(-2)  # [..., 1, L]

    def dense(x, name):
      return torch.matmul(x, w[f'{name}/kernel']) + w[f'{name}/bias']

    def cbn(h, name):
      beta = dense(z, f'{name}/beta_fc')
      gamma = dense(z, f'{name}/gamma_fc')
      mean = w[f'{name}/running_mean']
      variance = w[f'{name}/running_variance']
      return gamma * ((h - mean) / torch.sqrt(variance + _CBN_EPS)) + beta

    a = cbn(dense(local_points, 'sample_resize_fc'), 'cbn_1')
    h = dense(torch.relu(a), 'fc_1')
    h = dense(torch.relu(cbn(h, 'cbn_2')), 'fc_2')
    return dense(cbn(a + h, 'final_cbn'), 'final_activation')[..., 0]


class Sif(object):
  """A batch of SIFs or LDIFs: load from `.txt` files, pack into tensors, evaluate (differentiably).

  Tensors (float32 unless built otherwise) on `device`: constants [bs, E, 1], centers [bs, E, 3], radii
  [bs, E, 3] (variances sigma^2), rotations [bs, E, 3] (roll, pitch, yaw), latents [bs, E, L] or None;
  symmetry_count (int): the first symmetry_count elements get mirror copies evaluated at (x, y, -z).
  """

  def __init__(self, constants, centers, radii, rotations, symmetry_count, latents=None, decoder=None):
    """The real initializer (from tensors). Prefer `from_file` / `from_flat_tensor`."""
    named = (('constants', constants), ('centers', centers), ('radii', radii), ('rotations', rotations))
    for name, t in named:
      if not torch.is_tensor(t):
        raise ValueError(f'Argument {name} is not a tensor, it is a {type(t)}')
    if isinstance(symmetry_count, bool) or not isinstance(symmetry_count, int):
      raise ValueError(f'symmetry_count is of type: {type(symmetry_count)}.')
    has_batch_dim = len(centers.shape) == 3
    if not has_batch_dim and len(centers.shape) != 2:
      raise ValueError(f'Unable to parse input tensor shape: {centers.shape}')
    bs = centers.shape[0] if has_batch_dim else 1
    element_count = int(centers.shape[-2])
    if not 0 <= symmetry_count <= element_count:
      raise ValueError(f'symmetry_count {symmetry_count} is outside [0, {element_count}]')
    self._constants = torch.reshape(constants, (bs, element_count, 1))
    self._centers = torch.reshape(centers, (bs, element_count, 3))
    self._radii = torch.reshape(radii, (bs, element_count, 3))
    self._rotations = torch.reshape(rotations, (bs, element_count, 3))
    self._latents = None
    if latents is not None and latents.shape[-1] > 0:
      self._latents = torch.reshape(latents, (bs, element_count, int(latents.shape[-1])))
      if decoder is None:
        raise ValueError('An LDIF (with latents) needs an OccNetDecoder')
      if decoder.latent_size != self._latents.shape[-1]:
        raise ValueError(f'decoder latent size {decoder.latent_size} does not match the latents '
                         f'({self._latents.shape[-1]})')
    self.decoder = decoder if self._latents is not None else None
    self.bs = bs
    self.element_count = element_count
    self.symmetry_count = symmetry_count

  # ---- construction ----

  @classmethod
  def from_file(cls, path, occnet_path=None, device=None, dtype=torch.float32):
    """Builds a SIF/LDIF from one `.txt` file, or a batch from a list of them.

    Args:
      path: a path, or a list of paths (all with the same element count, symmetry count and latent size).
      occnet_path: the `.occnet` decoder, required when the files have latents (LDIF).
      device: torch device (default CPU).
      dtype: float dtype.

    Returns:
      A Sif with a batch dimension of len(path) (1 for a single path, which also accepts a 1-element list).

    Raises:
      ValueError for malformed files, mismatched batches, or an LDIF without occnet_path.
    """
    paths = [path] if isinstance(path, (str, bytes)) or hasattr(path, '__fspath__') else list(path)
    if not paths:
      raise ValueError('from_file needs at least one path')
    loaded = [_load_v1_txt(p) for p in paths]
    first = loaded[0]
    for p, item in zip(paths[1:], loaded[1:]):
      if item[0].shape != first[0].shape:
        raise ValueError('Trying to make a batched SIF with mismatched element counts: '
                         f'{first[0].shape[0]} vs '
                         f'{item[0].shape[0]} ({p})')
      if item[4] != first[4]:
        raise ValueError(f'Trying to make a batched SIF with mismatched symmetry: {first[4]} vs {item[4]} '
                         f'({p})')
      if (item[5] is None) != (first[5] is None) or (item[5] is not None and item[5].shape != first[5].shape):
        raise ValueError(f'Trying to make a batched SIF with mismatched latent sizes ({p})')

    def stack(i):
      return torch.as_tensor(np.stack([item[i] for item in loaded]), dtype=dtype, device=device)

    latents = None
    decoder = None
    if first[5] is not None:
      if occnet_path is None:
        raise ValueError(f'{paths[0]}: is an LDIF (latent size {first[5].shape[1]}); pass occnet_path')
      latents = stack(5)
      decoder = OccNetDecoder.from_file(occnet_path, first[5].shape[1], device=device, dtype=dtype)
    return cls(stack(0), stack(1), stack(2), stack(3), first[4], latents, decoder)

  @classmethod
  def from_flat_tensor(cls, tensor, symmetry_count, decoder=None):
    """From a tensor [bs, E, 10 (+ L)] made by `to_flat_tensor` (c, center, variances, angles (, latents))."""
    if not torch.is_tensor(tensor):
      raise ValueError(f'Input is not a tensor, but a {type(tensor)}: {tensor}')
    if len(tensor.shape) != 3 or tensor.shape[-1] < 10:
      raise ValueError(f'Could not parse flat tensor due to shape: {tensor.shape}')
    latents = tensor[:, :, 10:] if tensor.shape[-1] > 10 else None
    return cls(tensor[:, :, :1], tensor[:, :, 1:4], tensor[:, :, 4:7], tensor[:, :, 7:10], symmetry_count,
               latents, decoder)

  def to_flat_tensor(self):
    """([bs, E, 10 (+ L)] tensor, symmetry_count); batch with torch.cat, restore with `from_flat_tensor`."""
    parts = [self._constants, self._centers, self._radii, self._rotations]
    if self._latents is not None:
      parts.append(self._latents)
    return torch.cat(parts, dim=2), self.symmetry_count

  def to(self, device):
    """A copy on `device`."""
    decoder = self.decoder.to(device) if self.decoder is not None else None
    latents = self._latents.to(device) if self._latents is not None else None
    return Sif(self._constants.to(device), self._centers.to(device), self._radii.to(device),
               self._rotations.to(device), self.symmetry_count, latents, decoder)

  # ---- properties ----

  @property
  def device(self):
    return self._centers.device

  @property
  def latents(self):
    """[bs, E, L] or None."""
    return self._latents

  @property
  def effective_element_count(self):
    """E' = E + symmetry_count."""
    return self.element_count + self.symmetry_count

  def _unbatch(self, tensor):
    return tensor[0] if self.bs == 1 else tensor

  @property
  def constants(self):
    """[E'] or [bs, E']: constants including the mirror copies."""
    return self._unbatch(_tile_for_symgroups(self._constants, self.symmetry_count)[..., 0])

  @property
  def world2local(self):
    """[E', 4, 4] or [bs, E', 4, 4]: x_local = S R^T (x - mu), S = diag(1/(sqrt(v + 1e-8) + 1e-8)); mirror
    copies
    compose with diag(1, 1, -1, 1) (reference §4.5)."""
    rotation = roll_pitch_yaw_to_rotation_matrices(self._rotations)
    scale = 1.0 / (torch.sqrt(self._radii + _DIV_EPS) + _DIV_EPS)
    linear = scale.unsqueeze(-1) * rotation.transpose(-2, -1)
    translation = -torch.matmul(linear, self._centers.unsqueeze(-1))
    top = torch.cat([linear, translation], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    w2l = torch.cat([top, bottom], dim=-2)
    if self.symmetry_count:
      reflector = torch.diag(torch.tensor([1.0, 1.0, -1.0, 1.0], dtype=w2l.dtype, device=w2l.device))
      w2l = torch.cat([w2l, torch.matmul(w2l[:, :self.symmetry_count], reflector)], dim=1)
    return self._unbatch(w2l)

  # ---- evaluation ----

  def _batched_samples(self, samples):
    if len(samples.shape) == 2:
      samples = samples.unsqueeze(0).expand(self.bs, -1, -1)
    if len(samples.shape) != 3 or samples.shape[0] != self.bs or samples.shape[-1] != 3:
      raise ValueError(f'Samples must have shape [S, 3] or [bs={self.bs}, S, 3], got {tuple(samples.shape)}')
    return samples.to(dtype=self._centers.dtype)

  def _effective_samples(self, samples):
    """[bs, S, 3] -> [bs, E', S, 3]: x for the E elements, x~ for the mirror copies."""
    bs, s = samples.shape[:2]
    tiled = samples.unsqueeze(1).expand(bs, self.element_count, s, 3)
    if self.symmetry_count:
      mirrored = reflect_z(samples).unsqueeze(1).expand(bs, self.symmetry_count, s, 3)
      tiled = torch.cat([tiled, mirrored], dim=1)
    return tiled

  def _rbf_active(self, samples, rbf_threshold):
    """[bs, S, 3] -> bool [bs, E', S]: whether each RBF weight exceeds rbf_threshold.

    The ldif2mesh kernel's test `w > 1e-4`, decided as q < -2 ln(rbf_threshold) with q = d^T Sigma^-1 d
    computed in float64 from the (float32) parameters and samples. The original decided it in float32 on the
    GPU; here the decision is made in float64 so that every path (this file, the LDIF project's op and its
    TF/numpy evaluators) agrees. Not differentiable (a mask).
    """
    with torch.no_grad():
      f64 = torch.float64
      centers = _tile_for_symgroups(self._centers, self.symmetry_count).to(f64)
      radii = _tile_for_symgroups(self._radii, self.symmetry_count).to(f64)
      rotation = roll_pitch_yaw_to_rotation_matrices(
          _tile_for_symgroups(self._rotations, self.symmetry_count).to(f64))
      inv_cov = torch.matmul(rotation * (1.0 / (radii + _DIV_EPS)).unsqueeze(-2), rotation.transpose(-2, -1))
      diff = self._effective_samples(samples.detach()).to(f64) - centers.unsqueeze(-2)
      q = (torch.matmul(diff, inv_cov) * diff).sum(dim=-1)
      return q < -2.0 * math.log(rbf_threshold)

  def _rbf(self, samples):
    """[bs, S, 3] -> [bs, E', S] (reference §4.3, cov form)."""
    centers = _tile_for_symgroups(self._centers, self.symmetry_count)
    radii = _tile_for_symgroups(self._radii, self.symmetry_count)
    rotations = _tile_for_symgroups(self._rotations, self.symmetry_count)
    rotation = roll_pitch_yaw_to_rotation_matrices(rotations)
    inv_cov = torch.matmul(rotation * (1.0 / (radii + _DIV_EPS)).unsqueeze(-2), rotation.transpose(-2, -1))
    diff = self._effective_samples(samples) - centers.unsqueeze(-2)
    dist = torch.einsum('besi,beij,besj->bes', diff, inv_cov, diff)
    return torch.exp(-0.5 * dist)

  def rbf_influence(self, samples):
    """RBF weight of every effective element at the samples.

    Args:
      samples: [S, 3] or [bs, S, 3], gaps frame.

    Returns:
      [S, E'] (bs = 1, as the original) or [bs, S, E']: the first E columns are the elements, the rest the
      mirror copies (at x~).
    """
    if len(samples.shape) == 2 and self.bs != 1:
      raise ValueError('Samples must have a batch dimension if the SIF does. '
                       f'Input sample shape was {tuple(samples.shape)} and SIF bs is {self.bs}')
    weights = self._rbf(self._batched_samples(samples)).transpose(-2, -1)
    return weights[0] if self.bs == 1 else weights

  def local_points(self, samples):
    """[S, 3] or [bs, S, 3] -> [bs, E', S, 3]: samples in each effective element's local frame."""
    samples = self._batched_samples(samples)
    w2l = self.world2local
    if self.bs == 1:
      w2l = w2l.unsqueeze(0)
    return torch.matmul(samples.unsqueeze(1), w2l[..., :3, :3].transpose(-2, -1)) + w2l[..., None, :3, 3]

  def eval(self, samples, rbf_threshold=None):
    """The function value F at the samples (reference §4.6).

    Args:
      samples: [S, 3] (shared by the batch) or [bs, S, 3], gaps frame.
      rbf_threshold: None (every element counts: the TF/torch semantics), or the ldif2mesh kernel's rule with
        threshold 1e-4 (`KERNEL_RBF_THRESHOLD`): LDIF elements count where their weight exceeds it; SIF
        elements (and separately their mirror copies) count where any of them exceeds it. `weight >
        threshold` is decided in float64 (see `_rbf_active`); the values keep the Sif's dtype.

    Returns:
      [S] (bs = 1, as the original) or [bs, S].
    """
    samples = self._batched_samples(samples)
    weights = self._rbf(samples)  # [bs, E', S]
    constants = _tile_for_symgroups(self._constants, self.symmetry_count)  # [bs, E', 1]
    terms = constants * weights
    if self._latents is not None:
      latents = _tile_for_symgroups(self._latents, self.symmetry_count)
      terms = terms * (1.0 + self.decoder(latents, self.local_points(samples)))
    if rbf_threshold is not None:
      active = self._rbf_active(samples, rbf_threshold)
      if self._latents is None:
        e = self.element_count
        real = active[:, :e].any(dim=1, keepdim=True).expand(-1, e, -1)
        mirror = active[:, e:].any(dim=1, keepdim=True).expand(-1, self.symmetry_count, -1)
        active = torch.cat([real, mirror], dim=1)
      terms = torch.where(active, terms, torch.zeros_like(terms))
    values = terms.sum(dim=1)
    return values[0] if self.bs == 1 else values

  def class_at_samples(self, samples, level_set=LEVEL_SET, hardness=CLASS_HARDNESS):
    """Soft class sigmoid(hardness (F - level_set)) at the samples (> 0.5 is outside); shape as `eval`."""
    return torch.sigmoid(hardness * (self.eval(samples) - level_set))

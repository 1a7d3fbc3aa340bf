"""The training losses of LDIF / SIF / SIF++, one function per term the presets use.

Port of ldif/training/loss.py (reference section 6). Terms are selected by *substring* of the `loss` hparam,
as in the original: 'unsbbgi' (ldif, sif++) -> u, ns, gi, bb; 'unsec' (sif) -> u, ns, ec. The total is their
sum.

With C(x) = sigmoid(hdn * (F(x) - lset)) the predicted soft class (> 0.5 outside), y = 1[sdf > 0] the ground
truth class, omega(y) = 1 for outside samples and ucf for inside ones, c_be the centre of real element e.

| key | function                   | value                                                                 |
|-----|----------------------------|-----------------------------------------------------------------------|
| u   | `uniform_sample_loss`      | l2w * mean omega(y) (C - y)^2 over spc uniform samples per item       |
| ns  | `near_surface_sample_loss` | a2w * the same over spc near-surface samples (ucf applied too: quirk) |
| gi  | `grid_inside_loss`         | ig * mean (v + 1e-4)^2 + 1e-5, v = g(c) if g(c) > igt else 0, g the   |
|     |                            | coarse grid SDF interpolated trilinearly (1e-5 outside the grid)      |
| bb  | `fixed_bounding_box_loss`  | ibblw * mean over b, e, k of the squared distance of c outside +-0.7  |
| ec  | `element_center_loss`      | mean [cc * 1[c in GT box] * C(c)^2 + ibblw * mean_k box error of c],  |
|     |                            | the GT box spanning the inside uniform samples *and the origin*       |
|     |                            | (quirk, reference 10.6)                                               |

Every function takes the `StructuredImplicit` and the decoder callable (None for SIFs) where it evaluates F;
each evaluation with a training-mode decoder updates LDIF's OccNet CBN statistics, in the order u, ns, ec.
"""

import tensorflow as tf

# The original's loss_fun_dict order; only these terms are implemented (the presets use u, ns, ec, gi, bb).
SUPPORTED_TERMS = ('u', 'ns', 'ec', 'gi', 'bb')
ALL_ORIGINAL_TERMS = ('u', 'ns', 'ec', 'oc', 'm', 'gd', 'gs', 'gi', 'gf', 'bb', 'xv', 'xp', 'xw')

# Summary names of each term (`<split>-loss/<name>`), as the original's summarize_loss calls.
SUMMARY_NAMES = {
    'u': 'uniform_sample',
    'ns': 'near_surface_sample',
    'ec': 'ec_loss',
    'gi': 'lowres_grid_inside_loss',
    'bb': 'fixed_bounding_box_loss',
}

FIXED_BOX = (-0.7, 0.7)


def enabled_terms(hparams):
  """The loss keys the `loss` hparam selects (substring match), in the original's order.

  Raises:
    ValueError: a selected key has no implementation here, or lrf != 'g', or nothing is selected.
  """
  selected = [k for k in ALL_ORIGINAL_TERMS if hparams.loss_enabled(k)]
  unsupported = [k for k in selected if k not in SUPPORTED_TERMS]
  if unsupported:
    raise ValueError(
        f'loss {hparams.loss_terms!r} selects terms {unsupported} that this port does not implement '
        f'(supported: {list(SUPPORTED_TERMS)})')
  if hparams.loss_receptive_field != 'g':
    raise ValueError(
        f"lrf={hparams.loss_receptive_field!r}: only the global receptive field 'g' is supported")
  if not selected:
    raise ValueError(f'loss {hparams.loss_terms!r} selects no loss term')
  return selected


def _ground_truth_class(sdf):
  """Hard class transfer: 1.0 where sdf > 0 (outside), else 0.0."""
  return tf.cast(sdf > 0.0, tf.float32)


def sample_loss(hparams, sif, decoder, samples):
  """mean over b, n of omega(y) (C(x) - y)^2 (unweighted by l2w/a2w).

  Args:
    hparams: HParams (ucf, lset, hdn).
    sif: StructuredImplicit of the batch.
    decoder: OccNet decoder callable or None.
    samples: float32 [B, S, 4]: xyz (gaps frame) and the ground-truth SDF (only its sign is used).

  Returns:
    (loss scalar float32, outside fraction scalar float32: the mean of y).
  """
  points, sdf = samples[..., :3], samples[..., 3:4]
  gt_class = _ground_truth_class(sdf)
  predicted = sif.class_at_samples(points, decoder, level_set=hparams.level_set, hardness=hparams.hardness)
  is_outside = gt_class > 0.5
  weights = tf.where(is_outside, 1.0, hparams.inside_weight)
  loss = tf.reduce_mean(weights * tf.square(predicted - gt_class))
  return loss, tf.reduce_mean(tf.cast(is_outside, tf.float32))


def uniform_sample_loss(hparams, sif, decoder, uniform_samples):
  """'u': l2w * sample_loss on `uniform_samples` [B, S, 4]. Returns (loss, outside fraction)."""
  loss, outside = sample_loss(hparams, sif, decoder, uniform_samples)
  return hparams.uniform_sample_weight * loss, outside


def near_surface_sample_loss(hparams, sif, decoder, near_surface_samples):
  """'ns': a2w * sample_loss on `near_surface_samples` [B, S, 4] (ucf applied, as the original always did)."""
  loss, outside = sample_loss(hparams, sif, decoder, near_surface_samples)
  return hparams.near_surface_sample_weight * loss, outside


def interpolate_grid(grid, points, world2grid):
  """Trilinear interpolation of a coarse grid at points, as the original's interpolate_util.interpolate.

  g = world2grid @ [p, 1]; lo = floor(g), hi = ceil(g), alpha = clip(g - lo, 1e-5, 1 - 1e-5); a point is
  invalid when any lo < 0 or hi > size - 1, and then gets the value 1e-5 (and no gradient). Differentiable
  w.r.t. points inside the grid.

  Args:
    grid: float32 [B, Z, Y, X], indexed [z][y][x].
    points: float32 [B, N, 3], gaps frame.
    world2grid: float32 [B, 4, 4].

  Returns:
    (values float32 [B, N, 1], invalid bool [B, N, 1]).
  """
  grid = tf.convert_to_tensor(grid, tf.float32)
  g = tf.einsum('bij,bnj->bni', world2grid[:, :3, :3], points) + world2grid[:, tf.newaxis, :3, 3]
  lower = tf.floor(g)
  alpha = tf.clip_by_value(g - lower, 1e-5, 1.0 - 1e-5)
  lower_i = tf.cast(lower, tf.int32)
  upper_i = tf.cast(tf.math.ceil(g), tf.int32)
  sizes = tf.stack([tf.shape(grid)[3], tf.shape(grid)[2], tf.shape(grid)[1]]) - 1  # x, y, z maxima
  invalid = tf.logical_or(tf.reduce_any(lower_i < 0, axis=-1, keepdims=True),
                          tf.reduce_any(upper_i > sizes, axis=-1, keepdims=True))
  lower_i = tf.where(invalid, 0, lower_i)
  upper_i = tf.where(invalid, 0, upper_i)

  def corner(ix, iy, iz):
    return tf.gather_nd(grid, tf.stack([iz, iy, ix], axis=-1), batch_dims=1)

  lx, ly, lz = tf.unstack(lower_i, axis=-1)
  ux, uy, uz = tf.unstack(upper_i, axis=-1)
  ax, ay, az = tf.unstack(alpha, axis=-1)

  def lerp(a, b, t):
    return a * (1.0 - t) + b * t

  # Along z first, then y, then x (the original's order).
  c00 = lerp(corner(lx, ly, lz), corner(lx, ly, uz), az)
  c01 = lerp(corner(ux, ly, lz), corner(ux, ly, uz), az)
  c10 = lerp(corner(lx, uy, lz), corner(lx, uy, uz), az)
  c11 = lerp(corner(ux, uy, lz), corner(ux, uy, uz), az)
  c0 = lerp(c00, c10, ay)
  c1 = lerp(c01, c11, ay)
  values = lerp(c0, c1, ax)[..., tf.newaxis]
  return tf.where(invalid, 1e-5, values), invalid


def grid_inside_loss(hparams, sif, grid, world2grid):
  """'gi': element centres should lie within a voxel of the ground-truth inside.

  Args:
    hparams: HParams (ig, igt).
    sif: StructuredImplicit (its real element centres [B, E, 3]).
    grid: float32 [B, 32, 32, 32] coarse SDF; world2grid: float32 [B, 4, 4].

  Returns:
    scalar float32: ig * mean((v + 1e-4)^2) + 1e-5 with v = g(c) where g(c) > igt, else 0.
  """
  values, _ = interpolate_grid(grid, sif.centers, world2grid)
  values = tf.where(values > hparams.grid_inside_threshold, values, 0.0)
  return hparams.grid_inside_weight * tf.reduce_mean(tf.square(values + 1e-4)) + 1e-5


def box_constraint_error(points, lower, upper):
  """Per-coordinate squared distance outside [lower, upper]: max(lower - p, 0)^2 + max(p - upper, 0)^2."""
  below = tf.maximum(lower - points, 0.0)
  above = tf.maximum(points - upper, 0.0)
  return below * below + above * above


def fixed_bounding_box_loss(hparams, sif):
  """'bb': ibblw * mean over b, e, k of the box error of the real centres w.r.t. [-0.7, 0.7]^3 (wm = 'f').

  Returns:
    scalar float32.
  """
  if hparams.waymo_scaling:
    lower = tf.constant([-0.75, -0.075, -0.75])
    upper = tf.constant([0.75, 0.075, 0.75])
  else:
    lower, upper = FIXED_BOX
  return hparams.bounding_box_weight * tf.reduce_mean(box_constraint_error(sif.centers, lower, upper))


def sample_bounding_box(bounding_box_samples):
  """The 'ec' ground-truth box: per-axis min/max of the uniform samples after moving every *outside* sample
  (sdf >= 0) to the origin (the original's quirk: the box always contains the origin).

  Args:
    bounding_box_samples: float32 [B, 100000, 4].

  Returns:
    (lower [B, 1, 3], upper [B, 1, 3]) float32.
  """
  xyz = bounding_box_samples[..., :3]
  inside = bounding_box_samples[..., 3:4] < 0.0
  xyz = tf.where(inside, xyz, 0.0)
  return tf.reduce_min(xyz, axis=1, keepdims=True), tf.reduce_max(xyz, axis=1, keepdims=True)


def _nonzero_mean(t):
  count = tf.cast(tf.math.count_nonzero(t), tf.float32)
  return tf.reduce_sum(t) / tf.where(count == 0.0, 1e-8, count)


def element_center_loss(hparams, sif, decoder, bounding_box_samples):
  """'ec': element centres inside the ground-truth box, and inside the predicted surface (weight cc).

  Args:
    hparams: HParams (cc, ibblw, lset, hdn).
    sif: StructuredImplicit; decoder: OccNet callable or None.
    bounding_box_samples: float32 [B, 100000, 4], all uniform samples (xyz + sdf).

  Returns:
    dict: 'loss' scalar (the term), 'class_comp_mean' and 'outside_bb_comp_mean' (the original's extra
    summaries: means over the nonzero entries of each component).
  """
  centers = sif.centers
  class_at_centers = sif.class_at_samples(centers, decoder, level_set=hparams.level_set,
                                          hardness=hparams.hardness)
  lower, upper = sample_bounding_box(bounding_box_samples)
  box_error = tf.reduce_mean(box_constraint_error(centers, lower, upper), axis=-1, keepdims=True)  # [B, E, 1]
  inside_weight = hparams.center_inside_prediction_weight * tf.cast(box_error <= 0.0, tf.float32)
  class_loss = inside_weight * tf.square(class_at_centers)
  outside_loss = hparams.bounding_box_weight * box_error
  return {
      'loss': tf.reduce_mean(class_loss + outside_loss),
      'class_comp_mean': _nonzero_mean(class_loss),
      'outside_bb_comp_mean': _nonzero_mean(outside_loss),
  }


def compute_losses(hparams, sif, decoder, batch):
  """All enabled loss terms for one batch.

  Args:
    hparams: HParams.
    sif: StructuredImplicit predicted for the batch.
    decoder: OccNet decoder callable (training mode during training) or None.
    batch: preprocessed batch (ldif.datasets.preprocess): `uniform_samples` [B, S, 4], `near_surface_samples`
      [B, S, 4], and as needed `grid` [B, 32, 32, 32], `world2grid` [B, 4, 4], `bounding_box_samples`
      [B, 100000, 4].

  Returns:
    (total scalar float32, terms: dict summary name -> scalar (each enabled term), extras: dict of the other
    scalars the original summarized: 'uniform_sample-outside-frac', 'ns_sample-outside-frac',
    'ec_loss_class_comp_mean', 'ec_loss_outside_bb_comp_mean' when the matching terms are on).
  """
  terms, extras = {}, {}
  for key in enabled_terms(hparams):
    if key == 'u':
      terms[SUMMARY_NAMES[key]], extras['uniform_sample-outside-frac'] = uniform_sample_loss(
          hparams, sif, decoder, batch['uniform_samples'])
    elif key == 'ns':
      terms[SUMMARY_NAMES[key]], extras['ns_sample-outside-frac'] = near_surface_sample_loss(
          hparams, sif, decoder, batch['near_surface_samples'])
    elif key == 'ec':
      ec = element_center_loss(hparams, sif, decoder, batch['bounding_box_samples'])
      terms[SUMMARY_NAMES[key]] = ec['loss']
      extras['ec_loss_class_comp_mean'] = ec['class_comp_mean']
      extras['ec_loss_outside_bb_comp_mean'] = ec['outside_bb_comp_mean']
    elif key == 'gi':
      terms[SUMMARY_NAMES[key]] = grid_inside_loss(hparams, sif, batch['grid'], batch['world2grid'])
    elif key == 'bb':
      terms[SUMMARY_NAMES[key]] = fixed_bounding_box_loss(hparams, sif)
  total = tf.add_n(list(terms.values()))
  return total, terms, extras


def required_batch_keys(hparams):
  """The preprocessed-batch keys the enabled loss terms read."""
  keys = set()
  for key in enabled_terms(hparams):
    keys |= {
        'u': {'uniform_samples'},
        'ns': {'near_surface_samples'},
        'ec': {'bounding_box_samples'},
        'gi': {'grid', 'world2grid'},
        'bb': set()
    }[key]
  return keys

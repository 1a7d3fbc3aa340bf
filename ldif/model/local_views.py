"""Local point-cloud views of a shape for the per-element PointNet encoders (LDIF).

Port of ldif/util/geom_util.py `local_views_of_shape` as `model._global_local_forward` calls it
(reference section 5.5):

1. every surface point is mapped into every element's local frame with the homogeneous world-to-local matrix,
   x_l = W2L [x, 1];
2. its distance is the norm of the *homogeneous* local vector, d = sqrt(|x_l|^2 + 1) (the original takes the
   norm of the 4-vector whose last entry is 1; reproduced, so the effective radius is sqrt(4^2 - 1) = 3.87);
3. score = U[0, 1) if d < threshold (4.0) else -d, and the top-`local_point_count` scores are kept: a
   uniformly random subset of the points inside the radius, padded with the nearest outside points when fewer
   are inside;
4. normals are mapped with the inverse transpose, n_l = n @ L2W[:3, :3] (L2W = W2L^-1), then L2-normalized.

The selection is random; the original drew it from TF's global RNG, even at inference. Here the draw is a
stateless function of an explicit seed (`seed`, a [2] int tensor), so runs are reproducible. Gradients flow
from the local coordinates (and normals) of the selected points back into W2L, i.e. into the element
centres, radii and angles; the selection itself (an integer choice) has none.

Cost: the scores need every point in every frame ([B, E, P] distances), but the selected points are
transformed again from their gathered world coordinates, so that the backward pass works on [B, E, K, 3]
tensors instead of scattering into [B, E, P, 3] (P = 10000, K = 1024). The values equal those of gathering
the transformed points, up to float32 rounding.
"""

import tensorflow as tf

LOCAL_VIEW_THRESHOLD = 4.0


def local_views_of_shape(points, world2local, *, local_point_count, normals=None, seed=(0, 0),
                         threshold=LOCAL_VIEW_THRESHOLD):
  """Per-element local views of a surface point cloud.

  Args:
    points: float32 [B, P, 3] surface points, gaps frame.
    world2local: float32 [B, E, 4, 4] affine world-to-local matrices of the E real elements.
    local_point_count: K, the points per element (1024 in LDIF); K <= P.
    normals: float32 [B, P, 3] unit normals, gaps frame, or None.
    seed: [2] int stateless seed of the random selection.
    threshold: selection radius on the homogeneous local distance (4.0 in the original).

  Returns:
    (local_points float32 [B, E, K, 3], local_normals float32 [B, E, K, 3] or None), in element-local frames.

  Raises:
    ValueError: if K exceeds the number of points P (static shapes).
  """
  points = tf.convert_to_tensor(points, tf.float32)
  world2local = tf.convert_to_tensor(world2local, tf.float32)
  point_count = points.shape[1]
  if point_count is not None and local_point_count > point_count:
    raise ValueError(f'local_point_count {local_point_count} exceeds the {point_count} available points')
  linear = world2local[..., :3, :3]  # [B, E, 3, 3]
  translation = world2local[..., :3, 3]  # [B, E, 3]
  indices = _select(points, tf.stop_gradient(linear), tf.stop_gradient(translation), local_point_count, seed,
                    threshold)  # [B, E, K]
  # x_l[b, e, k] = linear[b, e] @ x[b, indices[b, e, k]] + translation[b, e]
  selected = tf.gather(points, indices, batch_dims=1)  # [B, E, K, 3]
  local_points = tf.matmul(selected, linear, transpose_b=True) + translation[:, :, tf.newaxis, :]
  local_normals = None
  if normals is not None:
    normals = tf.convert_to_tensor(normals, tf.float32)
    local2world = tf.linalg.inv(linear)  # the 3x3 block of inv(W2L) for an affine W2L
    selected = tf.gather(normals, indices, batch_dims=1)  # [B, E, K, 3]
    local_normals = tf.math.l2_normalize(tf.matmul(selected, local2world), axis=-1)
  return local_points, local_normals


def _select(points, linear, translation, count, seed, threshold):
  """Indices int32 [B, E, K] of the selected points (steps 1-3 of the module docstring); no gradient."""
  # x_l[b, e, p] = linear[b, e] @ x[b, p] + translation[b, e]
  all_local = tf.einsum('bpj,beij->bepi', points, linear) + translation[:, :, tf.newaxis, :]
  distances = tf.sqrt(tf.reduce_sum(tf.square(all_local), axis=-1) + 1.0)  # |[x_l, 1]|
  random_scores = tf.random.stateless_uniform(tf.shape(distances), seed=tf.cast(seed, tf.int64))
  scores = tf.where(distances < threshold, random_scores, -distances)
  return tf.math.top_k(scores, k=count, sorted=False).indices

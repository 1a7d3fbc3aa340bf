"""In-graph preprocessing of a raw batch into model inputs and loss samples (reference §2.8).

- Depth: the stored 224x224 dodecahedron images (thousandths) are resized to the network size (137x137 for
  all presets) with TF1 `resize_images(..., align_corners=True)` bilinear semantics -- the source coordinate
  of output index i is i * (224 - 1) / (137 - 1) -- and *then* divided by 1000 (gaps units).
  `tf.compat.v1.image.resize_bilinear(..., align_corners=True)` is that kernel; the tests compare it with a
  numpy reference.
- All 20 views, or one (`view_index`, the single-view SIF preset uses view 1).
- xyz images (observation samplings with 'xyz', e.g. the 'singleview-depth' preset's 'im1xyzpn'): each
  selected depth view, after the resize and the division by 1000, lifted to world space as the original's
  `geom_util.transform_depth_dodeca_to_xyz_dodeca` (per view `depth_image_to_xyz_image`) did: pixel (r, c)
  with depth d -> the camera point of reference section 2.2 (`camera_util.depth_image_to_cam_points`,
  xfov 0.5) -> `camera_util.dodeca_cam2world()[view]` applied as a point; 0 where d = 0 (background).
- Surface points and normals: the 10000 stored surface samples, split into xyz and normal.
- Loss samples: `sample_count` indices per batch element drawn uniformly *with replacement* from
  [0, N - 2] (the original passes maxval N - 1 as an exclusive bound, so the last sample is never used),
  independently for the uniform and near-surface sets.
- No augmentation or noise (the presets use none).

Port of ldif/datasets/shapenet.py (`ensure_shape_and_resize_if_needed`, `ShapeNetExample.depth_renders`,
`_subsample`, `_set_points_and_normals`) and ldif/datasets/preprocess.py with `da = 'f'`.
"""

import numpy as np
import tensorflow as tf

from ldif.datasets import schema
from ldif.util import camera_util


def resize_bilinear_align_corners(images, height, width):
  """Bilinear resize with TF1 align_corners=True semantics (corner pixels map to corner pixels).

  Args:
    images: float32 [N, H, W, C].
    height, width: output size h, w.

  Returns:
    float32 [N, h, w, C]; output (i, j) samples the input at (i * (H - 1) / (h - 1), j * (W - 1) / (w - 1)).
  """
  images = tf.convert_to_tensor(images, dtype=tf.float32)
  return tf.compat.v1.image.resize_bilinear(images, [int(height), int(width)], align_corners=True,
                                            half_pixel_centers=False)


def _stateless_seeds(seed):
  seed = tf.convert_to_tensor(seed)
  if seed.shape.rank == 0:
    seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
  seed = tf.cast(tf.ensure_shape(seed, [2]), tf.int64)
  return tf.random.experimental.stateless_split(seed, num=2)


def subsample_indices(batch_size, sample_count, population, seed=None):
  """Indices [B, S] int32 uniform in [0, population - 2] with replacement (the original's maxval quirk).

  Args:
    batch_size: B (int or scalar tensor).
    sample_count: S.
    population: N, the number of stored samples.
    seed: None for the global stateful RNG, else a [2] int stateless seed.
  """
  shape = tf.stack([tf.cast(batch_size, tf.int32), tf.constant(int(sample_count), tf.int32)])
  if seed is None:
    return tf.random.uniform(shape, minval=0, maxval=int(population) - 1, dtype=tf.int32)
  return tf.random.stateless_uniform(shape, seed=seed, minval=0, maxval=int(population) - 1, dtype=tf.int32)


def _check_static_shape(name, tensor, expected):
  got = tensor.shape.as_list()
  if len(got) != len(expected) + 1 or any(g is not None and g != e for g, e in zip(got[1:], expected)):
    raise ValueError(f'batch[{name!r}] must have shape [B] + {list(expected)}, got {got}')


def depth_to_xyz_images(depth_images, view_indices):
  """World-space (gaps frame) xyz images of dodeca depth views.

  Port of ldif/util/geom_util.py `transform_depth_dodeca_to_xyz_dodeca` (gaps_util_tf's
  `gaps_depth_image_to_xyz_image` per view), for any subset of the 20 views.

  Args:
    depth_images: float32 [B, V, h, w, 1], planar depth in gaps units (0 = background), view k of the
      tensor rendered by dodeca camera `view_indices[k]`.
    view_indices: sequence of V ints in [0, 20).

  Returns:
    float32 [B, V, h, w, 3]: cam2world (applied as a point) of the camera point
    (nx d tan(xfov), -ny d tan_y, -d) of every pixel (reference section 2.2, xfov 0.5); 0 where d = 0.

  Raises:
    ValueError: a wrong rank or channel count, or a view index outside [0, 20).
  """
  depth_images = tf.convert_to_tensor(depth_images, tf.float32)
  if depth_images.shape.rank != 5 or depth_images.shape[-1] != 1:
    raise ValueError(f'depth_images must have shape [B, V, h, w, 1], got {depth_images.shape}')
  views = [int(v) for v in view_indices]
  if any(not 0 <= v < schema.VIEW_COUNT for v in views):
    raise ValueError(f'view indices must be in [0, {schema.VIEW_COUNT}), got {views}')
  if depth_images.shape[1] is not None and depth_images.shape[1] != len(views):
    raise ValueError(f'{depth_images.shape[1]} views but {len(views)} view indices')
  height, width = int(depth_images.shape[2]), int(depth_images.shape[3])
  # The camera point of every pixel at depth 1 (the back-projection is linear in the depth).
  rays = camera_util.depth_image_to_cam_points(np.ones((height, width)), xfov=camera_util.DODECA_XFOV)
  cam2world = camera_util.dodeca_cam2world()[views]  # [V, 4, 4]
  # world = R (d ray) + t = d (R ray) + t: the rotated rays of each view, [V, h, w, 3].
  world_rays = tf.constant(np.einsum('vij,hwj->vhwi', cam2world[:, :3, :3], rays), tf.float32)
  eyes = tf.constant(cam2world[:, :3, 3], tf.float32)[:, tf.newaxis, tf.newaxis, :]  # [V, 1, 1, 3]
  xyz = depth_images * world_rays + eyes
  return tf.where(depth_images > 0.0, xyz, 0.0)


def preprocess(batch, *, height=137, width=137, view_index=None, sample_count=1024, seed=None,
               xyz_images=False):
  """Turns a raw batch (`ldif.datasets.pipeline.build_dataset`) into model inputs and loss samples.

  Args:
    batch: dict with the schema keys, batched: `depth_renders` [B, 20, 224, 224, 1] (thousandths),
      `surface_point_samples` [B, 10000, 6], `bounding_box_samples` [B, 100000, 4], `near_surface_samples`
      [B, 100000, 4], `grid` [B, 32, 32, 32], `world2grid` [B, 4, 4], `mesh_name` [B].
    height, width: network image size h, w (137 in every preset; 224 skips the resize).
    view_index: None for all 20 views, or an int in [0, 20) for that single view.
    sample_count: S, loss samples per set and batch element.
    seed: None (fresh indices on every call, global RNG), an int, or a [2] int tensor for stateless sampling
      (a training loop passes e.g. (seed, step) so every step differs but runs are reproducible).
    xyz_images: also return `xyz_images` (see `depth_to_xyz_images`), for samplings with 'xyz'.

  Returns:
    dict: `depth_images` float32 [B, V, h, w, 1] in gaps units (V = 20, or 1 with view_index),
    `surface_points` float32 [B, 10000, 3], `surface_normals` float32 [B, 10000, 3], `uniform_samples` float32
    [B, S, 4], `near_surface_samples` float32 [B, S, 4], `bounding_box_samples` float32 [B, 100000, 4] (all of
    them, for the bounding-box loss), `grid` [B, 32, 32, 32], `world2grid` [B, 4, 4], `mesh_name` [B];
    with xyz_images=True also `xyz_images` float32 [B, V, h, w, 3]. Gaps frame.

  Raises:
    ValueError: for a wrong static shape, a bad view_index, image size or sample_count.
  """
  depth = tf.convert_to_tensor(batch['depth_renders'])
  depth_shape = (schema.VIEW_COUNT, schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH, 1)
  _check_static_shape('depth_renders', depth, depth_shape)
  if int(height) < 2 or int(width) < 2:
    raise ValueError(f'height and width must be >= 2, got {height}x{width}')
  if int(sample_count) < 1:
    raise ValueError(f'sample_count must be >= 1, got {sample_count}')
  depth = tf.cast(depth, tf.float32)
  views = schema.VIEW_COUNT
  if view_index is not None:
    if not isinstance(view_index, int) or not 0 <= view_index < schema.VIEW_COUNT:
      raise ValueError(f'view_index must be None or an int in [0, {schema.VIEW_COUNT}), got {view_index!r}')
    depth = depth[:, view_index:view_index + 1]
    views = 1
  if (int(height), int(width)) != (schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH):
    flat = tf.reshape(depth, [-1, schema.IMAGE_HEIGHT, schema.IMAGE_WIDTH, 1])
    flat = resize_bilinear_align_corners(flat, height, width)
    depth = tf.reshape(flat, [-1, views, int(height), int(width), 1])
  depth_images = depth / schema.DEPTH_SCALE

  surface = tf.convert_to_tensor(batch['surface_point_samples'], dtype=tf.float32)
  _check_static_shape('surface_point_samples', surface, (schema.SURFACE_SAMPLE_COUNT, 6))
  uniform = tf.convert_to_tensor(batch['bounding_box_samples'], dtype=tf.float32)
  _check_static_shape('bounding_box_samples', uniform, (schema.SAMPLE_COUNT, 4))
  near = tf.convert_to_tensor(batch['near_surface_samples'], dtype=tf.float32)
  _check_static_shape('near_surface_samples', near, (schema.SAMPLE_COUNT, 4))

  batch_size = tf.shape(depth)[0]
  if seed is None:
    uniform_seed = near_seed = None
  else:
    seeds = _stateless_seeds(seed)
    uniform_seed, near_seed = seeds[0], seeds[1]
  uniform_idx = subsample_indices(batch_size, sample_count, schema.SAMPLE_COUNT, uniform_seed)
  near_idx = subsample_indices(batch_size, sample_count, schema.SAMPLE_COUNT, near_seed)

  out = {
      'depth_images': depth_images,
      'surface_points': surface[..., :3],
      'surface_normals': surface[..., 3:],
      'uniform_samples': tf.gather(uniform, uniform_idx, batch_dims=1),
      'near_surface_samples': tf.gather(near, near_idx, batch_dims=1),
      'bounding_box_samples': uniform,
      'grid': tf.convert_to_tensor(batch['grid'], dtype=tf.float32),
      'world2grid': tf.convert_to_tensor(batch['world2grid'], dtype=tf.float32),
      'mesh_name': tf.convert_to_tensor(batch['mesh_name']),
  }
  if xyz_images:
    view_indices = [view_index] if view_index is not None else range(schema.VIEW_COUNT)
    out['xyz_images'] = depth_to_xyz_images(depth_images, view_indices)
  return out

"""Random preprocessed batches, for benchmarks and tests of the train step without a dataset.

The values are random (not a shape); only the keys, shapes, dtypes and rough ranges match what
`ldif.datasets.preprocess.preprocess` produces for a preset, so a train step can be traced, run and timed.
"""

import numpy as np
import tensorflow as tf

from ldif.training import trainer

_WORLD2GRID = np.array([[22.1, 0, 0, 15.5], [0, 22.1, 0, 15.5], [0, 0, 22.1, 15.5], [0, 0, 0, 1]])
"""The 32^3 coarse grid's world-to-grid matrix over [-0.7, 0.7]^3 (reference section 2.3)."""


def random_preprocessed_batch(hp, batch_size, seed=0, *, surface_point_count=10000,
                              bounding_box_sample_count=100000):
  """A random batch with exactly the keys the train step of `hp` needs (`trainer.required_keys`).

  Args:
    hp: ldif.model.hparams.HParams.
    batch_size: B.
    seed: int seed of the numpy generator.
    surface_point_count: P, surface points and normals per example (10000 in real batches).
    bounding_box_sample_count: samples in `bounding_box_samples` (100000 in real batches).

  Returns:
    dict of float32 tensors, gaps frame: `depth_images` [B, V, h, w, 1] (uniform in [0, 2]), `xyz_images`
    [B, V, h, w, 3] (uniform in [-0.5, 0.5]), `uniform_samples` / `near_surface_samples` [B, S, 4] and
    `bounding_box_samples` [B, bounding_box_sample_count, 4] (xyz uniform in [-0.6, 0.6], value normal),
    `grid` [B, 32, 32, 32], `world2grid` [B, 4, 4], `surface_points` [B, P, 3] (uniform in [-0.4, 0.4]) and
    unit `surface_normals` [B, P, 3]; only the keys in `trainer.required_keys(hp)`. V = hp.view_count, h x w
    = hp.image_height x hp.image_width, S = hp.loss_sample_count.
  """
  rng = np.random.default_rng(seed)
  b = batch_size
  image_shape = (b, hp.view_count, hp.image_height, hp.image_width)

  def samples(count):
    return np.concatenate([rng.uniform(-.6, .6, (b, count, 3)), rng.normal(size=(b, count, 1))], -1)

  normals = rng.normal(size=(b, surface_point_count, 3))
  makers = {
      'depth_images': lambda: rng.uniform(0, 2, image_shape + (1,)),
      'xyz_images': lambda: rng.uniform(-.5, .5, image_shape + (3,)),
      'uniform_samples': lambda: samples(hp.loss_sample_count),
      'near_surface_samples': lambda: samples(hp.loss_sample_count),
      'bounding_box_samples': lambda: samples(bounding_box_sample_count),
      'grid': lambda: rng.normal(size=(b, 32, 32, 32)),
      'world2grid': lambda: np.tile(_WORLD2GRID, (b, 1, 1)),
      'surface_points': lambda: rng.uniform(-.4, .4, (b, surface_point_count, 3)),
      'surface_normals': lambda: normals / np.linalg.norm(normals, axis=-1, keepdims=True),
  }
  return {k: tf.constant(makers[k](), tf.float32) for k in trainer.required_keys(hp)}

"""Small analytic training data for the fast training tests (ellipsoids with known SDFs), written as the
schema's GZIP TFRecord shards so that the real input pipeline reads them.

The depth renders are not real renders (a disc whose radius and depth depend on the ellipsoid), which is
enough for an encoder to tell the examples apart. The slow end-to-end tests use meshes2dataset.py instead.
"""

import os

import numpy as np

from ldif.datasets import schema
from ldif.datasets import tfrecords


def ellipsoid_example(radii, name, rng):
  """A schema example dict of the axis-aligned ellipsoid with semi-axes `radii` (gaps frame), centred at 0."""
  radii = np.asarray(radii, np.float64)

  def sdf(p):
    # A simple approximate signed distance (negative inside): (|p / r| - 1) * min(r).
    return (np.linalg.norm(p / radii, axis=-1) - 1.0) * radii.min()

  uniform = rng.uniform(-0.7, 0.7, size=(schema.SAMPLE_COUNT, 3))
  directions = rng.normal(size=(schema.SAMPLE_COUNT, 3))
  directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
  on_surface = directions * radii
  near = on_surface + rng.normal(scale=0.02, size=on_surface.shape)
  axis = np.linspace(-0.7, 0.7, schema.GRID_RESOLUTION)
  zz, yy, xx = np.meshgrid(axis, axis, axis, indexing='ij')
  grid = sdf(np.stack([xx, yy, zz], axis=-1))
  scale = (schema.GRID_RESOLUTION - 1) / 1.4
  world2grid = np.array([[scale, 0, 0, 0.7 * scale], [0, scale, 0, 0.7 * scale], [0, 0, scale, 0.7 * scale],
                         [0, 0, 0, 1]])
  surface_dirs = rng.normal(size=(schema.SURFACE_SAMPLE_COUNT, 3))
  surface_dirs /= np.linalg.norm(surface_dirs, axis=-1, keepdims=True)
  surface = surface_dirs * radii
  normals = surface / radii**2
  normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
  h = schema.IMAGE_HEIGHT
  v, u = np.mgrid[0:h, 0:h] / (h - 1) * 2 - 1
  depth = np.zeros((schema.VIEW_COUNT, h, h, 1), np.float32)
  for k in range(schema.VIEW_COUNT):
    rr = radii[k % 3] * 1.5
    disc = (u**2 + v**2) < rr**2
    depth[k, disc,
          0] = np.floor(1000 * (2.0 - radii[(k + 1) % 3] * np.sqrt(1 - (u[disc]**2 + v[disc]**2) / rr**2)))
  return {
      'bounding_box_samples': np.concatenate([uniform, sdf(uniform)[:, None]], -1),
      'depth_renders': depth,
      'mesh_name': name,
      'near_surface_samples': np.concatenate([near, np.sign(sdf(near))[:, None]], -1),
      'grid': grid,
      'world2grid': world2grid,
      'surface_point_samples': np.concatenate([surface, normals], -1),
  }


def write_ellipsoid_dataset(dataset_directory, split='train', radii=((0.45, 0.3, 0.2), (0.2, 0.4, 0.35)),
                            seed=0):
  """Writes the shard `<dataset>/optimized/<split>/<split>-00000-of-00001.tfrecords`; returns its path."""
  rng = np.random.default_rng(seed)
  names = ['03001627|ellipsoid_a', '02691156|ellipsoid_b', 'animal|ellipsoid_c']
  records = [
      schema.serialize_example(ellipsoid_example(r, names[i % len(names)], rng)) for i, r in enumerate(radii)
  ]
  directory = tfrecords.shard_directory(dataset_directory, split)
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, tfrecords.shard_name(split, 0, 1))
  tfrecords.write_shard(path, records)
  return path

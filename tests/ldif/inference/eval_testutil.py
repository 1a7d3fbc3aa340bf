"""Helpers of the inference tests: hand-made example directories and an analytic stand-in for a model."""

import math
import os

import numpy as np
import trimesh

from gaps_py import io as gaps_io
from ldif.inference import predict

SPHERE_GAPS_RADIUS = 0.3
MESH_CENTER = np.array([2.0, -1.0, 0.5])
MESH_SCALE = 0.8  # mesh frame -> gaps frame (the ground truth spheres have radius ~0.4, as unit-box meshes)


def orig_to_gaps():
  m = np.eye(4)
  m[:3, :3] *= MESH_SCALE
  m[:3, 3] = -MESH_SCALE * MESH_CENTER
  return m


def sphere_variance(radius):
  """The variance of a unit-constant RBF whose -0.07 level set is a sphere of `radius`."""
  return radius**2 / (2.0 * math.log(1.0 / 0.07))


class SphereEncoder:
  """Stands in for a trained experiment: every example decodes to the same sphere (gaps frame)."""

  def __init__(self, radius=SPHERE_GAPS_RADIUS):
    v = sphere_variance(radius)
    self.packed = np.array([[-1.0, 0.0, 0.0, 0.0, v, v, v]], np.float32)
    self.calls = []

  def encode(self, ex):
    self.calls.append(ex.mesh_name)
    return predict.Decoder.from_packed(self.packed, radius_type='aa', symmetry_count=0)

  def occnet_weights(self):
    return None


def make_example_directory(dataset, split, class_name, name, rng, gt_radius=SPHERE_GAPS_RADIUS):
  """Writes a complete example directory whose ground truth is a sphere (radius in gaps units)."""
  directory = os.path.join(dataset, split, class_name, name)
  os.makedirs(directory, exist_ok=True)
  mesh = trimesh.creation.icosphere(subdivisions=4, radius=gt_radius / MESH_SCALE)
  mesh.apply_translation(MESH_CENTER)
  mesh_path = os.path.join(dataset, f'{name}_input.ply')
  gaps_io.write_mesh(mesh_path, mesh.vertices, mesh.faces)
  os.symlink(os.path.abspath(mesh_path), os.path.join(directory, 'mesh_orig.ply'))
  gaps_io.write_matrix(os.path.join(directory, 'orig_to_gaps.txt'), orig_to_gaps())
  world2grid = np.eye(4, dtype=np.float32)
  gaps_io.write_grd(os.path.join(directory, 'coarse_grid.grd'), np.zeros([32, 32, 32], np.float32),
                    world2grid)
  xyz = rng.uniform(-0.7, 0.7, size=(100000, 3)).astype(np.float32)
  sdf = np.linalg.norm(xyz, axis=1) - gt_radius
  gaps_io.write_sdf(os.path.join(directory, 'uniform_points.sdf'), np.concatenate([xyz, sdf[:, None]], 1))
  gaps_io.write_sdf(os.path.join(directory, 'nss_points.sdf'), np.zeros([100000, 4], np.float32))
  np.savez_compressed(os.path.join(directory, 'depth_and_normals.npz'),
                      np.zeros([20, 224, 224, 4], np.float32))
  surface = rng.normal(size=(100000, 6)).astype(np.float32)
  gaps_io.write_pts(os.path.join(directory, 'surface_samples_from_dodeca.pts'), surface)
  return directory + '/'

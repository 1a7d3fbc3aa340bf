"""Fixtures for the dataset tests: tiny meshes (trimesh) and a small dataset built once per session."""

import os
import shutil

import numpy as np
import pytest
import trimesh


def write_mesh_tree(root, meshes):
  """Writes {(split, class, file name): trimesh.Trimesh} under root; returns root."""
  for (split, class_name, filename), mesh in meshes.items():
    directory = os.path.join(root, split, class_name)
    os.makedirs(directory, exist_ok=True)
    mesh.export(os.path.join(directory, filename))
  return str(root)


def tiny_meshes():
  """Two train meshes (a sphere as .ply, a box as .obj) and one val mesh (a rotated box as .off)."""
  sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.8)
  box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
  rotated = trimesh.creation.box(extents=(0.5, 1.0, 0.7))
  rotated.apply_transform(trimesh.transformations.rotation_matrix(0.4, [1.0, 1.0, 0.0]))
  rotated.apply_translation([3.0, -1.0, 2.0])
  return {
      ('train', 'animal', 'sphere.ply'): sphere,
      ('train', 'chair', 'box.obj'): box,
      ('val', 'animal', 'tilted.off'): rotated,
  }


@pytest.fixture(scope='session')
def built_dataset(tmp_path_factory):
  """(mesh_directory, dataset_directory, report) of a 3-mesh dataset with shards; treat as read-only."""
  from ldif.datasets import make_dataset
  base = tmp_path_factory.mktemp('built')
  mesh_dir = write_mesh_tree(base / 'meshes', tiny_meshes())
  out_dir = str(base / 'dataset')
  report = make_dataset.make_dataset(mesh_dir, out_dir, max_threads=1, progress=False)
  assert not report.failures, report.failures
  return mesh_dir, out_dir, report


@pytest.fixture
def dataset_copy(built_dataset, tmp_path):
  """A private, writable copy of the built dataset: (mesh_directory, dataset_directory)."""
  mesh_dir, out_dir, _ = built_dataset
  copy = tmp_path / 'dataset'
  shutil.copytree(out_dir, copy, symlinks=True)
  return mesh_dir, str(copy)


@pytest.fixture
def random_example():
  """A function (rng, name) -> schema dict with random values of the schema shapes."""
  from ldif.datasets import schema

  def make(rng, name=b'animal|x'):
    out = {}
    for feature in schema.FEATURES:
      if feature.dtype == 'string':
        out[feature.name] = name
      else:
        out[feature.name] = rng.standard_normal(feature.shape).astype(np.float32)
    return out

  return make

"""Tests of build_dataset: from TFRecord shards and from example directories."""

import os
import shutil

import numpy as np
import pytest

from ldif.datasets import example
from ldif.datasets import pipeline
from ldif.datasets import tfrecords

SHAPES = {
    'bounding_box_samples': (100000, 4),
    'depth_renders': (20, 224, 224, 1),
    'mesh_name': (),
    'near_surface_samples': (100000, 4),
    'grid': (32, 32, 32),
    'world2grid': (4, 4),
    'surface_point_samples': (10000, 6),
}


def _check_batch(batch, batch_size):
  assert set(batch) == set(SHAPES)
  for name, shape in SHAPES.items():
    assert tuple(batch[name].shape) == (batch_size,) + shape, name
  assert batch['mesh_name'].dtype == object or batch['mesh_name'].dtype.kind == 'S'


def test_from_shards(built_dataset):
  _, out, _ = built_dataset
  ds = pipeline.build_dataset(out, 'train', 2, shuffle=False, repeat=False)
  assert ds.element_spec['depth_renders'].shape.as_list() == [2, 20, 224, 224, 1]
  batches = pipeline.numpy_batches(ds, 5)
  assert len(batches) == 1
  _check_batch(batches[0], 2)
  shard = tfrecords.list_shards(out, 'train')
  assert [os.path.basename(s) for s in shard] == ['train-00000-of-00001.tfrecords']
  records = {r['mesh_name']: r for r in tfrecords.read_shard(shard[0])}
  for i, name in enumerate(batches[0]['mesh_name']):
    for key in SHAPES:
      np.testing.assert_array_equal(batches[0][key][i], records[name][key])
  repeated = pipeline.numpy_batches(pipeline.build_dataset(out, 'train', 1, seed=3), 4)
  assert {b['mesh_name'][0] for b in repeated} <= {b'animal|sphere', b'03001627|box'}


def test_from_example_directories(dataset_copy):
  _, out = dataset_copy
  shutil.rmtree(os.path.join(out, 'optimized'))
  assert pipeline.list_example_directories(out, 'train') == [
      os.path.join(out, 'train', 'animal', 'sphere'), os.path.join(out, 'train', 'chair', 'box')]
  ds = pipeline.build_dataset(out, 'train', 2, shuffle=False, repeat=True, seed=4)
  b1, b2 = pipeline.numpy_batches(ds, 2)
  _check_batch(b1, 2)
  assert list(b1['mesh_name']) == [b'animal|sphere', b'03001627|box']
  sphere = os.path.join(out, 'train', 'animal', 'sphere')
  ref = example.read_example_directory(sphere, seed=0)
  for key in ('bounding_box_samples', 'depth_renders', 'near_surface_samples', 'grid', 'world2grid'):
    np.testing.assert_array_equal(b1[key][0], ref[key])
  stored = {r.tobytes() for r in np.fromfile(os.path.join(sphere, example.SURFACE_SAMPLES),
                                             np.float32).reshape(-1, 6)}
  assert all(r.tobytes() in stored for r in b1['surface_point_samples'][0])
  # Every load draws a new subset; with the same seed the stream repeats exactly.
  assert not np.array_equal(b1['surface_point_samples'], b2['surface_point_samples'])
  again = pipeline.numpy_batches(pipeline.build_dataset(out, 'train', 2, shuffle=False, seed=4), 1)[0]
  np.testing.assert_array_equal(again['surface_point_samples'], b1['surface_point_samples'])


def test_incomplete_examples_are_not_read(dataset_copy):
  _, out = dataset_copy
  shutil.rmtree(os.path.join(out, 'optimized'))
  os.remove(os.path.join(out, 'train', 'chair', 'box', example.COMPLETION_FILE))
  ds = pipeline.build_dataset(out, 'train', 1, shuffle=False, repeat=False)
  assert [b['mesh_name'][0] for b in pipeline.numpy_batches(ds, 5)] == [b'animal|sphere']


def test_errors(built_dataset):
  _, out, _ = built_dataset
  with pytest.raises(ValueError, match="split 'test' has no shards"):
    pipeline.build_dataset(out, 'test', 1)
  with pytest.raises(ValueError, match='batch_size'):
    pipeline.build_dataset(out, 'train', 0)

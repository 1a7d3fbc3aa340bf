"""Tests of the example schema: feature table, hand-written serialization, parse round trip, validation."""

import numpy as np
import pytest
import tensorflow as tf

from ldif.datasets import schema


def test_feature_table_matches_the_original_order_and_shapes():
  assert schema.FEATURE_NAMES == ('bounding_box_samples', 'depth_renders', 'mesh_name',
                                  'near_surface_samples', 'grid', 'world2grid', 'surface_point_samples')
  spec = schema.feature_spec()
  assert list(spec) == list(schema.FEATURE_NAMES)
  assert spec['bounding_box_samples'].shape == [100000, 4]
  assert spec['depth_renders'].shape == [20, 224, 224, 1]
  assert spec['mesh_name'].shape == [] and spec['mesh_name'].dtype == tf.string
  assert spec['near_surface_samples'].shape == [100000, 4]
  assert spec['grid'].shape == [32, 32, 32]
  assert spec['world2grid'].shape == [4, 4]
  assert spec['surface_point_samples'].shape == [10000, 6]
  assert all(spec[n].dtype == tf.float32 for n in schema.FEATURE_NAMES if n != 'mesh_name')


def _tf_api_example(d):
  """The original's make_tf_example, built with the TF proto API."""
  feature = {}
  for name in schema.FEATURE_NAMES:
    value = d[name]
    if name == 'mesh_name':
      feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    else:
      values = np.asarray(value).ravel().tolist()
      feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
  return tf.train.Example(features=tf.train.Features(feature=feature))


def test_serialized_bytes_are_the_same_message_as_the_tf_api(random_example, rng):
  d = random_example(rng, name='chair|abc'.encode())
  ours = tf.train.Example.FromString(schema.serialize_example(d))
  assert ours == _tf_api_example(d)
  # A change to one value must show up (the comparison is not vacuous).
  d2 = dict(d, grid=d['grid'].copy())
  d2['grid'][3, 2, 1] += 1.0
  assert tf.train.Example.FromString(schema.serialize_example(d2)) != _tf_api_example(d)


def test_round_trip_through_parse(random_example, rng):
  d = random_example(rng, name='03001627|hash')
  parsed = schema.parse_example(tf.constant(schema.serialize_example(d)))
  assert set(parsed) == set(schema.FEATURE_NAMES)
  for name in schema.FEATURE_NAMES:
    if name == 'mesh_name':
      assert parsed[name].numpy() == b'03001627|hash'
    else:
      np.testing.assert_array_equal(parsed[name].numpy(), d[name])
  batch = schema.parse_example_batch(tf.constant([schema.serialize_example(d)] * 2))
  assert batch['depth_renders'].shape == (2, 20, 224, 224, 1)
  np.testing.assert_array_equal(batch['grid'].numpy()[1], d['grid'])
  assert [v.shape for v in schema.as_tuple(parsed)][0] == (100000, 4)


def test_validation_names_the_source_and_feature(random_example, rng):
  d = random_example(rng)
  bad = dict(d, world2grid=np.zeros((3, 4), np.float32))
  with pytest.raises(ValueError, match=r'ex/dir: feature world2grid has shape \(3, 4\)'):
    schema.serialize_example(bad, source='ex/dir')
  nan = dict(d, grid=np.full((32, 32, 32), np.nan, np.float32))
  with pytest.raises(ValueError, match='grid contains NaN'):
    schema.validate_example(nan, source='x')
  missing = {k: v for k, v in d.items() if k != 'grid'}
  with pytest.raises(ValueError, match=r"missing \['grid'\]"):
    schema.validate_example(missing)
  with pytest.raises(ValueError, match='mesh_name must be str or bytes'):
    schema.validate_example(dict(d, mesh_name=3))


def test_mesh_name_uses_synsets_for_known_categories():
  assert schema.make_mesh_name('chair', 'abc') == '03001627|abc'
  assert schema.make_mesh_name('03001627', 'abc') == '03001627|abc'
  assert schema.make_mesh_name('animal', 'bob') == 'animal|bob'
  assert 'airplane' in schema.SYNSET_TO_CATEGORY.values()

"""Tests of shard naming, chunking, atomic GZIP shard writing and stale-shard removal."""

import gzip
import os

import numpy as np
import pytest

from ldif.datasets import schema
from ldif.datasets import tfrecords


def test_shard_names_follow_the_original_pattern():
  assert tfrecords.shard_name('train', 0, 3) == 'train-00000-of-00003.tfrecords'
  assert tfrecords.shard_name('val', 12, 100000) == 'val-00012-of-100000.tfrecords'
  assert tfrecords.parse_shard_name('/a/b/train-00002-of-00003.tfrecords') == ('train', 2, 3)
  assert tfrecords.parse_shard_name('train.txt') is None
  with pytest.raises(ValueError):
    tfrecords.shard_name('train', 3, 3)


def test_chunks_of_64():
  assert tfrecords.shard_count(0) == 0
  assert tfrecords.shard_count(64) == 1
  assert tfrecords.shard_count(65) == 2
  chunks = tfrecords.chunk(range(130))
  assert [len(c) for c in chunks] == [64, 64, 2]
  assert sum(chunks, []) == list(range(130))


def test_write_and_read_shard_round_trip(tmp_path, random_example, rng):
  examples = [random_example(rng, name=f'animal|{i}'.encode()) for i in range(3)]
  path = tmp_path / 'train-00000-of-00001.tfrecords'
  count = tfrecords.write_shard(path, (schema.serialize_example(e) for e in examples))
  assert count == 3
  assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind
  with gzip.open(path, 'rb') as f:  # really GZIP
    assert len(f.read(16)) == 16
  read = list(tfrecords.read_shard(path))
  assert [r['mesh_name'] for r in read] == [b'animal|0', b'animal|1', b'animal|2']
  np.testing.assert_array_equal(read[2]['near_surface_samples'], examples[2]['near_surface_samples'])


def test_failed_write_leaves_no_shard(tmp_path):
  path = tmp_path / 'train-00000-of-00001.tfrecords'

  def records():
    yield b'x'
    raise RuntimeError('boom')

  with pytest.raises(RuntimeError, match='boom'):
    tfrecords.write_shard(path, records())
  assert os.listdir(tmp_path) == []


def test_remove_shards_keeps_only_named(tmp_path):
  for name in ['train-00000-of-00002.tfrecords', 'train-00000-of-00003.tfrecords', 'notes.txt']:
    (tmp_path / name).write_bytes(b'')
  removed = tfrecords.remove_shards(tmp_path, keep=['train-00000-of-00002.tfrecords'])
  assert [os.path.basename(p) for p in removed] == ['train-00000-of-00003.tfrecords']
  assert sorted(os.listdir(tmp_path)) == ['notes.txt', 'train-00000-of-00002.tfrecords']
  assert tfrecords.remove_shards(tmp_path / 'absent') == []

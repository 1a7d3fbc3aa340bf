"""The tf.data input pipeline: batches of raw schema dicts from TFRecord shards or example directories.

Port of ldif/datasets/local_inputs.py (`make_dataset`, `_make_optimized_dataset`, `build_dataset_obj`).
"""

import glob
import os

import tensorflow as tf

from ldif.datasets import example
from ldif.datasets import schema
from ldif.datasets import tfrecords
from ldif.util import log


def list_example_directories(dataset_directory, split):
  """Sorted complete example directories `<dataset>/<split>/*/*/` (those with the completion file)."""
  pattern = os.path.join(glob.escape(os.fspath(dataset_directory)), glob.escape(split), '*', '*',
                         example.COMPLETION_FILE)
  return sorted(os.path.dirname(p) for p in glob.glob(pattern))


def _load_example_py(path, seed):
  path = path.decode('utf-8') if isinstance(path, bytes) else str(path)
  seed = int(seed)
  d = example.read_example_directory(path, seed=None if seed < 0 else seed)
  return tuple(d[name] for name in schema.FEATURE_NAMES)


def _set_shapes(values):
  out = {}
  for feature, value in zip(schema.FEATURES, values):
    value = tf.ensure_shape(value, feature.shape)
    out[feature.name] = value
  return out


def _example_directory_dataset(paths, seed, shuffle, repeat, buffer_size):
  ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, dtype=tf.string))
  if shuffle:
    ds = ds.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  # Each load draws a fresh surface subset (as the original); with a seed, load k of the stream uses a seed
  # derived from (seed, k), so the stream is reproducible.
  if seed is None:
    ds = ds.map(lambda p: (p, tf.constant(-1, tf.int64)))
  else:
    base = example.derive_seed(seed, 'pipeline_surface_subset') % (2**61)
    ds = ds.enumerate().map(lambda i, p: (p, (i * 1000003 + base) % (2**62)))
  out_types = tuple(tf.string if f.dtype == 'string' else tf.float32 for f in schema.FEATURES)

  def load(path, load_seed):
    return _set_shapes(tf.numpy_function(_load_example_py, [path, load_seed], out_types, stateful=True))

  return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def build_dataset(dataset_directory, split, batch_size, *, shuffle=True, repeat=True, seed=None,
                  drop_remainder=True, num_parallel_reads=8):
  """A tf.data.Dataset of batched raw examples (dicts with the schema keys).

  Reads `<dataset>/optimized/<split>/*.tfrecords` (GZIP) when there are any, else the complete example
  directories `<dataset>/<split>/*/*/` (each load then draws its own 10000-row surface subset).
  As the original: shuffle buffer 2 * batch_size, repeat, batch with drop_remainder, prefetch.

  Args:
    dataset_directory: output root of meshes2dataset.
    split: split name (e.g. 'train', 'val', 'test').
    batch_size: B >= 1.
    shuffle: shuffle records (buffer 2 * B; shards are also read in a shuffled order).
    repeat: repeat forever.
    seed: int seed for the shuffles and the per-load surface subsets; None = nondeterministic.
    drop_remainder: drop a last partial batch (the original always does; the static batch dim is then B).
    num_parallel_reads: interleaved shard readers.

  Returns:
    tf.data.Dataset of dicts: `bounding_box_samples` float32 [B, 100000, 4], `depth_renders` float32
    [B, 20, 224, 224, 1] (thousandths), `mesh_name` string [B], `near_surface_samples` float32 [B, 100000, 4],
    `grid` float32 [B, 32, 32, 32], `world2grid` float32 [B, 4, 4], `surface_point_samples` float32
    [B, 10000, 6]. Gaps frame.

  Raises:
    ValueError: if batch_size < 1 or the split has neither shards nor complete example directories.
  """
  if int(batch_size) < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}')
  batch_size = int(batch_size)
  dataset_directory = os.fspath(dataset_directory)
  buffer_size = 2 * batch_size
  shards = tfrecords.list_shards(dataset_directory, split)
  if shards:
    log.info(f'Reading {len(shards)} shards from {tfrecords.shard_directory(dataset_directory, split)}')
    files = tf.data.Dataset.from_tensor_slices(shards)
    if shuffle:
      files = files.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.TFRecordDataset(files, compression_type=tfrecords.COMPRESSION,
                                 num_parallel_reads=min(num_parallel_reads, len(shards)))
    if shuffle:
      ds = ds.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
      ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(schema.parse_example_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  else:
    paths = list_example_directories(dataset_directory, split)
    if not paths:
      raise ValueError(f'{dataset_directory}: split {split!r} has no shards in '
                       f'{tfrecords.shard_directory(dataset_directory, split)} and no complete example '
                       f'directories in {os.path.join(dataset_directory, split)}')
    log.info(f'No optimized shards for split {split}; reading {len(paths)} example directories')
    ds = _example_directory_dataset(paths, seed, shuffle, repeat, buffer_size)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  return ds.prefetch(1)


def numpy_batches(dataset, count):
  """Takes `count` batches of a dataset as dicts of numpy arrays (a convenience for tests and tools)."""
  return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(count)]


"""TFRecord shards of serialized examples: names, writing (GZIP, atomic), reading, stale-shard removal.

Layout (as the original meshes2dataset.py): `<dataset>/optimized/<split>/<split>-%05d-of-%05d.tfrecords`,
shard index then shard count, 64 examples per shard, GZIP-compressed TFRecord files of serialized
`tf.train.Example`s (`ldif.datasets.schema`).

Unlike the original, a shard is written to a temporary name (not ending in `.tfrecords`, so the training glob
never sees it) and renamed when complete, and shards of a split that do not belong to the current shard set
(e.g. `-of-00003` files after the split shrank to two shards) are removed (reference §10.10).
"""

import glob
import os
import re

from ldif.datasets import schema

OPTIMIZED_DIR = 'optimized'
EXAMPLES_PER_SHARD = 64
SHARD_SUFFIX = '.tfrecords'
COMPRESSION = 'GZIP'
_SHARD_RE = re.compile(r'^(?P<split>.+)-(?P<index>\d{5,})-of-(?P<count>\d{5,})\.tfrecords$')


def shard_name(split, index, count):
  """`<split>-<index %05d>-of-<count %05d>.tfrecords` (the original's naming)."""
  if not 0 <= index < count:
    raise ValueError(f'shard index {index} out of range for {count} shards')
  return f'{split}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}'


def parse_shard_name(name):
  """Returns (split, index, count) for a shard file name, or None if it is not one."""
  m = _SHARD_RE.match(os.path.basename(name))
  if not m:
    return None
  return m.group('split'), int(m.group('index')), int(m.group('count'))


def shard_count(example_count, examples_per_shard=EXAMPLES_PER_SHARD):
  """Number of shards for `example_count` examples (ceil division)."""
  return -(-int(example_count) // int(examples_per_shard))


def chunk(items, examples_per_shard=EXAMPLES_PER_SHARD):
  """Cuts a list into consecutive chunks of `examples_per_shard` (the last may be shorter)."""
  items = list(items)
  return [items[i:i + examples_per_shard] for i in range(0, len(items), examples_per_shard)]


def shard_directory(dataset_directory, split):
  """`<dataset>/optimized/<split>`."""
  return os.path.join(os.fspath(dataset_directory), OPTIMIZED_DIR, split)


def list_shards(dataset_directory, split):
  """Sorted paths of `<dataset>/optimized/<split>/*.tfrecords` (empty if there are none)."""
  directory = glob.escape(shard_directory(dataset_directory, split))
  return sorted(glob.glob(os.path.join(directory, '*' + SHARD_SUFFIX)))


def remove_shards(directory, keep=()):
  """Deletes every `*.tfrecords` file directly in `directory` whose base name is not in `keep`.

  Returns:
    The sorted list of removed paths.
  """
  keep = set(keep)
  removed = []
  if not os.path.isdir(directory):
    return removed
  for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    if name.endswith(SHARD_SUFFIX) and name not in keep and os.path.isfile(path):
      os.remove(path)
      removed.append(path)
  return removed


def write_shard(path, records):
  """Writes serialized records to a GZIP TFRecord file atomically (temp name, then rename).

  Args:
    path: final shard path (ends in `.tfrecords`).
    records: iterable of bytes (serialized `tf.train.Example`s), written in order.

  Returns:
    The number of records written.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  directory, name = os.path.split(path)
  tmp = os.path.join(directory, f'.{name}.{os.getpid()}.tmp')
  count = 0
  try:
    with tf.io.TFRecordWriter(tmp, options=tf.io.TFRecordOptions(compression_type=COMPRESSION)) as writer:
      for record in records:
        writer.write(record)
        count += 1
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return count


def read_shard(path):
  """Yields the examples of a shard as dicts of numpy arrays with the schema shapes (`mesh_name` as bytes)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for record in tf.data.TFRecordDataset([os.fspath(path)], compression_type=COMPRESSION):
    parsed = schema.parse_example(record)
    yield {k: v.numpy() for k, v in parsed.items()}

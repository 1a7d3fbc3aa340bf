"""Turns a directory of meshes into an LDIF dataset (example directories, split lists, TFRecord shards).

    python meshes2dataset.py --mesh_directory M --dataset_directory D

M must be laid out as M/<split>/<class>/<name>.{ply,obj,off,stl}. Each mesh becomes the example directory
D/<split>/<class>/<name>/; D/<split>.txt lists a split's examples; with --optimize (default) the examples are
also written as GZIP TFRecord shards D/optimized/<split>/<split>-%05d-of-%05d.tfrecords (64 examples each).
Bad meshes are reported and skipped; the run then ends with a summary of the failures and exit status 1.

Port of meshes2dataset.py (same flags and defaults, plus --seed and --decode_normals); the work is done by
`ldif.datasets.make_dataset`.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from ldif.datasets import make_dataset  # pylint: disable=g-import-not-at-top,wrong-import-position
from ldif.util import log  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS

flags.DEFINE_string('mesh_directory', '', 'Path to meshes. This folder should have the structure '
                    '<root>/{train,test,val}/<class>/*.{ply,obj,off,stl}')
flags.DEFINE_string('dataset_directory', '', 'Path to output dataset.')
flags.DEFINE_boolean('skip_existing', True, 'Whether to skip examples that are already complete in the '
                     'output dataset. True completes a run that crashed or was killed, or adds examples to '
                     'an existing dataset; False rebuilds every example in place.')
flags.DEFINE_integer('max_threads', -1, 'The maximum number of worker processes. If -1, uses all available '
                     'cores.')
flags.DEFINE_string('log_level', 'INFO', 'One of VERBOSE, INFO, WARNING, ERROR. Sets logs to print only at '
                    'or above the specified level.')
flags.DEFINE_boolean('optimize', True, 'Whether to create an optimized TFRecord dataset (about doubles disk '
                     'usage, substantially improves input throughput).')
flags.DEFINE_boolean('trample_optimized', True, 'Whether to erase and re-create the optimized files. True if '
                     'the dataset changed since the last run; False to complete an optimization that was '
                     'halted midway (existing shards are kept).')
flags.DEFINE_boolean('optimize_only', False, 'Whether to skip example creation and only rebuild the split '
                     'lists and TFRecord files from the complete example directories.')
flags.DEFINE_integer('seed', make_dataset.DEFAULT_SEED, 'Seed of all randomness: per-mesh sampling seeds '
                     'derive from it and the mesh path relative to --mesh_directory; shard shuffles from it '
                     'and the split name.')
flags.DEFINE_boolean('decode_normals', False, 'Decode the normal images (value / 32768 - 1) before '
                     'normalizing. False reproduces the original data, whose stored normals are the '
                     'direction of (n + 1); True changes model inputs relative to the original.')
flags.DEFINE_boolean('progress', True, 'Show progress bars.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Too many command-line arguments: {argv[1:]}')
  log.set_level(FLAGS.log_level)
  try:
    report = make_dataset.make_dataset(
        FLAGS.mesh_directory, FLAGS.dataset_directory, skip_existing=FLAGS.skip_existing,
        max_threads=FLAGS.max_threads, optimize=FLAGS.optimize, trample_optimized=FLAGS.trample_optimized,
        optimize_only=FLAGS.optimize_only, seed=FLAGS.seed, decode_normals=FLAGS.decode_normals,
        log_level=FLAGS.log_level, progress=FLAGS.progress)
  except ValueError as e:
    log.error(str(e))
    return 2
  return 1 if report.failures else 0


if __name__ == '__main__':
  app.run(main)

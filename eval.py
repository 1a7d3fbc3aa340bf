"""Evaluates a trained LDIF/SIF model on a dataset split: IoU, Chamfer-L2, F-scores, normal consistency.

Port of the original eval.py (same flags and defaults; reference §1.5). Prints the per-class result table and,
with --save_results, writes full_results_<split>.csv and result_summary_<split>.csv; --save_meshes writes the
reconstructions (mesh frame) to meshes/<split>/<class>/<name>.ply, --save_ldifs the shapes (gaps frame) to
ldifs/<split>/<class>/<name>.txt (+ ldifs/decoder.occnet for LDIF), --visualize PNG renders and index.html.
Differences from the original: --ckpt selects the checkpoint (by training step), --compute_metrics is
honoured, --eval_frac is seeded (--seed), no GPU or nvidia-smi is needed, --visualize writes files instead of
opening an interactive viewer, and the marching-cubes grid is evaluated coarse-to-fine (--nocoarse_to_fine for
the dense grid).

Example:
  python eval.py --dataset_directory D --experiment_name E --split test --result_directory R \
      --save_results --save_meshes --save_ldifs --visualize
"""

import os
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS

flags.DEFINE_string('dataset_directory', '', 'The dataset to evaluate (the --dataset_directory given to '
                    'meshes2dataset.py). Reads <dataset_directory>/<split>.txt.')
flags.DEFINE_string('result_directory', '', 'Where result files go. Needed if any --save_* flag or '
                    '--visualize is set; created if missing.')
flags.DEFINE_boolean('save_meshes', False, 'Write the reconstructed meshes (input mesh frame) to '
                     '<result_directory>/meshes/<split>/<class>/<name>.ply.')
flags.DEFINE_boolean('save_ldifs', False, 'Write the predicted shapes as SIF v1 text (gaps frame) to '
                     '<result_directory>/ldifs/<split>/<class>/<name>.txt, and for LDIF the decoder weights '
                     'to <result_directory>/ldifs/decoder.occnet.')
flags.DEFINE_boolean('save_results', False, 'Write full_results_<split>.csv (one row per mesh) and '
                     'result_summary_<split>.csv (per-class means, final row "mean") to the result '
                     'directory.')
flags.DEFINE_boolean('use_gpu_for_tensorflow', True, 'If false, hides the GPUs from TensorFlow '
                     '(CUDA_VISIBLE_DEVICES=-1). A GPU is never required.')
flags.DEFINE_boolean('use_inference_kernel', True, 'Evaluate the marching-cubes grid with the custom '
                     'evaluation op (ldif/ops, scripts/build_kernel.sh) when it is built; otherwise, or when '
                     'false, in pure TensorFlow (slower).')
flags.DEFINE_string('experiment_name', 'reproduce-ldif', 'The name of the experiment to evaluate.')
flags.DEFINE_integer('ckpt', -1, 'The training step of the checkpoint to evaluate; -1 for the newest.')
flags.DEFINE_string('split', 'test', 'The split(s) to evaluate, comma separated.')
flags.DEFINE_float('eval_frac', 1.0, 'The fraction of each split to evaluate (a random subset chosen with '
                   '--seed when below 1).')
flags.DEFINE_boolean('compute_metrics', True, 'If false, the model is run (and outputs saved) but no metrics '
                     'are computed.')
flags.DEFINE_string('model_directory', 'trained_models/', 'The trained-model root (train.py '
                    '--model_directory). Relative paths are relative to the current directory.')
flags.DEFINE_boolean('visualize', False, 'Write PNG renders of each ground truth beside its reconstruction '
                     'and an index.html with the metrics to the result directory.')
flags.DEFINE_string('log_level', 'INFO', 'One of VERBOSE, INFO, WARNING, ERROR.')
flags.DEFINE_integer('resolution', 256, 'The marching-cubes grid resolution.')
flags.DEFINE_string('only_class', '', 'Only evaluate this class (a ShapeNet class name or synset, or a class '
                    'directory name).')
flags.DEFINE_boolean('coarse_to_fine', True, 'Evaluate the marching-cubes grid coarse-to-fine: full '
                     'resolution only near the surface (the same mesh as the dense grid, much faster); false '
                     'evaluates the dense grid as the original.')
flags.DEFINE_integer('seed', 0, 'Seeds the eval_frac subset, the encoder\'s surface-sample subset and '
                     'local-view selection, and the metric surface samples.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS.use_gpu_for_tensorflow:
    os.environ['CUDA_VISIBLE_DEVICES'] = '-1'
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  tf.get_logger().setLevel('ERROR')
  from ldif.inference import evaluate
  from ldif.inference import experiment
  from ldif.inference import metrics
  from ldif.util import log
  # pylint: enable=g-import-not-at-top
  log.set_level(FLAGS.log_level)
  if not FLAGS.dataset_directory:
    raise app.UsageError('A dataset directory (--dataset_directory) must be provided.')
  splits = [s for s in FLAGS.split.split(',') if s]
  if not splits:
    raise app.UsageError('--split names no split.')
  options = evaluate.EvalOptions(
      result_directory=FLAGS.result_directory, save_meshes=FLAGS.save_meshes, save_ldifs=FLAGS.save_ldifs,
      save_results=FLAGS.save_results, visualize=FLAGS.visualize,
      use_inference_kernel=FLAGS.use_inference_kernel, compute_metrics=FLAGS.compute_metrics,
      resolution=FLAGS.resolution, coarse_to_fine=FLAGS.coarse_to_fine, seed=FLAGS.seed)
  options.validate()
  if options.writes_files:
    evaluate.ensure_writable_directory(options.result_directory)
  for split in splits:
    evaluate.read_split(FLAGS.dataset_directory, split)  # Fail early on a missing split list.
  if FLAGS.use_inference_kernel:
    evaluate.report_inference_kernel()

  log.info('Loading model...')
  model = experiment.Experiment.load(FLAGS.model_directory, FLAGS.experiment_name, ckpt=FLAGS.ckpt,
                                     seed=FLAGS.seed)
  log.info(model.describe())
  evaluate.write_decoder_file(model, options)
  log.info(f'Will evaluate on splits: {splits}')
  results = []
  for split in splits:
    start = time.perf_counter()
    result = evaluate.evaluate_split(model, FLAGS.dataset_directory, split, options,
                                     only_class=FLAGS.only_class, eval_frac=FLAGS.eval_frac)
    elapsed = time.perf_counter() - start
    results.append(result)
    print(f'\nResults for split {split} ({len(result.entries)} meshes, {elapsed:.1f} s, '
          f'{elapsed / max(1, len(result.entries)):.1f} s per mesh):')
    if FLAGS.compute_metrics:
      print(metrics.format_table(result.tables.summary))
    else:
      print('(metrics not computed: --nocompute_metrics)')
    sys.stdout.flush()
  evaluate.write_index(options, results, title=f'{FLAGS.experiment_name} (step {model.step})')


if __name__ == '__main__':
  app.run(main)

"""The evaluation loop behind eval.py: encode each example, IoU, mesh, metrics, tables and files.

Port of the body of the original's eval.py (reference §1.5), with its bugs fixed (reference §10.9): `--ckpt`
and `--compute_metrics` are honoured, `--eval_frac` is seeded, no GPU is required, airplane is in the class
table, pandas >= 2 works, and nothing interactive runs (`--visualize` writes PNGs and an index.html instead).

Per example (all of it in `evaluate_example`):
  1. encode the 20 depth renders and a seeded 10000-point surface subset (reference §7.1);
  2. IoU on the example's 100000 uniform samples, gaps frame (§7.2);
  3. extract the -0.07 level set at `resolution` over [-0.75, 0.75]^3 (§7.3), with the custom op when
     asked for and built, otherwise in pure TF;
  4. map the mesh to the input mesh's frame with the inverse of `orig_to_gaps` (also for the fallback
     sphere when marching cubes found no surface, as the original);
  5. Chamfer-L2, F-scores and normal consistency against `mesh_orig.*` in the mesh frame (§7.7).

Outputs under the result directory:
  meshes/<split>/<class>/<name>.ply      reconstruction, mesh frame            (--save_meshes)
  ldifs/<split>/<class>/<name>.txt       SIF v1 text, gaps frame              (--save_ldifs)
  ldifs/decoder.occnet                   the experiment's OccNet weights, LDIF (--save_ldifs)
  full_results_<split>.csv               key + the five metrics per mesh      (--save_results)
  result_summary_<split>.csv             class + per-class means, final row 'mean' (--save_results)
  visualize/<split>/<class>/<name>.png   ground truth above reconstruction    (--visualize)
  index.html                             all examples with metrics and PNGs   (--visualize)
"""

import dataclasses
import math
import os
import time

import numpy as np

from ldif.inference import example as inference_example
from ldif.inference import metrics
from ldif.inference import predict
from ldif.util import log


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """What eval does for every example (the eval.py flags that are not about selecting examples).

  Attributes:
    result_directory: where files go ('' writes nothing; required by any save_* flag or visualize).
    save_meshes, save_ldifs, save_results, visualize: as the eval.py flags.
    use_inference_kernel: evaluate grids with the custom op when it is built.
    compute_metrics: False runs the model and writes outputs but computes no metrics (the table has NaNs).
    resolution: marching-cubes grid resolution R.
    extent: half side of the marching-cubes cube, gaps units.
    grid_positions: pure-TF grid sample positions ('tf' as the original, 'kernel', 'aligned').
    coarse_to_fine: evaluate the marching-cubes grid coarse-to-fine (same mesh, much faster) instead of
      densely as the original.
    seed: seeds the encoder's surface subset and the metric samples.
    metric_sample_count: surface samples per mesh for the mesh metrics (100000 as the original).
  """
  result_directory: str = ''
  save_meshes: bool = False
  save_ldifs: bool = False
  save_results: bool = False
  visualize: bool = False
  use_inference_kernel: bool = False
  compute_metrics: bool = True
  resolution: int = predict.DEFAULT_RESOLUTION
  extent: float = predict.DEFAULT_EXTENT
  grid_positions: str = 'tf'
  coarse_to_fine: bool = True
  seed: int = 0
  metric_sample_count: int = metrics.SAMPLE_COUNT

  @property
  def writes_files(self):
    return self.save_meshes or self.save_ldifs or self.save_results or self.visualize

  def validate(self):
    """Raises ValueError for inconsistent options (e.g. a save flag without a result directory)."""
    if self.writes_files and not self.result_directory:
      raise ValueError('A result directory (--result_directory) must be provided to save results, meshes, '
                       'ldifs or visualizations.')
    if self.resolution < 2:
      raise ValueError(f'resolution must be >= 2, got {self.resolution}')
    if self.grid_positions not in predict.GRID_POSITIONS:
      raise ValueError(f'grid_positions must be one of {predict.GRID_POSITIONS}, got {self.grid_positions!r}')


@dataclasses.dataclass
class ExampleResult:
  """The outcome of one example: the result-table row, the meshes and timings (seconds)."""
  row: dict
  decoder: predict.Decoder
  mesh: object  # trimesh.Trimesh, mesh frame
  gaps_mesh: object  # trimesh.Trimesh, gaps frame
  had_crossing: bool
  timings: dict


class ConstantEncoder:
  """A baseline 'model' whose function value is the same constant everywhere, whatever the input.

  'outside' predicts F = 0 (everything outside: IoU 0); 'inside' predicts F = -1 (everything inside: IoU = the
  fraction of the box the shape fills). Neither has a surface, so mesh extraction returns the original's
  fallback sphere (radius 0.5, gaps frame) and the surface metrics are those of that sphere, exactly as
  eval.py scores a constant network. Implemented as one axis-aligned element with a huge variance (its RBF
  weight is 1 to within 2e-6 over the +-0.75 box). Has the `encode`/`occnet_weights` interface of
  `ldif.inference.experiment.Experiment`.
  """

  VALUES = {'outside': 0.0, 'inside': -1.0}

  def __init__(self, kind='outside'):
    if kind not in self.VALUES:
      raise ValueError(f'constant baseline must be one of {sorted(self.VALUES)}, got {kind!r}')
    self.kind = kind
    variance = 1e6
    self.packed = np.array([[self.VALUES[kind], 0.0, 0.0, 0.0, variance, variance, variance]], np.float32)

  def encode(self, ex):  # pylint: disable=unused-argument
    return predict.Decoder.from_packed(self.packed, radius_type='aa', symmetry_count=0)

  def occnet_weights(self):
    return None


def ensure_writable_directory(path):
  """Creates `path` (and parents) if needed and checks that files can be created in it.

  Raises:
    ValueError: naming the directory, if it cannot be created or written to (or is a file).
  """
  path = os.fspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f'{path}: the result directory is a file, not a directory')
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ValueError(f'{path}: cannot create the result directory ({e.strerror or e})') from None
  probe = os.path.join(path, f'.write-test-{os.getpid()}')
  try:
    with open(probe, 'wb') as f:
      f.write(b'ok')
    os.remove(probe)
  except OSError as e:
    raise ValueError(f'{path}: the result directory is not writable ({e.strerror or e})') from None


def read_split(dataset_directory, split):
  """The example directories listed in `<dataset>/<split>.txt` (one per line; blank lines ignored).

  Relative entries are taken relative to the dataset directory.

  Raises:
    ValueError: naming the file, if the dataset directory or the list is missing, unreadable or empty.
  """
  dataset_directory = os.fspath(dataset_directory)
  if not os.path.isdir(dataset_directory):
    raise ValueError(f'{dataset_directory}: the dataset directory does not exist')
  path = os.path.join(dataset_directory, f'{split}.txt')
  try:
    with open(path, 'rt', encoding='utf-8') as f:
      lines = [line.strip() for line in f]
  except OSError as e:
    raise ValueError(f'{path}: cannot read the list of the "{split}" split ({e.strerror or e}); was the '
                     'dataset made with meshes2dataset.py?') from None
  items = [line if os.path.isabs(line) else os.path.join(dataset_directory, line) for line in lines if line]
  if not items:
    raise ValueError(f'{path}: the "{split}" split lists no examples')
  return items


def filter_by_class(items, only_class):
  """Keeps the example directories of one class (a ShapeNet class name is mapped to its synset).

  Port of eval.py `filter_by_class`: keeps paths containing `/<key>/`.

  Raises:
    ValueError: if no example is left.
  """
  if not only_class:
    return list(items)
  key = metrics.CLASS_TO_SYNSET.get(only_class, only_class)
  kept = [x for x in items if f'/{key}/' in x.replace(os.sep, '/')]
  if not kept:
    raise ValueError(f'Filtering by class {only_class!r} (directory {key!r}) leaves no examples')
  return kept


def filter_by_eval_frac(items, eval_frac, seed=0):
  """A seeded random subset of max(1, int(n * eval_frac)) items, in the shuffled order (as the original, which
  shuffled with an unseeded `random.shuffle` even at 1.0).

  Raises:
    ValueError: if eval_frac is not in (0, 1].
  """
  if not 0.0 < eval_frac <= 1.0:
    raise ValueError(f'eval_frac must be in (0, 1], got {eval_frac}')
  items = list(items)
  order = np.random.default_rng(seed).permutation(len(items))
  keep = max(1, int(len(items) * eval_frac))
  return [items[i] for i in order[:keep]]


def report_inference_kernel():
  """Logs whether --use_inference_kernel can use the custom op; returns True when it is built and loads."""
  from ldif.ops import loader  # pylint: disable=g-import-not-at-top
  status = loader.op_status()
  if status['available']:
    log.info(f'Grids are evaluated with the custom op {status["path"]}.')
  else:
    log.info(f'The custom evaluation op is not available ({status["reason"]}); grids are evaluated in pure '
             'TensorFlow (slower). Build it with scripts/build_kernel.sh.')
  return bool(status['available'])


def _nan_metrics():
  return {c: math.nan for c in metrics.METRIC_COLUMNS}


def evaluate_example(encoder, ex, options):
  """Runs one example through the model and computes its metrics (steps 1-5 of the module docstring).

  Args:
    encoder: an object with `encode(example: InferenceExample) -> predict.Decoder` (e.g.
      `ldif.inference.experiment.Experiment`).
    ex: `InferenceExample`.
    options: `EvalOptions`.

  Returns:
    ExampleResult; `row` has 'key' and the METRIC_COLUMNS (NaN when compute_metrics is False).
  """
  timings = {}
  t0 = time.perf_counter()
  decoder = encoder.encode(ex)
  timings['encode'] = time.perf_counter() - t0
  row = {'key': ex.mesh_name, **_nan_metrics()}
  if options.compute_metrics:
    t = time.perf_counter()
    row['IoU'] = decoder.iou(ex.uniform_samples)
    timings['iou'] = time.perf_counter() - t
  t = time.perf_counter()
  gaps_mesh, had_crossing = decoder.extract_mesh(options.resolution, options.extent,
                                                 use_inference_kernel=options.use_inference_kernel,
                                                 positions=options.grid_positions,
                                                 coarse_to_fine=options.coarse_to_fine)
  timings['extract'] = time.perf_counter() - t
  if not had_crossing:
    log.warning(f'{ex.mesh_name}: marching cubes found no surface; the reconstruction is the fallback '
                'sphere.')
  import trimesh  # pylint: disable=g-import-not-at-top
  mesh = trimesh.Trimesh(vertices=predict.gaps_to_mesh_frame(gaps_mesh.vertices, ex.orig_to_gaps),
                         faces=np.asarray(gaps_mesh.faces), process=False)
  if options.compute_metrics:
    t = time.perf_counter()
    row.update(metrics.mesh_metrics(mesh, ex.gt_mesh(), sample_count=options.metric_sample_count,
                                    seed=options.seed))
    timings['metrics'] = time.perf_counter() - t
  for name in metrics.METRIC_COLUMNS:
    log.verbose(f'{ex.mesh_name}: {name} = {row[name]:.4f}')
  return ExampleResult(row=row, decoder=decoder, mesh=mesh, gaps_mesh=gaps_mesh, had_crossing=had_crossing,
                       timings=timings)


def result_paths(result_directory, ex):
  """Output paths of one example: dict with 'mesh', 'ldif', 'image' (see the module docstring)."""
  rel = os.path.join(ex.split, ex.class_name)
  return {
      'mesh': os.path.join(result_directory, 'meshes', rel, f'{ex.name}.ply'),
      'ldif': os.path.join(result_directory, 'ldifs', rel, f'{ex.name}.txt'),
      'image': os.path.join(result_directory, 'visualize', rel, f'{ex.name}.png'),
  }


def save_example_outputs(result, ex, options):
  """Writes the per-example files the options ask for; returns the paths written (dict)."""
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  paths = result_paths(options.result_directory, ex)
  written = {}
  if options.save_meshes:
    os.makedirs(os.path.dirname(paths['mesh']), exist_ok=True)
    gaps_io.write_mesh(paths['mesh'], np.asarray(result.mesh.vertices, np.float64),
                       np.asarray(result.mesh.faces, np.int64))
    written['mesh'] = paths['mesh']
  if options.save_ldifs:
    os.makedirs(os.path.dirname(paths['ldif']), exist_ok=True)
    result.decoder.write_txt(paths['ldif'])
    written['ldif'] = paths['ldif']
  if options.visualize:
    from ldif.inference import visualize  # pylint: disable=g-import-not-at-top
    image = visualize.comparison_image(ex.normalized_gt_mesh(), result.gaps_mesh)
    visualize.write_png(paths['image'], image)
    written['image'] = paths['image']
  for kind, path in written.items():
    log.verbose(f'Wrote {kind} {path}')
  return written


CSV_METRIC_ORDER = ('Normal Consistency', 'F-Score (tau)', 'F-Score (2*tau)', 'Chamfer', 'IoU')
"""Metric column order of the original's CSVs (after `key` resp. `class`)."""


def write_result_tables(result_directory, split, tables):
  """Writes the result tables of a split, atomically.

  `full_results_<split>.csv` has key + the metrics per mesh, `result_summary_<split>.csv` class + the per-class
  means and a last row 'mean'; both as pandas `to_csv()` with the leading index column and the original's
  column order (`CSV_METRIC_ORDER`). Read them back with `pandas.read_csv(path, index_col=0)`.

  Returns:
    (full path, summary path).
  """
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  full = os.path.join(result_directory, f'full_results_{split}.csv')
  summary = os.path.join(result_directory, f'result_summary_{split}.csv')
  for path, df, first in ((full, tables.full, 'key'), (summary, tables.summary, 'class')):
    with gaps_io.atomic_write(path, mode='w') as f:
      f.write(df[[first, *CSV_METRIC_ORDER]].to_csv())
  return full, summary


@dataclasses.dataclass
class SplitResult:
  """Everything one split's evaluation produced."""
  split: str
  tables: metrics.ResultTables
  entries: list  # dicts: key, metrics, 'image' (relative to the result directory) for index.html
  seconds_per_example: list


def evaluate_split(encoder, dataset_directory, split, options, *, only_class='', eval_frac=1.0,
                   progress=True):
  """Evaluates the selected examples of one split and writes what the options ask for.

  Args:
    encoder: see `evaluate_example`.
    dataset_directory: the dataset made by meshes2dataset.py.
    split: split name (reads `<dataset>/<split>.txt`).
    options: `EvalOptions` (validated here).
    only_class: keep one class ('' = all).
    eval_frac: fraction of examples (seeded with options.seed).
    progress: show a tqdm progress bar.

  Returns:
    SplitResult.

  Raises:
    ValueError: naming the file or directory, for bad inputs (see `read_split`, `InferenceExample`,
      `ensure_writable_directory`).
  """
  options.validate()
  if options.writes_files:
    ensure_writable_directory(options.result_directory)
  items = read_split(dataset_directory, split)
  log.info(f'The split {split} has {len(items)} examples.')
  items = filter_by_eval_frac(filter_by_class(items, only_class), eval_frac, options.seed)
  log.info(f'Evaluating {len(items)} of them.')
  rows, entries, seconds = [], [], []
  iterator = items
  if progress:
    import tqdm  # pylint: disable=g-import-not-at-top
    iterator = tqdm.tqdm(items, desc=f'eval {split}', unit='mesh')
  for directory in iterator:
    start = time.perf_counter()
    ex = inference_example.InferenceExample.from_directory(directory, seed=options.seed)
    result = evaluate_example(encoder, ex, options)
    written = save_example_outputs(result, ex, options) if options.writes_files else {}
    rows.append(result.row)
    entry = dict(result.row)
    entry['image'] = None
    if 'image' in written:
      entry['image'] = os.path.relpath(written['image'], options.result_directory)
    entries.append(entry)
    seconds.append(time.perf_counter() - start)
    log.verbose(f'{ex.mesh_name}: ' + ', '.join(f'{k} {v:.2f}s' for k, v in result.timings.items()))
  tables = metrics.result_tables(rows)
  if options.save_results:
    for path in write_result_tables(options.result_directory, split, tables):
      log.info(f'Wrote {path}')
  return SplitResult(split=split, tables=tables, entries=entries, seconds_per_example=seconds)


def write_decoder_file(encoder, options):
  """With --save_ldifs, writes the experiment's OccNet weights to `ldifs/decoder.occnet` (LDIF only).

  Returns:
    the path written, or None (SIF, or not asked for).
  """
  if not options.save_ldifs:
    return None
  weights = encoder.occnet_weights()
  if weights is None:
    return None
  from ldif.representation import sif_file  # pylint: disable=g-import-not-at-top
  path = os.path.join(options.result_directory, 'ldifs', 'decoder.occnet')
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sif_file.write_occnet(path, weights)
  log.info(f'Wrote {path}')
  return path


def write_index(options, split_results, title):
  """With --visualize, writes `<result_directory>/index.html` for all evaluated splits; returns its path."""
  if not options.visualize:
    return None
  from ldif.inference import visualize  # pylint: disable=g-import-not-at-top
  path = os.path.join(options.result_directory, 'index.html')
  sections = [(f'split {r.split}', r.tables.summary, r.entries) for r in split_results]
  visualize.write_index_html(path, sections, title=title)
  log.info(f'Wrote {path}')
  return path

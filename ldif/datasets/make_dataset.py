"""Builds an LDIF dataset from a directory of meshes: the library behind `meshes2dataset.py`.

Input: `<mesh_directory>/<split>/<class>/<name>.<ext>`, ext in .ply/.obj/.off/.stl. Output (reference §1):

    <dataset>/<split>/<class>/<name>/         one example directory per mesh (`ldif.datasets.example`)
    <dataset>/<split>.txt                     sorted example directory paths, each ending in '/', one per line
    <dataset>/optimized/<split>/<split>-%05d-of-%05d.tfrecords   GZIP shards of 64 serialized examples

Per mesh (`process_mesh`), in-process through gaps_py instead of the original shell script and GAPS binaries:

| step | original (GAPS program, flags)                           | here                                     |
|------|----------------------------------------------------------|------------------------------------------|
| 0    | `ln -s mesh mesh_orig.<ext>`                             | symlink with an absolute target          |
| 1    | msh2msh -scale_by_pca -translate_by_centroid -scale 0.25 | `msh2msh.normalize_mesh` (vertices       |
|      | -debug_matrix; later steps read its %g OBJ               | rounded to %g like that OBJ)             |
| 2    | msh2df -bbox +-0.7 -border 0 -spacing 0.044              | `msh2df.mesh_to_distance_field`          |
|      | -estimate_sign                                           |                                          |
| 3    | msh2pts -near_surface -max_distance 0.04                 | `msh2pts.near_surface_samples`           |
|      | -num_points 100000 -binary_sdf                           |                                          |
| 4    | msh2pts -uniform_in_bbox -bbox +-0.7 -npoints 100000     | `msh2pts.uniform_samples`                |
|      | -binary_sdf                                              |                                          |
| 5    | scn2img dodeca_cameras.cam -capture_depth_images 224x224 | `scn2img.render_depth_images` (no PNGs)  |
| 6    | conf2img -create_normal_images 224x224                   | `conf2img.normal_images` (no PNGs)       |
| 7    | PNGs -> `depth_and_normals.npz`, PNG dirs deleted        | arrays -> npz (same values, §2.3 quirk;  |
|      |                                                          | deflate level 1, see `write_npz`)        |
| 8    | `surface_samples_from_dodeca.pts`                        | same, with a seeded shuffle              |

The PNG directories (`depth_images/`, `normals/`) never exist here; the original deletes them after step 7, so
the finished directories have the same files. Every file is written atomically and the completion file
(`surface_samples_from_dodeca.pts`) last; before (re)processing an example its completion file and npz are
removed, so a killed run never leaves an example that looks complete but is not.

Fixes of bugs in the original (reference §10.10): stale shards are removed (also inside `optimized/<split>/`);
`mesh_orig.<ext>` links to the absolute input path; splits are visited in sorted order and each split's
shuffle has its own seed; the per-shard surface subsets and all per-mesh sampling are seeded from `--seed` and
the mesh's path relative to the mesh directory (so results do not depend on worker scheduling or where the
data lives).

Port of meshes2dataset.py, ldif/scripts/make_example.py and ldif/scripts/process_mesh_local.sh.
"""

import dataclasses
import os
import time

import numpy as np

from ldif.datasets import example
from ldif.datasets import schema
from ldif.datasets import tfrecords
from ldif.util import log

SUPPORTED_EXTENSIONS = example.MESH_EXTENSIONS
RESERVED_SPLIT = tfrecords.OPTIMIZED_DIR
DEFAULT_SEED = 2077  # the original seeds Python's `random` with 2077
SAMPLE_BOX = (-0.7, -0.7, -0.7, 0.7, 0.7, 0.7)
GRID_SPACING = 0.044
NEAR_SURFACE_MAX_DISTANCE = 0.04
NORMALIZATION_SCALE = 0.25
PNG_DIRECTORIES = ('depth_images', 'normals')
NPZ_COMPRESSLEVEL = 1


@dataclasses.dataclass(frozen=True)
class MeshJob:
  """One input mesh and where its example goes.

  Attributes:
    mesh_path: absolute path of the input mesh.
    relpath: `<split>/<class>/<file>` relative to the mesh directory ('/'-separated); per-mesh seeds derive
      from it.
    split, class_name, name: the example's split, class directory and name (file name without extension).
    example_dir: `<dataset>/<split>/<class>/<name>/`, as written to `<split>.txt`.
  """
  mesh_path: str
  relpath: str
  split: str
  class_name: str
  name: str
  example_dir: str


@dataclasses.dataclass(frozen=True)
class Failure:
  """A mesh (or other input file) that could not be turned into an example: `path` and `message`."""
  path: str
  message: str


@dataclasses.dataclass
class DatasetReport:
  """Outcome of `make_dataset`.

  Attributes:
    written: example directories completed by this run (processed or resampled), sorted.
    skipped: example directories that were already complete (`skip_existing`), sorted.
    failures: `Failure`s, sorted by path; non-empty means the run should exit non-zero.
    split_lists: split -> sorted example directories written to `<split>.txt`.
    shards: split -> shard paths written (or kept) under `optimized/<split>/`.
  """
  written: list = dataclasses.field(default_factory=list)
  skipped: list = dataclasses.field(default_factory=list)
  failures: list = dataclasses.field(default_factory=list)
  split_lists: dict = dataclasses.field(default_factory=dict)
  shards: dict = dataclasses.field(default_factory=dict)


def resolve_job_count(max_threads, task_count=None):
  """Worker count from the `--max_threads` flag: -1 = all usable cores, otherwise the value (>= 1).

  Raises:
    ValueError: for 0 or values below -1.
  """
  max_threads = int(max_threads)
  if max_threads == -1:
    try:
      n = len(os.sched_getaffinity(0))
    except AttributeError:
      n = os.cpu_count() or 1
  elif max_threads >= 1:
    n = max_threads
  else:
    raise ValueError(f'--max_threads must be -1 (all cores) or a positive count, got {max_threads}')
  if task_count is not None:
    n = max(1, min(n, int(task_count)))
  return n


def _strip_trailing_slashes(path):
  path = os.fspath(path)
  stripped = path.rstrip('/')
  return stripped if stripped else path


def find_meshes(mesh_directory, dataset_directory):
  """Lists the meshes of `<mesh_directory>/<split>/<class>/<name>.<ext>` and the input problems.

  Hidden files and directories (leading '.') are ignored. A file with a supported mesh extension anywhere else
  than at depth 3, a file at depth 3 with another extension, and several meshes mapping to the same example
  (e.g. `cow.off` and `cow.ply`) are reported as `Failure`s; other files at other depths only get a warning.

  Args:
    mesh_directory: input root.
    dataset_directory: output root (used verbatim, without trailing '/', in `MeshJob.example_dir`).

  Returns:
    (jobs, failures): `MeshJob`s sorted by relpath, `Failure`s sorted by path.

  Raises:
    ValueError: if the mesh directory does not exist, a split is named 'optimized', or no mesh is usable
      (the message names the expected structure and the first problems found).
  """
  root = _strip_trailing_slashes(mesh_directory)
  if not root:
    raise ValueError('--mesh_directory is required')
  if not os.path.isdir(root):
    raise ValueError(f'{root}: mesh directory does not exist or is not a directory')
  out_root = _strip_trailing_slashes(dataset_directory)
  jobs, failures = [], []
  structure = f'{root}/<split>/<class>/<name>.{{{",".join(e[1:] for e in SUPPORTED_EXTENSIONS)}}}'
  for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
    rel_dir = os.path.relpath(dirpath, root)
    rel_parts = [] if rel_dir == '.' else rel_dir.split(os.sep)
    for filename in sorted(filenames):
      if filename.startswith('.'):
        continue
      path = os.path.join(dirpath, filename)
      parts = rel_parts + [filename]
      ext = os.path.splitext(filename)[1]
      is_mesh_ext = ext.lower() in SUPPORTED_EXTENSIONS
      if len(parts) != 3:
        if is_mesh_ext:
          failures.append(Failure(path, f'mesh at the wrong depth in the mesh directory; '
                                        f'expected {structure}'))
        else:
          log.warning(f'{path}: ignored (not a mesh at {structure})')
        continue
      if not is_mesh_ext:
        failures.append(Failure(
            path, f'unsupported extension {ext!r}; supported: {", ".join(SUPPORTED_EXTENSIONS)}'))
        continue
      split, class_name = parts[0], parts[1]
      if split == RESERVED_SPLIT:
        raise ValueError(f'{os.path.join(root, split)}: the split name "{RESERVED_SPLIT}" is reserved '
                         'for the TFRecord shards')
      name = os.path.splitext(filename)[0]
      jobs.append(MeshJob(
          mesh_path=os.path.abspath(path), relpath='/'.join(parts), split=split, class_name=class_name,
          name=name, example_dir=f'{out_root}/{split}/{class_name}/{name}/'))
  by_example = {}
  for job in jobs:
    by_example.setdefault(job.example_dir, []).append(job)
  kept = []
  for example_dir, group in by_example.items():
    if len(group) == 1:
      kept.append(group[0])
      continue
    names = ', '.join(os.path.basename(j.mesh_path) for j in group)
    for job in group:
      failures.append(Failure(job.mesh_path,
                              f'several meshes ({names}) map to the same example {example_dir}'))
  kept.sort(key=lambda j: j.relpath)
  failures.sort(key=lambda f: f.path)
  if not kept:
    details = ''.join(f'\n  {f.path}: {f.message}' for f in failures[:10])
    raise ValueError(f'{root}: no usable meshes found; expected the structure {structure}{details}')
  return kept, failures


def _remove_if_exists(path):
  try:
    os.remove(path)
  except FileNotFoundError:
    pass


def _remove_stale_temporaries(example_dir):
  """Deletes hidden temporary files ('.<name>.<random>.tmp<ext>') a killed run may have left behind."""
  for name in os.listdir(example_dir):
    path = os.path.join(example_dir, name)
    if name.startswith('.') and '.tmp' in name and (os.path.isfile(path) or os.path.islink(path)):
      _remove_if_exists(path)


def _link_mesh_orig(mesh_path, example_dir):
  """Creates `mesh_orig.<ext>` -> absolute mesh path atomically, removing links with other extensions."""
  ext = os.path.splitext(mesh_path)[1]
  link = os.path.join(example_dir, example.MESH_ORIG_STEM + ext)
  for other_ext in SUPPORTED_EXTENSIONS + tuple(e.upper() for e in SUPPORTED_EXTENSIONS):
    other = os.path.join(example_dir, example.MESH_ORIG_STEM + other_ext)
    if other != link and os.path.lexists(other):
      os.remove(other)
  tmp = os.path.join(example_dir, f'.{example.MESH_ORIG_STEM}.{os.getpid()}.tmp')
  _remove_if_exists(tmp)
  os.symlink(os.path.abspath(mesh_path), tmp)
  os.replace(tmp, link)
  return link


def _remove_png_directory(directory):
  """Deletes a leftover GAPS PNG directory if it holds only files (port of make_example.remove_png_dir)."""
  if not os.path.isdir(directory):
    return
  entries = [os.path.join(directory, e) for e in os.listdir(directory)]
  if not all(os.path.isfile(e) and not os.path.islink(e) for e in entries):
    log.warning(f'{directory}: not removed, it holds more than files')
    return
  for e in entries:
    os.remove(e)
  os.rmdir(directory)


def write_npz(file, array, compresslevel=NPZ_COMPRESSLEVEL):
  """Writes `array` as the single entry `arr_0` of a deflate-compressed npz, like `np.savez_compressed`.

  The archive has the same layout as numpy's (entry `arr_0.npy`, ZIP64, fixed 1980 timestamp, so the bytes are
  deterministic) but deflate level 1 instead of 6: 40% faster for the 16 MB depth/normal array and about 4%
  larger; `np.load` reads both the same.
  """
  import zipfile  # pylint: disable=g-import-not-at-top
  from numpy.lib import format as npy_format  # pylint: disable=g-import-not-at-top
  with zipfile.ZipFile(file, mode='w', compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel,
                       allowZip64=True) as archive:
    with archive.open('arr_0.npy', 'w', force_zip64=True) as entry:
      npy_format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def mesh_seeds(seed, relpath):
  """Per-mesh seeds {'near_surface', 'uniform', 'surface'} from the run seed and the mesh's relative path."""
  base = example.derive_seed(seed, 'mesh', relpath)
  return {purpose: example.derive_seed(base, purpose) for purpose in ('near_surface', 'uniform', 'surface')}


def _write_surface_samples(depth_and_normals, example_dir, seed):
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  samples = example.surface_samples_from_dodeca(
      depth_and_normals, sample_count=schema.STORED_SURFACE_SAMPLE_COUNT, seed=seed)
  gaps_io.write_pts(os.path.join(example_dir, example.SURFACE_SAMPLES), samples)


class _StepTimer:
  """Accumulates wall seconds per named step into a dict (or does nothing without one)."""

  def __init__(self, timings):
    self._timings = timings
    self._last = time.perf_counter()

  def lap(self, name):
    now = time.perf_counter()
    if self._timings is not None:
      self._timings[name] = self._timings.get(name, 0.0) + now - self._last
    self._last = now


def process_mesh(mesh_path, example_dir, *, seeds, skip_existing=True, decode_normals=False, timings=None):
  """Turns one mesh into a complete example directory (all files of `ldif.datasets.example`).

  Args:
    mesh_path: input mesh (.ply/.obj/.off/.stl), mesh frame.
    example_dir: output directory (created if needed).
    seeds: dict with int seeds 'near_surface', 'uniform', 'surface' (see `mesh_seeds`).
    skip_existing: as the original: do nothing if the example is complete; if only the surface samples are
      missing, compute them from the existing `depth_and_normals.npz`.
    decode_normals: see `example.depth_and_normals_array` (False reproduces the original's data).
    timings: optional dict that receives wall seconds per step ('load', 'msh2msh', 'msh2df', 'msh2pts_nss',
      'msh2pts_uniform', 'scn2img', 'conf2img', 'npz', 'surface_samples').

  Returns:
    'skipped', 'resampled' (only the surface samples were written) or 'processed'.

  Raises:
    gaps_py.io.MeshError: for an unusable mesh (message "<path>: <problem>").
    ValueError: when nothing of the mesh is visible in the depth images, or from the gaps_py steps.

  Port of ldif/scripts/make_example.py `mesh_to_example` and scripts/process_mesh_local.sh.
  """
  from gaps_py import conf2img  # pylint: disable=g-import-not-at-top
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  from gaps_py import msh2df  # pylint: disable=g-import-not-at-top
  from gaps_py import msh2msh  # pylint: disable=g-import-not-at-top
  from gaps_py import msh2pts  # pylint: disable=g-import-not-at-top
  from gaps_py import scn2img  # pylint: disable=g-import-not-at-top
  from ldif.util import camera_util  # pylint: disable=g-import-not-at-top

  example_dir = os.fspath(example_dir)
  npz_path = os.path.join(example_dir, example.DEPTH_AND_NORMALS)
  if skip_existing and example.is_complete(example_dir):
    log.verbose(f'{example_dir}: complete, skipped')
    return 'skipped'
  if skip_existing and os.path.isfile(npz_path):
    try:
      depth_and_normals = example.read_depth_and_normals(npz_path)
    except ValueError as e:
      log.warning(f'{e}; reprocessing the mesh')
    else:
      timer = _StepTimer(timings)
      _write_surface_samples(depth_and_normals, example_dir, seeds['surface'])
      timer.lap('surface_samples')
      return 'resampled'

  timer = _StepTimer(timings)
  vertices, faces = gaps_io.load_mesh(mesh_path)
  timer.lap('load')
  os.makedirs(example_dir, exist_ok=True)
  _remove_stale_temporaries(example_dir)
  # Invalidate first: until the completion file is written again the directory counts as incomplete.
  _remove_if_exists(os.path.join(example_dir, example.COMPLETION_FILE))
  _remove_if_exists(npz_path)
  _link_mesh_orig(mesh_path, example_dir)

  # GAPS re-reads the normalized mesh from an OBJ written with %g; normalize_mesh rounds the same way.
  vertices, matrix = msh2msh.normalize_mesh(vertices, faces, scale=NORMALIZATION_SCALE, scale_by_pca=True,
                                            translate_by_centroid=True, round_like_gaps=True)
  gaps_io.write_matrix(os.path.join(example_dir, example.ORIG_TO_GAPS), matrix)
  timer.lap('msh2msh')

  grid, world2grid = msh2df.mesh_to_distance_field(vertices, faces, bbox=SAMPLE_BOX, spacing=GRID_SPACING,
                                                   border=0, estimate_sign=True)
  gaps_io.write_grd(os.path.join(example_dir, example.COARSE_GRID), grid, world2grid)
  timer.lap('msh2df')

  nss = msh2pts.near_surface_samples(vertices, faces, num_points=schema.SAMPLE_COUNT,
                                     max_distance=NEAR_SURFACE_MAX_DISTANCE, seed=seeds['near_surface'])
  gaps_io.write_sdf(os.path.join(example_dir, example.NSS_POINTS), nss)
  timer.lap('msh2pts_nss')

  uniform = msh2pts.uniform_samples(vertices, faces, bbox=SAMPLE_BOX, num_points=schema.SAMPLE_COUNT,
                                    seed=seeds['uniform'])
  gaps_io.write_sdf(os.path.join(example_dir, example.UNIFORM_POINTS), uniform)
  timer.lap('msh2pts_uniform')

  depth = scn2img.render_depth_images(vertices, faces, camera_util.dodeca_cameras(),
                                      width=schema.IMAGE_WIDTH, height=schema.IMAGE_HEIGHT)
  timer.lap('scn2img')
  intrinsics = camera_util.base_conf_intrinsics(width=schema.IMAGE_WIDTH, height=schema.IMAGE_HEIGHT)
  normals = np.stack([np.asarray(conf2img.normal_images(image, intrinsics))[:3] for image in depth])
  timer.lap('conf2img')

  depth_and_normals = example.depth_and_normals_array(depth, normals, decode_normals=decode_normals)
  for name in PNG_DIRECTORIES:
    _remove_png_directory(os.path.join(example_dir, name))
  with gaps_io.atomic_write(npz_path, 'wb') as f:
    write_npz(f, depth_and_normals)
  timer.lap('npz')

  _write_surface_samples(depth_and_normals, example_dir, seeds['surface'])
  timer.lap('surface_samples')
  return 'processed'


def _remove_partial_example(example_dir):
  """After a failure: deletes the files this module writes into an example directory, and the directory if
  it is then empty."""
  if not os.path.isdir(example_dir):
    return
  for name in example.EXAMPLE_FILES:
    _remove_if_exists(os.path.join(example_dir, name))
  link = example.find_mesh_orig(example_dir)
  if link:
    _remove_if_exists(link)
  try:
    os.rmdir(example_dir)
  except OSError:
    pass


@dataclasses.dataclass(frozen=True)
class _Outcome:
  job: MeshJob
  status: str  # 'processed' | 'resampled' | 'skipped' | 'failed'
  message: str = ''
  seconds: float = 0.0


def _run_job(job, seed, skip_existing, decode_normals, log_level, numba_threads):
  """Worker body: processes one mesh and returns an `_Outcome` instead of raising."""
  if log_level:
    log.set_level(log_level)
  if numba_threads:
    try:
      import numba  # pylint: disable=g-import-not-at-top
      numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
    except ImportError:
      pass
  start = time.perf_counter()
  try:
    status = process_mesh(job.mesh_path, job.example_dir, seeds=mesh_seeds(seed, job.relpath),
                          skip_existing=skip_existing, decode_normals=decode_normals)
  except Exception as e:  # pylint: disable=broad-except
    message = str(e)
    if job.mesh_path not in message:
      message = f'{job.mesh_path}: {type(e).__name__}: {message}'
    _remove_partial_example(job.example_dir)
    return _Outcome(job, 'failed', message, time.perf_counter() - start)
  return _Outcome(job, status, '', time.perf_counter() - start)


def process_meshes(jobs, *, seed=DEFAULT_SEED, skip_existing=True, decode_normals=False, n_jobs=1,
                   log_level=None, progress=True):
  """Processes `MeshJob`s (in worker processes when n_jobs > 1) with a tqdm progress bar.

  Returns:
    list of (job, status, message) with status 'processed'/'resampled'/'skipped'/'failed', in job order.
  """
  import tqdm  # pylint: disable=g-import-not-at-top
  jobs = list(jobs)
  n_jobs = max(1, min(int(n_jobs), len(jobs) or 1))
  cores = resolve_job_count(-1)
  numba_threads = max(1, cores // n_jobs) if n_jobs > 1 else 0
  args = (seed, skip_existing, decode_normals, log_level, numba_threads)
  bar = tqdm.tqdm(total=len(jobs), desc='meshes', unit='mesh', disable=not progress)
  outcomes = {}
  try:
    if n_jobs == 1:
      results = (_run_job(job, *args) for job in jobs)
    else:
      import joblib  # pylint: disable=g-import-not-at-top
      results = joblib.Parallel(n_jobs=n_jobs, return_as='generator_unordered')(
          joblib.delayed(_run_job)(job, *args) for job in jobs)
    for outcome in results:
      outcomes[outcome.job.relpath] = outcome
      if outcome.status == 'failed':
        bar.write(f'FAILED {outcome.message}')
      bar.update(1)
  finally:
    bar.close()
  return [outcomes[job.relpath] for job in jobs]


def find_complete_examples(dataset_directory):
  """Complete example directories `<dataset>/<split>/<class>/<name>/` (not under optimized/), sorted."""
  import glob  # pylint: disable=g-import-not-at-top
  root = _strip_trailing_slashes(dataset_directory)
  found = []
  for path in glob.glob(f'{glob.escape(root)}/*/*/*/{example.COMPLETION_FILE}'):
    example_dir = os.path.dirname(path) + '/'
    if example.example_identity(example_dir)[0] != RESERVED_SPLIT:
      found.append(example_dir)
  return sorted(found)


def write_split_lists(dataset_directory, example_dirs, splits=()):
  """Writes `<dataset>/<split>.txt` for every split of `example_dirs` (and of `splits`, possibly empty).

  Each file is the sorted list of that split's example directories, one per line, with a trailing newline
  (an empty split gives an empty file).

  Returns:
    dict split -> sorted list of example directories.
  """
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  root = _strip_trailing_slashes(dataset_directory)
  lists = {split: [] for split in splits}
  for example_dir in example_dirs:
    lists.setdefault(example.example_identity(example_dir)[0], []).append(example_dir)
  if RESERVED_SPLIT in lists:
    raise ValueError(f'The keyword "{RESERVED_SPLIT}" cannot be used as a split name; it is reserved.')
  for split in sorted(lists):
    lists[split] = sorted(lists[split])
    with gaps_io.atomic_write(os.path.join(root, f'{split}.txt'), 'w') as f:
      f.write(''.join(f'{d}\n' for d in lists[split]))
  return lists


def shuffled_split(example_dirs, split, seed):
  """The split's examples in shard order: sorted, then permuted with a seed derived from (seed, split)."""
  ordered = sorted(example_dirs)
  order = np.random.default_rng(example.derive_seed(seed, 'shard_shuffle', split)).permutation(len(ordered))
  return [ordered[i] for i in order]


def serialize_example_directory(example_dir, seed):
  """Reads an example directory (seeded 10000-row surface subset); returns a serialized tf.train.Example."""
  key = '/'.join(example.example_identity(example_dir))
  d = example.read_example_directory(example_dir, seed=example.derive_seed(seed, 'surface_subset', key))
  return schema.serialize_example(d, source=example_dir)


def write_optimized(dataset_directory, split_lists, *, seed=DEFAULT_SEED, trample=True, n_jobs=1,
                    progress=True, examples_per_shard=tfrecords.EXAMPLES_PER_SHARD):
  """Writes the GZIP TFRecord shards of every split (port of the `--optimize` part of meshes2dataset.py).

  Per split: the examples in `shuffled_split` order, cut into chunks of 64, one shard per chunk named
  `<split>-%05d-of-%05d.tfrecords` in `<dataset>/optimized/<split>/` (`examples_per_shard` is 64 as the
  original; smaller values are for tests). With `trample` every existing shard of the split (and any directly
  in `optimized/`, as the original) is deleted first; without it, existing shards with a current name are
  kept. In both modes shards that are not part of the current set are deleted.

  Returns:
    dict split -> list of shard paths.
  """
  import joblib  # pylint: disable=g-import-not-at-top
  import tqdm  # pylint: disable=g-import-not-at-top
  root = _strip_trailing_slashes(dataset_directory)
  opt_dir = os.path.join(root, tfrecords.OPTIMIZED_DIR)
  os.makedirs(opt_dir, exist_ok=True)
  if trample:
    tfrecords.remove_shards(opt_dir)
  written = {}
  for split in sorted(split_lists):
    chunks = tfrecords.chunk(shuffled_split(split_lists[split], split, seed), examples_per_shard)
    names = [tfrecords.shard_name(split, i, len(chunks)) for i in range(len(chunks))]
    shard_dir = tfrecords.shard_directory(root, split)
    os.makedirs(shard_dir, exist_ok=True)
    for path in tfrecords.remove_shards(shard_dir, keep=() if trample else names):
      log.verbose(f'Removed stale shard {path}')
    log.info(f'Optimizing split {split}: {len(split_lists[split])} examples in {len(chunks)} shards...')
    paths = []
    for name, members in tqdm.tqdm(list(zip(names, chunks)), desc=f'shards {split}', unit='shard',
                                   disable=not progress):
      path = os.path.join(shard_dir, name)
      paths.append(path)
      if not trample and os.path.isfile(path):
        continue
      if n_jobs > 1:
        records = joblib.Parallel(n_jobs=n_jobs, prefer='threads', return_as='generator')(
            joblib.delayed(serialize_example_directory)(d, seed) for d in members)
      else:
        records = (serialize_example_directory(d, seed) for d in members)
      tfrecords.write_shard(path, records)
    written[split] = paths
  return written


def _failure_text(failure):
  return failure.message if failure.path in failure.message else f'{failure.path}: {failure.message}'


def make_dataset(mesh_directory, dataset_directory, *, skip_existing=True, max_threads=-1, optimize=True,
                 trample_optimized=True, optimize_only=False, seed=DEFAULT_SEED, decode_normals=False,
                 log_level=None, progress=True):
  """Builds (or completes) a dataset; the body of meshes2dataset.py.

  Args:
    mesh_directory: `<root>/<split>/<class>/<name>.<ext>` input meshes (unused with optimize_only).
    dataset_directory: output root.
    skip_existing, max_threads, optimize, trample_optimized, optimize_only: the original's flags.
    seed: run seed (default 2077, the original's); per-mesh and per-split seeds derive from it.
    decode_normals: see `example.depth_and_normals_array`.
    log_level: level name passed to worker processes.
    progress: show tqdm progress bars.

  Returns:
    A `DatasetReport`. Bad meshes do not raise: they are listed in `report.failures` and skipped.

  Raises:
    ValueError: for unusable arguments (missing directories, no usable mesh at all, reserved split names).
  """
  dataset_directory = _strip_trailing_slashes(dataset_directory)
  if not dataset_directory:
    raise ValueError('--dataset_directory is required')
  report = DatasetReport()
  splits = ()
  if optimize_only:
    example_dirs = find_complete_examples(dataset_directory)
    if not example_dirs:
      raise ValueError(f'{dataset_directory}: no complete example directories found for --optimize_only')
  else:
    jobs, input_failures = find_meshes(mesh_directory, dataset_directory)
    report.failures.extend(input_failures)
    for failure in input_failures:
      log.error(_failure_text(failure))
    n_jobs = resolve_job_count(max_threads, len(jobs))
    log.info(f'Making dataset from {len(jobs)} meshes with {n_jobs} workers...')
    outcomes = process_meshes(jobs, seed=seed, skip_existing=skip_existing, decode_normals=decode_normals,
                              n_jobs=n_jobs, log_level=log_level, progress=progress)
    example_dirs = []
    for outcome in outcomes:
      if outcome.status == 'failed':
        report.failures.append(Failure(outcome.job.mesh_path, outcome.message))
        continue
      example_dirs.append(outcome.job.example_dir)
      (report.skipped if outcome.status == 'skipped' else report.written).append(outcome.job.example_dir)
    splits = sorted({job.split for job in jobs})
  report.failures.sort(key=lambda f: f.path)
  log.info('Making dataset registry...')
  report.split_lists = write_split_lists(dataset_directory, example_dirs, splits)
  if optimize:
    log.info('Precomputing optimized tfrecord files...')
    report.shards = write_optimized(dataset_directory, report.split_lists, seed=seed,
                                    trample=trample_optimized, n_jobs=resolve_job_count(max_threads),
                                    progress=progress)
  log.info(f'Done: {len(report.written)} examples written, {len(report.skipped)} already complete, '
           f'{len(report.failures)} failed.')
  if report.failures:
    lines = ''.join(f'\n  {_failure_text(f)}' for f in report.failures)
    log.error(f'{len(report.failures)} input(s) failed and were skipped:{lines}')
  return report

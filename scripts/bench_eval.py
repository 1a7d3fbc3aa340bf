"""Benchmarks SIF/LDIF grid evaluation and mesh extraction; writes a Markdown report.

    python scripts/bench_eval.py --ldif ../shared/reference/ldif2mesh/test-ldif.txt \
        --occnet ../shared/reference/ldif2mesh/extracted.occnet --out /work/plan/bench_eval.md

Measures, for one LDIF (default: the original's ldif2mesh fixture):
  * dense kernel grid (reference §7.4) at 128^3 and 256^3 with the pure-TensorFlow path and the CPU op;
  * a 256^3-resolution mesh with coarse-to-fine extraction, end to end: evaluation + marching cubes + writing
    the .ply (and, for comparison, the same with the dense op grid).
Prints a table with ratios and the command; the machine is shared, so the load average is recorded too.
"""

import os
import pathlib
import platform
import sys
import tempfile
import time

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

# pylint: disable=g-import-not-at-top,wrong-import-position
from gaps_py import io as gaps_io
from ldif.inference import extract_mesh
from ldif.ops import evaluate
from ldif.ops import loader
# pylint: enable=g-import-not-at-top,wrong-import-position

_DEFAULT_REF = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'reference' / 'ldif2mesh'

FLAGS = flags.FLAGS
flags.DEFINE_string('ldif', str(_DEFAULT_REF / 'test-ldif.txt'), 'SIF/LDIF .txt to evaluate.')
flags.DEFINE_string('occnet', str(_DEFAULT_REF / 'extracted.occnet'), 'Decoder .occnet for the LDIF.')
flags.DEFINE_string('out', '', 'Markdown report to write (e.g. /work/plan/bench_eval.md); empty: print only.')
flags.DEFINE_list('resolutions', ['128', '256'], 'Dense grid resolutions.')
flags.DEFINE_integer('tf_max_resolution', 256, 'Largest resolution timed with the (slow) pure-TF path.')
flags.DEFINE_integer('repeats', 3, 'Repeats for the fast paths (best is reported).')
flags.DEFINE_integer('mesh_resolution', 256, 'Resolution of the coarse-to-fine mesh.')


def _best(fn, repeats):
  best = float('inf')
  result = None
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    best = min(best, time.perf_counter() - start)
  return best, result


def _mesh_end_to_end(model, resolution, coarse_to_fine, path):
  mesh = extract_mesh.extract_mesh(model, resolution, coarse_to_fine=coarse_to_fine, use_op=True)
  gaps_io.write_mesh(path, mesh.vertices, mesh.faces)
  return mesh


def main(argv):
  del argv
  module, reason = loader.ensure_op()
  if module is None:
    print(f'bench_eval: the op is not available ({reason}); only pure TF would run', file=sys.stderr)
    return 1
  load_before = os.getloadavg()
  model = evaluate.EvalModel.from_files(FLAGS.ldif, FLAGS.occnet)
  # Warm up both paths (library load, tracing).
  evaluate.evaluate_kernel_grid(model, 16, use_op=True)
  evaluate.evaluate_kernel_grid(model, 16, use_op=False)
  rows = []
  times = {}
  for res in (int(r) for r in FLAGS.resolutions):
    op_s, op_grid = _best(lambda r=res: evaluate.evaluate_kernel_grid(model, r, use_op=True), FLAGS.repeats)
    times[('op', res)] = op_s
    rows.append((f'dense {res}^3 grid, CPU op', op_s, ''))
    if res <= FLAGS.tf_max_resolution:
      tf_s, tf_grid = _best(lambda r=res: evaluate.evaluate_kernel_grid(model, r, use_op=False), 1)
      times[('tf', res)] = tf_s
      diff = float(abs(tf_grid - op_grid).max())
      rows.append((f'dense {res}^3 grid, pure TF', tf_s,
                   f'op is {tf_s / op_s:.1f}x faster; max |diff| {diff:.2g}'))
  with tempfile.TemporaryDirectory() as tmp:
    r = FLAGS.mesh_resolution
    c2f_s, c2f = _best(lambda: _mesh_end_to_end(model, r, True, os.path.join(tmp, 'c2f.ply')), FLAGS.repeats)
    dense_s, dense = _best(lambda: _mesh_end_to_end(model, r, False, os.path.join(tmp, 'dense.ply')), 1)
  same = len(c2f.faces) == len(dense.faces)
  rows.append((f'{r}^3 mesh, coarse-to-fine (eval + MC + .ply), CPU op', c2f_s,
               f'{c2f.evaluations} evaluations = {100.0 * c2f.evaluations / r ** 3:.1f}% of dense; '
               f'{len(c2f.faces)} faces'))
  rows.append((f'{r}^3 mesh, dense (eval + MC + .ply), CPU op', dense_s,
               f'coarse-to-fine is {dense_s / c2f_s:.1f}x faster; same face count: {same}'))
  load_after = os.getloadavg()
  command = ' '.join(['python', 'scripts/bench_eval.py'] + sys.argv[1:])
  lines = [
      '# Evaluation benchmark (ldif.ops)', '',
      f'Shape: `{FLAGS.ldif}` ({model.element_count} elements, {model.symmetry_count} symmetric, latent size '
      f'{model.latent_size}); op library `{loader.op_status()["path"]}`.', '',
      f'Machine: {platform.machine()}, {os.cpu_count()} cores; load average {load_before[0]:.2f} before, '
      f'{load_after[0]:.2f} after (other people\'s processes share these cores, so timings are noisy).', '',
      '| what | seconds | notes |', '|---|---:|---|']
  lines += [f'| {what} | {secs:.3f} | {notes} |' for what, secs, notes in rows]
  lines += ['', f'Command: `{command}`', '']
  report = '\n'.join(lines)
  print(report)
  if FLAGS.out:
    with gaps_io.atomic_write(FLAGS.out, mode='w') as f:
      f.write(report)
  return 0


if __name__ == '__main__':
  app.run(main)

"""Benchmarks the per-mesh dataset processing of meshes2dataset.py on one core.

For each mesh given on the command line it runs exactly what meshes2dataset does per mesh
(`ldif.datasets.make_dataset.process_mesh`: normalization, coarse grid, near-surface and uniform samples,
depth renders, normal images, `depth_and_normals.npz`, `surface_samples_from_dodeca.pts`, every file written)
in a fresh subprocess pinned to one core (`taskset`, `NUMBA_NUM_THREADS=1`, BLAS threads 1), and prints:

- the median wall seconds of 3 runs after a warm-up run, and the per-step medians;
- the peak resident memory of that subprocess (`ru_maxrss`, includes the interpreter and imports);
- once, the numba cost: the first call in a fresh process with an empty numba cache (compilation) and with the
  cache filled (cache loading), against the steady-state time.

Reference (GAPS, `process_mesh_local.sh`, 2 cores idle, /work/shared/reference/gaps/timings.md): bob 9.2 s,
blub 9.8 s, elephant 7.5 s, cow 6.9 s per mesh. Target: median <= 2.0 s per mesh on one core, peak <= 1 GB.

Usage:
    python scripts/bench_preprocess.py ../shared/reference/meshes/bob.ply \
        ../shared/reference/meshes/blub.ply /work/cgal/data/meshes/elephant.off /work/cgal/data/meshes/cow.off
"""

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GAPS_SECONDS = {'bob': 9.192, 'blub': 9.848, 'elephant': 7.575, 'cow': 6.918}  # timings.md, run_one.sh median
TARGET_SECONDS = 2.0
TARGET_RSS_MIB = 1024.0
STEPS = ('load', 'msh2msh', 'msh2df', 'msh2pts_nss', 'msh2pts_uniform', 'scn2img', 'conf2img', 'npz',
         'surface_samples')


def _child(mesh_path, runs):
  """Runs in the pinned subprocess: warm-up + `runs` timed runs; prints one JSON line."""
  start = time.perf_counter()
  sys.path.insert(0, PROJECT_ROOT)
  from ldif.datasets import make_dataset  # pylint: disable=g-import-not-at-top
  from ldif.util import log  # pylint: disable=g-import-not-at-top
  log.set_level('error')
  import_seconds = time.perf_counter() - start
  seeds = make_dataset.mesh_seeds(make_dataset.DEFAULT_SEED, os.path.basename(mesh_path))
  work = tempfile.mkdtemp(prefix='bench_preprocess_')
  try:
    totals, steps = [], []
    for i in range(runs + 1):
      out = os.path.join(work, f'run{i}', 'train', 'c', 'x')
      timings = {}
      t0 = time.perf_counter()
      make_dataset.process_mesh(mesh_path, out, seeds=seeds, skip_existing=False, timings=timings)
      totals.append(time.perf_counter() - t0)
      steps.append(timings)
      shutil.rmtree(os.path.join(work, f'run{i}'))
  finally:
    shutil.rmtree(work, ignore_errors=True)
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  _, faces = gaps_io.load_mesh(mesh_path)
  print(json.dumps({
      'first': totals[0], 'runs': totals[1:], 'steps': steps[1:], 'first_steps': steps[0],
      'import_s': import_seconds, 'faces': int(len(faces)),
      'maxrss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
  }))


def _pinned_command(cpu, argv):
  prefix = ['taskset', '-c', str(cpu)] if cpu is not None and shutil.which('taskset') else []
  return prefix + [sys.executable, os.path.abspath(__file__)] + argv


def _run_child(mesh, runs, cpu, cache_dir=None):
  env = dict(os.environ, NUMBA_NUM_THREADS='1', OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1',
             MKL_NUM_THREADS='1', TF_CPP_MIN_LOG_LEVEL='2')
  if cache_dir:
    env['NUMBA_CACHE_DIR'] = cache_dir
  cmd = _pinned_command(cpu, ['--child', mesh, '--runs', str(runs)])
  result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=PROJECT_ROOT)
  if result.returncode != 0:
    raise RuntimeError(f'benchmark of {mesh} failed:\n{result.stderr[-4000:]}')
  return json.loads(result.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('meshes', nargs='*', help='mesh files (.ply/.obj/.off/.stl)')
  parser.add_argument('--runs', type=int, default=3, help='timed runs after the warm-up (median reported)')
  parser.add_argument('--cpu', type=int, default=0, help='core to pin to with taskset (-1: no pinning)')
  parser.add_argument('--no_compile', action='store_true', help='skip the numba compile-time measurement')
  parser.add_argument('--child', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    _child(args.child, args.runs)
    return 0
  if not args.meshes:
    parser.error('give at least one mesh file')
  cpu = None if args.cpu < 0 else args.cpu
  meshes = [os.path.abspath(m) for m in args.meshes]
  for m in meshes:
    if not os.path.isfile(m):
      parser.error(f'{m}: no such file')
  load = os.getloadavg()
  print(f'bench_preprocess: {len(meshes)} meshes, {args.runs} runs after a warm-up, one core '
        f'(taskset -c {cpu}, NUMBA_NUM_THREADS=1); load average at start '
        f'{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}')
  rows, over = [], False
  for m in meshes:
    r = _run_child(m, args.runs, cpu)
    name = os.path.splitext(os.path.basename(m))[0]
    median = statistics.median(r['runs'])
    gaps = GAPS_SECONDS.get(name)
    rows.append((name, r, median, gaps))
    over |= median > TARGET_SECONDS or r['maxrss_mib'] > TARGET_RSS_MIB
  print()
  print(f'{"mesh":<10} {"faces":>7} {"median_s":>9} {"runs_s":<22} {"warmup_s":>9} {"peak_MiB":>9} '
        f'{"GAPS_s":>7} {"speedup":>8} {"target":>7}')
  for name, r, median, gaps in rows:
    ok = median <= TARGET_SECONDS and r['maxrss_mib'] <= TARGET_RSS_MIB
    runs = ','.join(f'{t:.2f}' for t in r['runs'])
    print(f'{name:<10} {r["faces"]:>7} {median:>9.3f} {runs:<22} {r["first"]:>9.3f} {r["maxrss_mib"]:>9.0f} '
          f'{gaps if gaps else float("nan"):>7.2f} {(gaps / median) if gaps else float("nan"):>7.1f}x '
          f'{"ok" if ok else "OVER":>7}')
  print()
  print('per-step medians (s):')
  print(f'{"mesh":<10} ' + ' '.join(f'{s:>15}' for s in STEPS))
  for name, r, _, _ in rows:
    med = [statistics.median(t.get(s, 0.0) for t in r['steps']) for s in STEPS]
    print(f'{name:<10} ' + ' '.join(f'{v:>15.3f}' for v in med))
  if not args.no_compile:
    print()
    cache = tempfile.mkdtemp(prefix='bench_numba_cache_')
    try:
      cold = _run_child(meshes[0], 1, cpu, cache_dir=cache)
      warm = _run_child(meshes[0], 1, cpu, cache_dir=cache)
    finally:
      shutil.rmtree(cache, ignore_errors=True)
    steady = statistics.median(rows[0][1]['runs'])
    print(f'numba ({os.path.basename(meshes[0])}): first call with an empty cache {cold["first"]:.2f} s, '
          f'with the cache filled {warm["first"]:.2f} s, steady state {steady:.2f} s '
          f'-> compile ~{cold["first"] - steady:.2f} s, cache load ~{warm["first"] - steady:.2f} s '
          f'(imports {warm["import_s"]:.2f} s)')
    print('  first-call seconds per step, empty cache: ' +
          ', '.join(f'{s} {cold["first_steps"].get(s, 0.0):.2f}' for s in STEPS))
  print()
  argv = [os.path.relpath(__file__, PROJECT_ROOT)] + [shlex.quote(m) for m in args.meshes]
  if args.runs != 3:
    argv += ['--runs', str(args.runs)]
  print(f'reproduce: cd {shlex.quote(PROJECT_ROOT)} && python ' + ' '.join(argv))
  return 1 if over else 0


if __name__ == '__main__':
  sys.exit(main())

"""Finds, builds and loads the LDIF/SIF evaluation op library (ldif/ops/kernels, built by
scripts/build_kernel.sh).

`load_op()` returns the loaded op module (with `ldif_eval_points` and `ldif_eval_grid`) or None when no
library is
built or it cannot be loaded; callers then use the pure-TensorFlow path (`ldif.ops.evaluate`). Which one is
used
is logged once per process. The environment variable `LDIF_DISABLE_OP=1` forces the pure-TensorFlow path.

Libraries, in `ldif/ops/build/`:
  ldif_eval_ops_gpu.so  CPU + CUDA kernels (built when TensorFlow is a CUDA build and nvcc exists); loaded
  when
                        TensorFlow sees a GPU.
  ldif_eval_ops.so      CPU kernels; loaded otherwise (or when the GPU library fails to load).
"""

import os
import pathlib
import shutil
import subprocess
import threading

from ldif.util import log

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent
BUILD_DIR = PACKAGE_DIR / 'build'
CPU_LIBRARY = BUILD_DIR / 'ldif_eval_ops.so'
GPU_LIBRARY = BUILD_DIR / 'ldif_eval_ops_gpu.so'
BUILD_SCRIPT = PACKAGE_DIR.parents[1] / 'scripts' / 'build_kernel.sh'
KERNEL_SOURCES = tuple(sorted((PACKAGE_DIR / 'kernels').glob('*')))

_lock = threading.Lock()
_state = {'loaded': False, 'module': None, 'path': None, 'reason': ''}


def _gpu_visible():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return bool(tf.config.list_physical_devices('GPU'))
  except RuntimeError:
    return False


def library_is_stale(path=CPU_LIBRARY):
  """True if `path` is missing or older than any kernel source file."""
  if not path.is_file():
    return True
  built = path.stat().st_mtime
  return any(src.stat().st_mtime > built for src in KERNEL_SOURCES)


def build_op(*, cuda=False, quiet=True):
  """Runs scripts/build_kernel.sh (CPU library; also the CUDA one when `cuda` and possible).

  Returns:
    (ok: bool, message: str): message is the build output's tail on failure, or why nothing was built.
  """
  if shutil.which(os.environ.get('CXX', 'g++')) is None:
    return False, 'g++ is not installed, so the op cannot be built'
  env = dict(os.environ)
  if not cuda:
    env['LDIF_NO_CUDA'] = '1'
  env.setdefault('PYTHON', _python_executable())
  proc = subprocess.run(['bash', str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    return False, (proc.stdout + proc.stderr)[-4000:]
  if not quiet:
    log.info('%s', proc.stdout.strip())
  return True, ''


def _python_executable():
  import sys  # pylint: disable=g-import-not-at-top
  return sys.executable


def load_op(*, reload=False):
  """Loads the op library once per process.

  Returns:
    The module from `tf.load_op_library` (functions `ldif_eval_points`, `ldif_eval_grid`), or None (then the
    reason is in `op_status()`); the choice is logged at info level the first time.
  """
  with _lock:
    if _state['loaded'] and not reload:
      return _state['module']
    _state.update(loaded=True, module=None, path=None, reason='')
    if os.environ.get('LDIF_DISABLE_OP', '') not in ('', '0'):
      _state['reason'] = 'disabled by LDIF_DISABLE_OP'
    else:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      candidates = []
      if GPU_LIBRARY.is_file() and _gpu_visible():
        candidates.append(GPU_LIBRARY)
      if CPU_LIBRARY.is_file():
        candidates.append(CPU_LIBRARY)
      errors = []
      for path in candidates:
        try:
          _state['module'] = tf.load_op_library(str(path))
          _state['path'] = str(path)
          break
        except (tf.errors.NotFoundError, OSError) as e:
          errors.append(f'{path.name}: {e}')
      if _state['module'] is None:
        _state['reason'] = ('; '.join(errors) if errors else
                            f'no op library in {BUILD_DIR} (run scripts/build_kernel.sh)')
    if _state['module'] is not None:
      log.info('ldif.ops: evaluating SIFs/LDIFs with the custom op %s', _state['path'])
    else:
      log.info('ldif.ops: using the pure-TensorFlow evaluation path (%s)', _state['reason'])
    return _state['module']


def op_status():
  """dict(available: bool, path: str | None, reason: str) after `load_op()` (loads it if needed)."""
  module = load_op()
  return {'available': module is not None, 'path': _state['path'], 'reason': _state['reason']}


def ensure_op(*, build=True):
  """Builds the CPU op library if it is missing or older than its sources (when `build`), then loads it.

  For tests and tools that need the op. Returns (module or None, reason): reason says why there is no op
  (g++ missing, build failed, load failed).
  """
  if build and library_is_stale(CPU_LIBRARY):
    ok, message = build_op(cuda=False)
    if not ok:
      return None, f'building the op failed: {message}'
    module = load_op(reload=True)
  else:
    module = load_op()
  return module, '' if module is not None else op_status()['reason']

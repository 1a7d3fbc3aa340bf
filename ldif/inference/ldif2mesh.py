"""Evaluates a SIF/LDIF `.txt` (+ `.occnet` decoder) on the kernel grid and writes a GAPS `.grd`.

Port of the original's `ldif2mesh` CUDA binary (`ldif/ldif2mesh/ldif2mesh.cu`, reference §7.4)::

    python -m ldif.inference.ldif2mesh LDIF.txt DECODER.occnet OUT.grd -resolution 128
    python -m gaps_py.grd2msh OUT.grd OUT.ply -threshold -0.07

The grid holds F (raw, no class transfer) at the kernel's sample positions
p(i) = -0.75 + 1.5 (0.5 + (R - 0.5) i / R) / R along each axis (index order [z][y][x]); like the original, the
`.grd` stores an identity world-to-grid matrix, so meshes from grd2msh are in grid-index coordinates (map
index i
to the gaps frame with p(i), or with the original's marching-cubes mapping, reference §7.3).

Flags: `-resolution N` (1..1024, default 256 as the original), `--use_inference_kernel` (default: use the
custom
op `ldif.ops` when it is built, else fall back to pure TensorFlow with a log line) or
`--nouse_inference_kernel`
(pure TensorFlow), `-v` (verbose log). The `.occnet` is read only when the `.txt` has latents (for SIFs any
path
may be given, as in the original). Errors (bad files, latent sizes that don't match, bad resolution) are
reported on stderr with exit status 1.
"""

import sys
import time

import numpy as np

from ldif.util import log

_USAGE = ('usage: python -m ldif.inference.ldif2mesh LDIF.txt DECODER.occnet OUT.grd [-resolution N] '
          '[--use_inference_kernel | --nouse_inference_kernel] [-v]')

DEFAULT_RESOLUTION = 256


def ldif_grid(txt_path, occnet_path, resolution=DEFAULT_RESOLUTION, *, use_inference_kernel=True):
  """F of the SIF/LDIF in `txt_path` on the kernel's R^3 grid.

  Args:
    txt_path: SIF v1 `.txt` (gaps frame).
    occnet_path: `.occnet` decoder weights (read only if the `.txt` has latents).
    resolution: R in [1, 1024].
    use_inference_kernel: True: the custom op if it is built (else pure TF, logged); False: pure TF.

  Returns:
    (values float32 [R, R, R] indexed [z][y][x], world2grid float32 [4, 4] identity) as the original writes.

  Raises:
    ValueError naming the file and the problem (malformed files, NaN parameters, latent-size mismatch,
    resolution outside [1, 1024]).
  """
  from ldif.ops import evaluate  # pylint: disable=g-import-not-at-top
  evaluate.check_resolution(resolution)
  model = evaluate.EvalModel.from_files(txt_path, occnet_path)
  use_op = None if use_inference_kernel else False
  log.verbose(f'{txt_path}: {model.element_count} elements, latent size {model.latent_size}, '
              f'{model.symmetry_count} symmetric; evaluating {resolution}^3 with the '
              f'{evaluate.path_in_use(model) if use_op is None else "tf"} path')
  values = evaluate.evaluate_kernel_grid(model, int(resolution), use_op=use_op)[0]
  return values, np.eye(4, dtype=np.float32)


def _parse_bool(text, flag):
  value = text.strip().lower()
  if value in ('1', 'true', 't', 'yes'):
    return True
  if value in ('0', 'false', 'f', 'no'):
    return False
  raise ValueError(f'bad boolean value {text!r} for {flag}')


def parse_args(argv):
  """Parses the CLI arguments. Returns dict(paths=[txt, occnet, grd], resolution, use_inference_kernel).

  Raises:
    ValueError: unknown flag, missing value, wrong number of paths, non-integer resolution.
  """
  args = list(argv)
  paths = []
  resolution = DEFAULT_RESOLUTION
  use_kernel = True
  while args:
    a = args.pop(0)
    name, eq, inline = a.partition('=')
    if name in ('-resolution', '--resolution'):
      text = inline if eq else (args.pop(0) if args else None)
      if text is None:
        raise ValueError('missing value after -resolution')
      try:
        resolution = int(text)
      except ValueError:
        raise ValueError(f'-resolution must be an integer, got {text!r}') from None
    elif name in ('--use_inference_kernel', '-use_inference_kernel'):
      use_kernel = _parse_bool(inline, name) if eq else True
    elif name in ('--nouse_inference_kernel', '-nouse_inference_kernel') and not eq:
      use_kernel = False
    elif name == '-v' and not eq:
      log.set_level('verbose')
    elif a.startswith('-') and a != '-':
      raise ValueError(f'unknown flag {a}')
    else:
      paths.append(a)
  if len(paths) != 3:
    raise ValueError(f'expected 3 paths (LDIF.txt DECODER.occnet OUT.grd), got {len(paths)}')
  return {'paths': paths, 'resolution': resolution, 'use_inference_kernel': use_kernel}


def main(argv=None):
  """CLI entry point (flags as the original binary plus the inference-kernel switch). Returns the exit
  status."""
  argv = sys.argv[1:] if argv is None else argv
  try:
    opts = parse_args(argv)
  except ValueError as e:
    print(f'ldif2mesh: {e}\n{_USAGE}', file=sys.stderr)
    return 1
  txt_path, occnet_path, grd_path = opts['paths']
  start = time.perf_counter()
  try:
    values, world2grid = ldif_grid(txt_path, occnet_path, opts['resolution'],
                                   use_inference_kernel=opts['use_inference_kernel'])
    eval_done = time.perf_counter()
    from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
    gaps_io.write_grd(grd_path, values, world2grid)
  except (ValueError, RuntimeError, OSError) as e:
    print(f'ldif2mesh: error: {e}', file=sys.stderr)
    return 1
  except Exception as e:  # pylint: disable=broad-except
    # Anything else (e.g. a TensorFlow error from the op) is still reported, not a crash.
    print(f'ldif2mesh: error: {type(e).__name__}: {e}', file=sys.stderr)
    return 1
  stop = time.perf_counter()
  print(f'Completed in {1000 * (stop - start):.1f} milliseconds ({1000 * (eval_done - start):.1f} ms '
        'evaluation) '
        f'-> {grd_path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())

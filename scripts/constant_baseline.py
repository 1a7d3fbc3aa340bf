"""Scores constant-output 'models' with eval.py's pipeline: the floor any trained model must beat.

Two baselines (`ldif.inference.evaluate.ConstantEncoder`): 'outside' (F = 0 everywhere, IoU 0) and 'inside'
(F = -1 everywhere, IoU = the fraction of the +-0.7 sample box inside the shape). Neither has a surface, so
their meshes are the original's fallback sphere (radius 0.5 in the gaps frame), mapped to the mesh frame as
eval.py does; their Chamfer-L2, F-scores and normal consistency are that sphere's.

Usage:
  python scripts/constant_baseline.py --dataset_directory D [--split train] [--resolution 64] [--seed 0]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--dataset_directory', required=True)
  parser.add_argument('--split', default='train')
  parser.add_argument('--resolution', type=int, default=64,
                      help='marching-cubes resolution (no surface is found either way)')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  # pylint: disable=g-import-not-at-top
  from ldif.inference import evaluate
  from ldif.inference import metrics
  from ldif.util import log
  # pylint: enable=g-import-not-at-top
  log.set_level('warning')
  print('command: python scripts/constant_baseline.py ' + ' '.join(
      f'--{k} {v}' for k, v in vars(args).items()))
  for kind in ('outside', 'inside'):
    start = time.perf_counter()
    options = evaluate.EvalOptions(resolution=args.resolution, seed=args.seed)
    result = evaluate.evaluate_split(evaluate.ConstantEncoder(kind), args.dataset_directory, args.split,
                                     options, progress=False)
    print(f'\nconstant "{kind}" model, split {args.split} ({time.perf_counter() - start:.1f} s):')
    print(metrics.format_table(result.tables.full))
    print(metrics.format_table(result.tables.summary))


if __name__ == '__main__':
  main()

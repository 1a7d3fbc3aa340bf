"""Helpers shared by test files in different folders.

Imported by bare name (`from testutil import ...`): pytest's default (prepend) import mode puts `tests/` on
sys.path when it loads tests/conftest.py, as it puts each test file's folder there (which is how
tests/gaps_py/geometry_meshes.py is found).
"""

import numpy as np
import pytest


def random_occnet_weights(rng, latent_size=32, width=32):
  """Random OccNet decoder weights in the pinned dict layout (`occnet_weight_shapes`), float32.

  Kernels and biases ~ N(0, 0.3), running means ~ N(0, 0.1), running variances ~ U(0.05, 0.5) (positive).
  `rng` is a numpy Generator; keys and shapes as `ldif.representation.structured_implicit_function`.
  """
  # Imported here, so that importing this module does not load TF. pylint: disable=g-import-not-at-top
  from ldif.representation import structured_implicit_function as sif_lib
  weights = {}
  for name, shape in sif_lib.occnet_weight_shapes(latent_size, width).items():
    if name.endswith('running_mean'):
      weights[name] = rng.normal(0.0, 0.1, size=shape).astype(np.float32)
    elif name.endswith('running_variance'):
      weights[name] = rng.uniform(0.05, 0.5, size=shape).astype(np.float32)
    else:
      weights[name] = rng.normal(0.0, 0.3, size=shape).astype(np.float32)
  return weights


def assert_read_error(read, path, match, content=None):
  """Checks that `read(path)` raises a ValueError matching the regex `match` whose message names `path`.

  `content` (str or bytes), if given, is written to `path` first. Returns the exception.
  """
  if isinstance(content, str):
    path.write_text(content)
  elif content is not None:
    path.write_bytes(content)
  with pytest.raises(ValueError, match=match) as info:
    read(path)
  assert str(path) in str(info.value)
  return info.value

"""The representation reproduces the original's torch test values (reference §8) on the shipped SIF files."""

import numpy as np
import pytest
import tensorflow as tf

from ldif.representation import numpy_twin
from ldif.representation import sif_file
from ldif.representation import structured_implicit_function as sif

SAMPLE = [0.02, 0.008, -0.05]
B831 = 'b831f60f211435df5bbc861d0124304c.txt'
B7EE = 'b7eefc4c25dd9e49238581dd5a8af82c.txt'


def load(path, symmetry_count=None):
  f = sif_file.read_sif_txt(path)
  sym = f.symmetry_count if symmetry_count is None else symmetry_count
  packed = f.packed()[np.newaxis]
  return (sif.StructuredImplicit.from_packed(tf.constant(packed), radius_type='cov', symmetry_count=sym),
          numpy_twin.StructuredImplicitNp.from_packed(packed, radius_type='cov', symmetry_count=sym))


def test_values_of_the_original_torch_test(reference_dir):
  torch_dir = reference_dir / 'torch'
  tf_sif, np_sif = load(torch_dir / B831)
  assert tf_sif.symmetry_count == 16 and tf_sif.element_count == 32
  assert tf_sif.constants.numpy()[0, 4, 0] == pytest.approx(-0.028, abs=5e-4)
  assert tf_sif.radii.numpy()[0, 4, 1] == pytest.approx(0.000352, abs=5e-7)
  assert tf_sif.radii.numpy()[0, 4, 5] == pytest.approx(-0.0532, abs=5e-5)
  point = np.array([[SAMPLE]], np.float32)
  assert tf_sif.implicit_values(point).numpy()[0, 0, 0] == pytest.approx(-0.238868, abs=1e-5)
  assert np_sif.implicit_values(point)[0, 0, 0] == pytest.approx(-0.238868, abs=1e-5)
  # The symmetric-free file, with symmetry forced to 0.
  tf_nosym, _ = load(torch_dir / 'sif-nosym.txt', symmetry_count=0)
  assert tf_nosym.implicit_values(point).numpy()[0, 0, 0] == pytest.approx(-0.0547159, abs=1e-7)
  # The batch of two files at two samples.
  points = np.array([SAMPLE, [0.0, 0.0, 0.0]], np.float32)[np.newaxis]
  expected = {B7EE: [-0.126568, -0.11410], B831: [-0.238868, -0.590321]}
  for name, values in expected.items():
    tf_sif, np_sif = load(torch_dir / name)
    np.testing.assert_allclose(tf_sif.implicit_values(points).numpy()[0, :, 0], values, atol=1e-5)
    np.testing.assert_allclose(np_sif.implicit_values(points)[0, :, 0], values, atol=1e-5)
    assert tf_sif.tiled_world2local().shape == (1, 48, 4, 4)

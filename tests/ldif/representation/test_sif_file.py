"""Tests for ldif/representation/sif_file.py: SIF v1 .txt and .occnet round trips, reference files, errors."""

import struct

import numpy as np
import pytest

from ldif.representation import sif_file
from testutil import assert_read_error


def _random_ldif(rng, e=5, l=4, sym=2):
  constants = -rng.uniform(0.01, 0.2, e).astype(np.float32)
  centers = rng.uniform(-0.4, 0.4, [e, 3]).astype(np.float32)
  radii = np.concatenate([rng.uniform(1e-4, 0.02, [e, 3]), rng.uniform(-0.7, 0.7, [e, 3])], 1)
  radii = radii.astype(np.float32)
  latents = rng.normal(0, 3, [e, l]).astype(np.float32) if l else None
  return constants, centers, radii, sym, latents


def _random_weights(rng, w=8, l=4):
  flat = rng.normal(0, 0.3, sif_file.occnet_float_count(w, l)).astype(np.float32)
  return sif_file.unflatten_occnet(flat, w, l)


def test_txt_round_trip_ldif(tmp_path, rng):
  constants, centers, radii, sym, latents = _random_ldif(rng)
  path = tmp_path / 'a.txt'
  sif_file.write_sif_txt(path, constants, centers, radii, sym, latents, 'cov')
  got = sif_file.read_sif_txt(path)
  assert got.element_count == 5 and got.latent_size == 4 and got.symmetry_count == 2
  np.testing.assert_array_equal(got.constants, constants)
  np.testing.assert_array_equal(got.centers, centers)
  np.testing.assert_array_equal(got.rotations, radii[:, 3:])
  np.testing.assert_allclose(got.variances, radii[:, :3], rtol=1e-6)
  np.testing.assert_array_equal(got.latents, latents)
  # Writing what was read reproduces the file byte for byte.
  path2 = tmp_path / 'b.txt'
  sif_file.write_sif_file(path2, got)
  assert path2.read_bytes() == path.read_bytes()
  lines = path.read_text().splitlines()
  assert lines[:2] == ['SIF', '5 0 4']
  assert [row.split()[10] for row in lines[2:]] == ['1', '1', '0', '0', '0']
  assert all(len(row.split()) == 15 for row in lines[2:])


def test_txt_aa_padding_and_sif(tmp_path, rng):
  constants, centers, radii, _, _ = _random_ldif(rng, e=3, l=0)
  path = tmp_path / 'aa.txt'
  sif_file.write_sif_txt(path, constants, centers, radii[:, :3], 0, None, 'aa')
  rows = path.read_text().splitlines()
  assert rows[1] == '3 0 0'
  for row in rows[2:]:
    tokens = row.split()
    assert len(tokens) == 11 and tokens[7:10] == ['0', '0', '0'] and tokens[10] == '0'
  got = sif_file.read_sif_txt(path)
  assert got.latents is None and got.symmetry_count == 0
  np.testing.assert_array_equal(got.rotations, 0)
  # sigma = sqrt(variance), written %.9g.
  assert rows[2].split()[4] == f'{float(np.sqrt(radii[0, 0])):.9g}'


def test_txt_iso_refused(tmp_path):
  with pytest.raises(ValueError, match="iso"):
    sif_file.write_sif_txt(tmp_path / 'x.txt', [-0.1], [[0, 0, 0]], [[0.01]], 0, None, 'iso')
  assert not (tmp_path / 'x.txt').exists()


def test_txt_writer_rejects_bad_input(tmp_path):
  with pytest.raises(ValueError, match='centers has shape'):
    sif_file.write_sif_txt(tmp_path / 'x.txt', [-0.1, -0.1], [[0, 0, 0]], np.zeros([2, 6]), 0)
  with pytest.raises(ValueError, match='symmetry_count'):
    sif_file.write_sif_txt(tmp_path / 'x.txt', [-0.1], [[0, 0, 0]], np.zeros([1, 6]), 2)
  with pytest.raises(ValueError, match='NaN'):
    sif_file.write_sif_txt(tmp_path / 'x.txt', [np.nan], [[0, 0, 0]], np.zeros([1, 6]), 0)


def test_reads_reference_files_byte_exact(reference_dir):
  cases = {'ldif2mesh/test-ldif.txt': (32, 32, 16), 'ldif2mesh/test-sif.txt': (32, 0, 0),
           'torch/b831f60f211435df5bbc861d0124304c.txt': (32, 0, 16),
           'torch/b7eefc4c25dd9e49238581dd5a8af82c.txt': (32, 0, 16), 'torch/sif-nosym.txt': (32, 0, 0)}
  for name, (e, l, sym) in cases.items():
    path = reference_dir / name
    got = sif_file.read_sif_txt(path)
    assert (got.element_count, got.latent_size, got.symmetry_count) == (e, l, sym), name
    text = sif_file.encode_sif_txt(got.constants, got.centers, got.radii, got.symmetry_count, got.latents)
    assert text == path.read_text(), name
  got = sif_file.read_sif_txt(reference_dir / 'torch/b831f60f211435df5bbc861d0124304c.txt')
  # Reference §8 (sif_test.py) values.
  assert got.constants.dtype == np.float32
  assert round(float(got.constants[4]), 3) == -0.028
  assert round(float(got.variances[4, 1]), 6) == 0.000352
  assert round(float(got.rotations[4, 2]), 4) == -0.0532


def test_reads_reference_occnet(reference_dir, tmp_path):
  path = reference_dir / 'ldif2mesh/extracted.occnet'
  weights = sif_file.read_occnet(path)
  assert set(weights) == set(sif_file.OCCNET_KEYS)
  assert weights['sample_resize_fc/kernel'].shape == (3, 32)
  assert weights['final_activation/kernel'].shape == (32, 1)
  assert sif_file.occnet_dims(weights) == (32, 32)
  raw = path.read_bytes()
  assert len(raw) == 34468
  # Spot-check the layout: the first kernel value and the last (final bias) value.
  assert weights['sample_resize_fc/kernel'][0, 0] == struct.unpack('<f', raw[8:12])[0]
  assert weights['final_activation/bias'][0] == struct.unpack('<f', raw[-4:])[0]
  out = tmp_path / 'copy.occnet'
  sif_file.write_occnet(out, weights)
  assert out.read_bytes() == raw


def test_occnet_round_trip_other_sizes(tmp_path, rng):
  for w, l in [(8, 4), (16, 16), (32, 7)]:
    weights = _random_weights(rng, w, l)
    path = tmp_path / f'{w}_{l}.occnet'
    sif_file.write_occnet(path, weights)
    assert path.stat().st_size == 8 + 4 * sif_file.occnet_float_count(w, l)
    got = sif_file.read_occnet(path)
    assert sif_file.occnet_dims(got) == (w, l)
    for key in sif_file.OCCNET_KEYS:
      np.testing.assert_array_equal(got[key], weights[key])


@pytest.mark.parametrize('text,match', [
    ('', 'empty file'),
    ('SIFF\n1 0 0\n', 'bad header'),
    ('SIF\n', 'count line'),
    ('SIF\n1 0\n', 'bad count line'),
    ('SIF\n1 1 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 0\n', 'version'),
    ('SIF\n2 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 0\n', 'truncated file'),
    ('SIF\n1 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 0\n', 'wrong counts'),
    ('SIF\n1 0 2\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 0 1.0\n', 'has 12 values; expected 13'),
    ('SIF\n1 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 2\n', 'symmetry flag'),
    ('SIF\n2 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 1\n', 'follows an unflagged'),
    ('SIF\n1 0 0\n-0.1 0 0 nan 0.1 0.1 0.1 0 0 0 0\n', 'NaN'),
    ('SIF\n1 0 0\n-0.1 0 0 x 0.1 0.1 0.1 0 0 0 0\n', 'not a number'),
    ('SIF\n1 0 0\n-0.1 0 0 0 -0.1 0.1 0.1 0 0 0 0\n', 'negative radius'),
])
def test_txt_errors_name_file_and_problem(tmp_path, text, match):
  assert_read_error(sif_file.read_sif_txt, tmp_path / 'bad.txt', match, text)


def test_txt_all_flagged_and_missing_file(tmp_path):
  path = tmp_path / 'sym.txt'
  path.write_text('SIF\n2 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 1\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 1\n')
  assert sif_file.read_sif_txt(path).symmetry_count == 2
  assert_read_error(sif_file.read_sif_txt, tmp_path / 'absent.txt', 'cannot read')


def test_occnet_errors(tmp_path, rng):
  weights = _random_weights(rng, 8, 8)
  good = tmp_path / 'good.occnet'
  sif_file.write_occnet(good, weights)
  raw = good.read_bytes()
  cases = {
      'short.occnet': (raw[:5], 'shorter than the 8-byte header'),
      'layers.occnet': (struct.pack('<ii', 2, 8) + raw[8:], 'residual layers'),
      'width.occnet': (struct.pack('<ii', 1, 0) + raw[8:], 'hidden width'),
      'cut.occnet': (raw[:-4], 'does not match the header'),
      'odd.occnet': (raw[:-2], 'whole number'),
      'nan.occnet': (raw[:-4] + struct.pack('<f', np.nan), 'NaN'),
  }
  for name, (data, match) in cases.items():
    assert_read_error(sif_file.read_occnet, tmp_path / name, match, data)
  with pytest.raises(ValueError, match='latent size 32'):
    sif_file.read_occnet(good, latent_size=32)
  bad = dict(weights)
  bad['fc_1/kernel'] = np.zeros([8, 7], np.float32)
  with pytest.raises(ValueError, match='fc_1/kernel'):
    sif_file.write_occnet(tmp_path / 'x.occnet', bad)
  del bad['fc_2/bias']
  with pytest.raises(ValueError, match='lack'):
    sif_file.write_occnet(tmp_path / 'x.occnet', bad)

"""Decoder evaluation (points, IoU, grids), mesh extraction conventions and the mesh-frame mapping."""

import numpy as np
import pytest
import tensorflow as tf

from ldif.inference import predict
from ldif.representation import numpy_twin
from ldif.representation import structured_implicit_function as sif_lib
from testutil import random_occnet_weights

LEVEL = -0.07


def sphere_decoder(variance=0.01, center=(0.0, 0.0, 0.0), chunk_size=None):
  """One axis-aligned unit-constant element: F(x) = -exp(-|x - mu|^2 / (2 v)), a sphere at level -0.07."""
  packed = np.array([[[-1.0, *center, variance, variance, variance]]], np.float32)
  return predict.Decoder.from_packed(packed, radius_type='aa', symmetry_count=0, chunk_size=chunk_size)


def sphere_radius(variance=0.01):
  return float(np.sqrt(2.0 * variance * np.log(1.0 / 0.07)))


def test_grid_sample_coordinates_match_the_original_formulas():
  r, e = 4, 0.75
  np.testing.assert_allclose(predict.grid_sample_coordinates(r, e, 'aligned'), [-0.75, -0.375, 0.0, 0.375])
  # TF path: -E + (2E/R)(i + 0.5) - 0.5/R.
  np.testing.assert_allclose(predict.grid_sample_coordinates(r, e, 'tf'),
                             [-0.5625 - 0.125, -0.1875 - 0.125, 0.1875 - 0.125, 0.5625 - 0.125], atol=1e-7)
  # Kernel: -0.75 + 1.5 (0.5 + 3.5 i / 4) / 4.
  np.testing.assert_allclose(predict.grid_sample_coordinates(r, e, 'kernel'),
                             [-0.5625, -0.234375, 0.09375, 0.421875], atol=1e-7)
  # The constant TF shift relative to the marching-cubes mapping is (E - 0.5) / R.
  diff = (predict.grid_sample_coordinates(256, e, 'tf') - predict.grid_sample_coordinates(256, e, 'aligned'))
  np.testing.assert_allclose(diff, 0.25 / 256, atol=1e-6)
  with pytest.raises(ValueError, match='positions'):
    predict.grid_sample_coordinates(8, e, 'centered')


@pytest.mark.parametrize('radius_type,symmetry_count', [('aa', 0), ('cov', 3), ('iso', 2)])
def test_sif_values_match_numpy_twin_across_chunks(rng, radius_type, symmetry_count):
  act = rng.normal(size=(1, 7, sif_lib.explicit_element_dim(radius_type))).astype(np.float32)
  twin = numpy_twin.StructuredImplicitNp.from_activation(act, radius_type=radius_type,
                                                        symmetry_count=symmetry_count)
  decoder = predict.Decoder.from_packed(twin.packed().astype(np.float32), radius_type=radius_type,
                                        symmetry_count=symmetry_count, chunk_size=100)
  points = rng.uniform(-0.7, 0.7, size=(257, 3)).astype(np.float32)
  expected = twin.implicit_values(points[None])[0, :, 0]
  np.testing.assert_allclose(decoder.implicit_values(points), expected, atol=1e-5)
  np.testing.assert_allclose(decoder.class_at_samples(points),
                             1.0 / (1.0 + np.exp(-100.0 * (expected - LEVEL))), atol=1e-4)
  assert decoder.implicit_values(np.zeros([0, 3])).shape == (0,)


def test_ldif_values_match_numpy_twin(rng):
  act = rng.normal(size=(1, 5, 10)).astype(np.float32)
  latents = rng.normal(size=(1, 5, 32)).astype(np.float32)
  weights = random_occnet_weights(rng)
  twin = numpy_twin.StructuredImplicitNp.from_activation(act, latents, radius_type='cov', symmetry_count=2)
  decoder = predict.Decoder.from_packed(twin.packed().astype(np.float32), radius_type='cov', symmetry_count=2,
                                        occnet_weights=weights, chunk_size=64)
  assert decoder.is_ldif
  points = rng.uniform(-0.6, 0.6, size=(150, 3)).astype(np.float32)
  expected = twin.implicit_values(points[None], weights)[0, :, 0]
  np.testing.assert_allclose(decoder.implicit_values(points), expected, rtol=1e-4, atol=1e-4)


def test_ldif_without_weights_is_an_error(rng):
  packed = rng.normal(size=(1, 3, 42)).astype(np.float32)
  with pytest.raises(ValueError, match='OccNet'):
    predict.Decoder.from_packed(packed, radius_type='cov', symmetry_count=0)


def test_grid_values_are_indexed_z_y_x(rng):
  act = rng.normal(size=(1, 6, 10)).astype(np.float32)
  twin = numpy_twin.StructuredImplicitNp.from_activation(act, radius_type='cov', symmetry_count=2)
  decoder = predict.Decoder.from_packed(twin.packed().astype(np.float32), radius_type='cov', symmetry_count=2,
                                        chunk_size=500)
  r = 12
  grid = decoder.grid_values(r, positions='tf')
  assert grid.shape == (r, r, r) and grid.dtype == np.float32
  p = predict.grid_sample_coordinates(r, positions='tf')
  idx = np.array([[0, 1, 2], [11, 3, 7], [5, 10, 0], [4, 4, 9]])  # (k, j, i) = (z, y, x) indices
  points = np.stack([p[idx[:, 2]], p[idx[:, 1]], p[idx[:, 0]]], axis=-1)
  expected = twin.implicit_values(points[None])[0, :, 0]
  np.testing.assert_allclose(grid[idx[:, 0], idx[:, 1], idx[:, 2]], expected, atol=1e-5)


def test_iou_of_an_analytic_sphere(rng):
  decoder = sphere_decoder(0.01)
  r0 = sphere_radius(0.01)
  xyz = rng.uniform(-0.7, 0.7, size=(20000, 3)).astype(np.float32)
  dist = np.linalg.norm(xyz, axis=1)
  keep = np.abs(dist - r0) > 1e-3  # away from the surface, where float rounding could flip the class
  xyz, dist = xyz[keep], dist[keep]
  exact = np.concatenate([xyz, (dist - r0)[:, None]], axis=1)
  inside = np.sum(dist < r0)
  assert decoder.iou(exact) == pytest.approx(100.0 * inside / (inside + 1e-5), rel=1e-9)
  bigger = np.concatenate([xyz, (dist - 1.2 * r0)[:, None]], axis=1)
  expected = 100.0 * np.sum(dist < r0) / (np.sum(dist < 1.2 * r0) + 1e-5)
  assert decoder.iou(bigger) == pytest.approx(expected, rel=1e-6)
  assert decoder.iou(np.concatenate([xyz, np.ones([len(xyz), 1])], axis=1)) == 0.0


def test_extract_mesh_sphere_and_grid_shift():
  decoder = sphere_decoder(0.01, center=(0.1, -0.05, 0.2), chunk_size=40000)
  r0 = sphere_radius(0.01)
  res = 64
  mesh, ok = decoder.extract_mesh(res, positions='aligned', coarse_to_fine=False)
  assert ok and mesh.is_watertight and mesh.volume > 0  # outward-facing triangles
  radii = np.linalg.norm(mesh.vertices - [0.1, -0.05, 0.2], axis=1)
  assert np.abs(radii - r0).max() < 1.5 / res * 0.75
  # Coarse-to-fine evaluation gives the dense grid's mesh.
  fast, ok = decoder.extract_mesh(res, positions='aligned', coarse_to_fine=True)
  assert ok
  np.testing.assert_array_equal(np.sort(fast.vertices, axis=0), np.sort(mesh.vertices, axis=0))
  assert len(fast.faces) == len(mesh.faces)
  # The original's TF positions shift the surface by -(E - 0.5) / R along every axis.
  tf_mesh, _ = decoder.extract_mesh(res, positions='tf')
  shift = tf_mesh.center_mass - mesh.center_mass
  np.testing.assert_allclose(shift, -0.25 / res, atol=2e-4)


def test_no_crossing_gives_the_fallback_sphere():
  packed = np.array([[[0.0, 0.0, 0.0, 0.0, 0.01, 0.01, 0.01]]], np.float32)  # constant 0: F = 0 everywhere
  decoder = predict.Decoder.from_packed(packed, radius_type='aa', symmetry_count=0)
  for use_kernel in (False, True):
    mesh, ok = decoder.extract_mesh(16, use_inference_kernel=use_kernel)
    assert not ok
    np.testing.assert_allclose(np.linalg.norm(mesh.vertices, axis=1), 0.5, atol=1e-6)


def test_gaps_to_mesh_frame_inverts_the_normalization(rng):
  scale, center = 0.31, np.array([2.0, -1.0, 0.5])
  orig_to_gaps = np.eye(4)
  orig_to_gaps[:3, :3] *= scale
  orig_to_gaps[:3, 3] = -scale * center
  mesh_frame = rng.normal(size=(30, 3))
  gaps = mesh_frame @ orig_to_gaps[:3, :3].T + orig_to_gaps[:3, 3]
  np.testing.assert_allclose(predict.gaps_to_mesh_frame(gaps, orig_to_gaps), mesh_frame, atol=1e-12)
  with pytest.raises(ValueError, match='singular'):
    predict.gaps_to_mesh_frame(gaps, np.zeros([4, 4]))


def test_txt_and_occnet_round_trip(tmp_path, rng):
  act = rng.normal(size=(1, 4, 10)).astype(np.float32)
  latents = rng.normal(size=(1, 4, 32)).astype(np.float32)
  weights = random_occnet_weights(rng)
  shape = sif_lib.StructuredImplicit.from_activation(tf.constant(act), tf.constant(latents),
                                                      radius_type='cov', symmetry_count=1)
  decoder = predict.Decoder(shape, weights)
  decoder.write_txt(tmp_path / 'shape.txt')
  decoder.write_occnet(tmp_path / 'decoder.occnet')
  loaded = predict.Decoder.from_files(tmp_path / 'shape.txt', tmp_path / 'decoder.occnet')
  points = rng.uniform(-0.5, 0.5, size=(64, 3)).astype(np.float32)
  np.testing.assert_allclose(loaded.implicit_values(points), decoder.implicit_values(points), rtol=1e-4,
                             atol=1e-5)
  assert loaded.symmetry_count == 1
  with pytest.raises(ValueError, match=r'shape\.txt.*occnet'):
    predict.Decoder.from_files(tmp_path / 'shape.txt')


def test_sif_file_without_decoder_round_trip(tmp_path):
  decoder = sphere_decoder(0.02, center=(0.0, 0.1, 0.0))
  decoder.write_txt(tmp_path / 'sphere.txt')
  with pytest.raises(ValueError, match='no OccNet'):
    decoder.write_occnet(tmp_path / 'x.occnet')
  loaded = predict.Decoder.from_files(tmp_path / 'sphere.txt')
  points = np.array([[0.0, 0.1, 0.0], [0.2, 0.0, 0.0]], np.float32)
  np.testing.assert_allclose(loaded.implicit_values(points), decoder.implicit_values(points), atol=1e-6)


def test_bad_txt_files_name_the_file(tmp_path):
  decoder = sphere_decoder(0.02)
  good = tmp_path / 'good.txt'
  decoder.write_txt(good)
  lines = good.read_text().splitlines()
  truncated = tmp_path / 'truncated.txt'
  truncated.write_text('\n'.join(lines[:2]) + '\n')
  with pytest.raises(ValueError, match=r'truncated\.txt.*truncated'):
    predict.Decoder.from_files(truncated)
  wrong_count = tmp_path / 'wrong_count.txt'
  wrong_count.write_text('SIF\n3 0 0\n' + lines[2] + '\n')
  with pytest.raises(ValueError, match=r'wrong_count\.txt.*3 elements'):
    predict.Decoder.from_files(wrong_count)
  short_row = tmp_path / 'short_row.txt'
  short_row.write_text('SIF\n1 0 0\n' + ' '.join(lines[2].split()[:-2]) + '\n')
  with pytest.raises(ValueError, match=r'short_row\.txt.*values'):
    predict.Decoder.from_files(short_row)


def test_occnet_whose_size_does_not_match_its_header_names_the_file(tmp_path, rng):
  act = rng.normal(size=(1, 2, 10)).astype(np.float32)
  latents = rng.normal(size=(1, 2, 32)).astype(np.float32)
  shape = sif_lib.StructuredImplicit.from_activation(tf.constant(act), tf.constant(latents),
                                                      radius_type='cov', symmetry_count=0)
  decoder = predict.Decoder(shape, random_occnet_weights(rng))
  decoder.write_txt(tmp_path / 'ldif.txt')
  decoder.write_occnet(tmp_path / 'good.occnet')
  raw = (tmp_path / 'good.occnet').read_bytes()
  (tmp_path / 'cut.occnet').write_bytes(raw[:-40])
  with pytest.raises(ValueError, match=r'cut\.occnet.*does not match the header'):
    predict.Decoder.from_files(tmp_path / 'ldif.txt', tmp_path / 'cut.occnet')


def test_inference_kernel_grid_matches_the_pure_tf_grid_at_kernel_positions(rng):
  from ldif.ops import loader  # pylint: disable=g-import-not-at-top
  status = loader.op_status()
  if not status['available']:
    pytest.skip(f'the custom evaluation op is not built ({status["reason"]})')
  act = rng.normal(size=(1, 6, 10)).astype(np.float32)
  latents = rng.normal(size=(1, 6, 32)).astype(np.float32)
  shape = sif_lib.StructuredImplicit.from_activation(tf.constant(act), tf.constant(latents),
                                                      radius_type='cov', symmetry_count=2)
  decoder = predict.Decoder(shape, random_occnet_weights(rng))
  kernel = predict.kernel_grid_values(decoder, 16)
  assert predict.inference_kernel_model(decoder) is not None
  assert kernel.shape == (16, 16, 16)
  # Same values as the TF function with the kernel's RBF threshold at the kernel's positions, in [z][y][x]
  # order.
  p = predict.grid_sample_coordinates(16, positions='kernel')
  zz, yy, xx = np.meshgrid(p, p, p, indexing='ij')
  points = np.stack([xx, yy, zz], axis=-1).reshape(1, -1, 3)
  decode = sif_lib.occnet_decoder_fn(decoder.occnet_weights)
  expected = shape.implicit_values(points, decode, rbf_threshold=1e-4)
  np.testing.assert_allclose(kernel, expected.numpy().reshape(16, 16, 16), rtol=1e-4, atol=1e-4)
  # Extraction with the op: the level set of the kernel grid (dense and coarse-to-fine alike).
  from ldif.inference import extract_mesh as extraction  # pylint: disable=g-import-not-at-top
  expected_ok, vertices, _ = extraction.marching_cubes(kernel)
  for coarse_to_fine in (False, True):
    mesh, ok = decoder.extract_mesh(16, use_inference_kernel=True, coarse_to_fine=coarse_to_fine)
    assert ok == expected_ok
    if ok:
      np.testing.assert_allclose(np.sort(mesh.vertices, axis=0), np.sort(vertices, axis=0), atol=1e-6)

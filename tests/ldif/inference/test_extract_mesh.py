"""Mesh extraction: the original's marching-cubes mapping, and coarse-to-fine == dense at fewer
evaluations."""

import numpy as np
import pytest
from scipy.spatial import cKDTree
from skimage import measure

from ldif.inference import extract_mesh as em
from ldif.ops import evaluate


def _same_vertices(a, b):
  """Max distance from each vertex set to the other (0 when the meshes coincide)."""
  return max(cKDTree(a).query(b)[0].max(), cKDTree(b).query(a)[0].max())


def test_marching_cubes_mapping_is_the_originals():
  """vertex (v0, v1, v2) -> (2E/R)(v2 - R/2, v1 - R/2, v0 - R/2), faces (0, 2, 1) (reference §7.3)."""
  rng = np.random.default_rng(3)
  volume = rng.normal(0, 1, [12, 12, 12]).astype(np.float32)
  ok, vertices, faces = em.marching_cubes(volume, extent=0.75, level=0.2)
  raw_v, raw_f, _, _ = measure.marching_cubes(volume, 0.2, method='lewiner')
  assert ok
  np.testing.assert_allclose(vertices, 0.125 * (raw_v[:, ::-1] - 6.0), atol=1e-6)
  np.testing.assert_array_equal(faces, raw_f[:, [0, 2, 1]])
  ok, vertices, faces = em.marching_cubes(np.ones([8, 8, 8]), level=-0.07)
  assert not ok and vertices.shape == (0, 3) and faces.shape == (0, 3)


def test_sphere_from_a_callable():
  """F = |x| - 0.3 + level: the mesh is a sphere of radius 0.3; coarse-to-fine equals dense."""
  def sphere(points):
    return np.linalg.norm(points, axis=-1) - 0.3 + em.LEVEL_SET

  dense = em.extract_mesh(sphere, 64, coarse_to_fine=False, positions='aligned')
  fine = em.extract_mesh(sphere, 64, positions='aligned')
  radii = np.linalg.norm(dense.vertices, axis=-1)
  assert dense.had_crossing and abs(radii.mean() - 0.3) < 2e-3 and np.abs(radii - 0.3).max() < 0.01
  assert _same_vertices(dense.vertices, fine.vertices) == 0.0
  assert len(dense.faces) == len(fine.faces)
  assert fine.evaluations < 0.3 * dense.evaluations
  empty = em.extract_mesh(lambda p: np.ones(len(p)), 128)  # only the 33^3 coarse lattice is evaluated
  assert not empty.had_crossing and empty.evaluations == 33 ** 3
  tiny = em.extract_mesh(sphere, 16, positions='aligned')  # too small to go coarse-to-fine: dense
  assert tiny.had_crossing and tiny.evaluations == 16 ** 3


@pytest.mark.parametrize('name', ['test-ldif.txt', 'test-sif.txt'])
def test_coarse_to_fine_equals_dense_on_references(ldif_eval_op, reference_dir, name):
  del ldif_eval_op
  ref = reference_dir / 'ldif2mesh'
  model = evaluate.EvalModel.from_files(ref / name, ref / 'extracted.occnet')
  dense = em.extract_mesh(model, 128, coarse_to_fine=False)
  fine = em.extract_mesh(model, 128)
  assert dense.had_crossing and len(dense.faces) > 15000
  assert len(fine.faces) == len(dense.faces)
  assert _same_vertices(dense.vertices, fine.vertices) <= 1e-6
  assert fine.evaluations < 0.1 * dense.evaluations
  # The dense path is the original's: the kernel grid and the §7.3 mapping.
  grid = evaluate.evaluate_kernel_grid(model, 128)[0]
  _, vertices, _ = em.marching_cubes(grid)
  assert _same_vertices(vertices, dense.vertices) == 0.0


def test_other_sources_and_pure_tf(ldif_eval_op, reference_dir):
  """SifFile and pure-TF sources give the same mesh as the op on an EvalModel."""
  del ldif_eval_op
  from ldif.representation import sif_file  # pylint: disable=g-import-not-at-top
  ref = reference_dir / 'ldif2mesh'
  sif = sif_file.read_sif_txt(ref / 'test-ldif.txt')
  weights = sif_file.read_occnet(ref / 'extracted.occnet')
  a = em.extract_mesh(sif, 32, decoder_weights=weights)
  b = em.extract_mesh(evaluate.EvalModel.from_sif_file(sif, weights), 32, use_op=False)
  assert len(a.faces) == len(b.faces)
  assert _same_vertices(a.vertices, b.vertices) < 1e-4


@pytest.mark.slow
def test_coarse_to_fine_equals_dense_at_256(ldif_eval_op, reference_dir):
  del ldif_eval_op
  ref = reference_dir / 'ldif2mesh'
  model = evaluate.EvalModel.from_files(ref / 'test-ldif.txt', ref / 'extracted.occnet')
  dense = em.extract_mesh(model, 256, coarse_to_fine=False)
  fine = em.extract_mesh(model, 256)
  assert len(fine.faces) == len(dense.faces)
  assert _same_vertices(dense.vertices, fine.vertices) <= 1e-6
  assert fine.evaluations < 0.05 * dense.evaluations

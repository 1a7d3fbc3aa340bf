"""ldif/torch/sif.py: the original sif_test.py values (reference §8), LDIF evaluation, gradients, standalone
use."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch', reason='PyTorch is not installed (optional: requirements-torch.txt)')

from ldif.representation import numpy_twin  # pylint: disable=g-import-not-at-top,wrong-import-position
from ldif.representation import sif_file  # pylint: disable=g-import-not-at-top,wrong-import-position
from ldif.torch import sif  # pylint: disable=g-import-not-at-top,wrong-import-position

B831 = 'b831f60f211435df5bbc861d0124304c.txt'
B7EE = 'b7eefc4c25dd9e49238581dd5a8af82c.txt'


def _same(a, b, ith=0):
  end = ith + 1
  if ith == -1:
    assert a.bs == b.bs
    ith, end = 0, b.bs
  for name in ('_constants', '_centers', '_radii', '_rotations'):
    assert torch.equal(getattr(a, name), getattr(b, name)[ith:end])
  assert a.symmetry_count == b.symmetry_count and a.element_count == b.element_count


def test_load_sif(reference_dir):
  load = sif._load_v1_txt  # pylint: disable=protected-access
  constants, centers, radii, rotations, symmetry_count, features = load(reference_dir / 'torch' / B831)
  assert isinstance(symmetry_count, int) and symmetry_count == 16
  assert constants.shape == (32,) and centers.shape == (32, 3) and radii.shape == (32, 3)
  assert rotations.shape == (32, 3) and features is None
  assert all(x.dtype == np.float32 for x in (constants, centers, radii, rotations))
  assert round(float(constants[4]), 3) == -0.028
  assert round(float(radii[4, 1]), 6) == 0.000352
  assert round(float(rotations[4, 2]), 4) == -0.0532
  shape = sif.Sif.from_file(reference_dir / 'torch' / B831)
  assert round(float(shape._constants[0, 4, 0]), 3) == -0.028  # pylint: disable=protected-access
  assert round(float(shape._radii[0, 4, 1]), 6) == 0.000352  # pylint: disable=protected-access


def test_flatten_unflatten_and_batching(reference_dir):
  shape = sif.Sif.from_file(str(reference_dir / 'torch' / B831))
  flat, symc = shape.to_flat_tensor()
  assert flat.shape == (1, 32, 10)
  _same(shape, sif.Sif.from_flat_tensor(flat, symc))
  paths = [str(reference_dir / 'torch' / B831), str(reference_dir / 'torch' / B7EE)]
  flats = [sif.Sif.from_file(p).to_flat_tensor() for p in paths]
  assert flats[0][1] == flats[1][1]
  batched = sif.Sif.from_flat_tensor(torch.cat([f[0] for f in flats]), flats[0][1])
  assert batched.bs == 2
  _same(batched, sif.Sif.from_file(paths), -1)
  with pytest.raises(ValueError, match='mismatched symmetry'):
    sif.Sif.from_file([paths[0], str(reference_dir / 'torch' / 'sif-nosym.txt')])


def test_evaluation_values(reference_dir):
  """The values asserted by the original's sif_test.py."""
  samples = torch.tensor([[0.02, 0.008, -0.05]])
  nosym = sif.Sif.from_file(reference_dir / 'torch' / 'sif-nosym.txt')
  nosym.symmetry_count = 0
  values = nosym.eval(samples).numpy()
  assert values.shape == (1,)
  assert round(float(values[0]), 7) == round(-0.0547159, 7)
  sym = sif.Sif.from_file(reference_dir / 'torch' / B831)
  assert abs(float(sym.eval(samples)[0]) - -0.238868) < 5e-6
  batch = sif.Sif.from_file([reference_dir / 'torch' / B7EE, reference_dir / 'torch' / B831])
  values = batch.eval(torch.tensor([[0.02, 0.008, -0.05], [0.0, 0.0, 0.0]])).numpy()
  assert values.shape == (2, 2)
  np.testing.assert_allclose(values, [[-0.126568, -0.11410], [-0.238868, -0.590321]], atol=5e-6)
  assert sym.world2local.shape == (48, 4, 4)
  assert batch.world2local.shape == (2, 48, 4, 4)
  assert sym.rbf_influence(samples).shape == (1, 48)
  assert sym.constants.shape == (48,) and batch.constants.shape == (2, 48)


def _twin(path, weights=None):
  s = sif_file.read_sif_txt(path)
  parts = [s.constants[:, None], s.centers, s.radii] + ([s.latents] if s.latents is not None else [])
  return numpy_twin.StructuredImplicitNp.from_packed(np.concatenate(parts, -1)[None], radius_type='cov',
                                                    symmetry_count=s.symmetry_count), weights


def test_matches_numpy_twin_sif_and_ldif(reference_dir):
  rng = np.random.default_rng(5)
  points = rng.uniform(-0.5, 0.5, [3000, 3]).astype(np.float32)
  ref = reference_dir / 'ldif2mesh'
  weights = sif_file.read_occnet(ref / 'extracted.occnet')
  for name in ('test-sif.txt', 'test-ldif.txt'):
    shape = sif.Sif.from_file(ref / name, occnet_path=ref / 'extracted.occnet')
    twin, _ = _twin(ref / name)
    w = weights if shape.latents is not None else None
    for threshold in (None, sif.KERNEL_RBF_THRESHOLD):
      expected = twin.implicit_values(points[None], w, rbf_threshold=threshold)[0, :, 0]
      got = shape.eval(torch.from_numpy(points), rbf_threshold=threshold).numpy()
      assert np.abs(got - expected).max() <= 1e-5, (name, threshold)
    np.testing.assert_allclose(shape.rbf_influence(torch.from_numpy(points)).numpy(),
                               twin.rbf_influence(points[None])[0].T, atol=1e-6)
    np.testing.assert_allclose(shape.world2local.numpy(), twin.tiled_world2local()[0], rtol=1e-5, atol=1e-4)
  with pytest.raises(ValueError, match='occnet_path'):
    sif.Sif.from_file(ref / 'test-ldif.txt')


def test_matches_the_op(reference_dir, ldif_eval_op):
  """torch (kernel rule) == the C++ op on the reference LDIF, when the op is available."""
  del ldif_eval_op
  from ldif.ops import evaluate  # pylint: disable=g-import-not-at-top
  ref = reference_dir / 'ldif2mesh'
  points = np.random.default_rng(2).uniform(-0.5, 0.5, [4000, 3]).astype(np.float32)
  model = evaluate.EvalModel.from_files(ref / 'test-ldif.txt', ref / 'extracted.occnet')
  shape = sif.Sif.from_file(ref / 'test-ldif.txt', occnet_path=ref / 'extracted.occnet')
  got = shape.eval(torch.from_numpy(points), rbf_threshold=sif.KERNEL_RBF_THRESHOLD).numpy()
  assert np.abs(got - evaluate.evaluate_points(model, points, use_op=True)[0]).max() <= 1e-5


def test_differentiable_and_class(reference_dir):
  ref = reference_dir / 'ldif2mesh'
  shape = sif.Sif.from_file(ref / 'test-ldif.txt', occnet_path=ref / 'extracted.occnet')
  flat, symc = shape.to_flat_tensor()
  flat = flat.clone().requires_grad_(True)
  samples = torch.tensor([[0.05, 0.1, -0.1], [0.2, -0.1, 0.3]], requires_grad=True)
  rebuilt = sif.Sif.from_flat_tensor(flat, symc, shape.decoder)
  values = rebuilt.eval(samples)
  values.sum().backward()
  assert torch.isfinite(flat.grad).all() and flat.grad.abs().sum() > 0
  assert torch.isfinite(samples.grad).all() and samples.grad.abs().sum() > 0
  classes = rebuilt.class_at_samples(samples.detach())
  np.testing.assert_allclose(classes.detach().numpy(),
                             1 / (1 + np.exp(-100 * (values.detach().numpy() + 0.07))), rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device for torch')
def test_cuda_device(reference_dir):
  shape = sif.Sif.from_file(reference_dir / 'torch' / B831, device='cuda')
  value = shape.eval(torch.tensor([[0.02, 0.008, -0.05]], device='cuda'))
  assert value.device.type == 'cuda' and abs(float(value[0]) - -0.238868) < 5e-6


def test_works_when_copied_out_alone(reference_dir, tmp_path):
  """sif.py imports only torch and numpy: copy it alone and use it with the project off the path."""
  shutil.copy(sif.__file__, tmp_path / 'sif.py')
  code = ('import sys, torch, sif; s = sif.Sif.from_file(sys.argv[1]); '
          'print(float(s.eval(torch.tensor([[0.02, 0.008, -0.05]]))[0]))')
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  proc = subprocess.run([sys.executable, '-c', code, str(reference_dir / 'torch' / B831)], cwd=tmp_path,
                        env=env, capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert abs(float(proc.stdout.strip()) - -0.238868) < 5e-6
  source = (tmp_path / 'sif.py').read_text()
  imports = {line.split()[1] for line in source.splitlines() if line.startswith(('import ', 'from '))}
  assert imports <= {'math', 'struct', 'numpy', 'torch'}  # the standard library plus torch and numpy


def test_bad_files(tmp_path):
  bad = tmp_path / 'bad.txt'
  bad.write_text('SIF\n2 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 1\n')
  with pytest.raises(ValueError, match='follows an asymmetric'):
    sif.Sif.from_file(bad)
  bad.write_text('SIF\n2 0 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 0\n')
  with pytest.raises(ValueError, match='truncated'):
    sif.Sif.from_file(bad)
  bad.write_text('SIF\n1 1 0\n-0.1 0 0 0 0.1 0.1 0.1 0 0 0 0\n')
  with pytest.raises(ValueError, match='version'):
    sif.Sif.from_file(bad)

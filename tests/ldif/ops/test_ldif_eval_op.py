"""The LDIF/SIF evaluation op (C++ CPU kernel) vs the pure-TF path vs the numpy twin, plus errors and the
loader.

The op is built by scripts/build_kernel.sh (CI runs it first); if it is missing or stale the tests build it,
and
skip, saying why, when that is impossible (no g++).
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from ldif.ops import evaluate
from ldif.ops import loader
from ldif.representation import numpy_twin
from ldif.representation import sif_file

TOL = 1e-5


def random_weights(rng, width, latent_size):
  """Random OccNet weights of plausible magnitude (fan-in scaled kernels, positive running variances)."""
  flat = []
  for key, shape in sif_file._occnet_layout(width, latent_size):  # pylint: disable=protected-access
    if key.endswith('running_mean'):
      value = rng.normal(0, 0.2, shape)
    elif key.endswith('running_variance'):
      value = rng.uniform(0.5, 2.0, shape)
    elif key.endswith('kernel'):
      value = rng.normal(0, 1.0 / np.sqrt(shape[0]), shape)
    else:
      value = rng.normal(0, 0.1, shape)
    flat.append(np.asarray(value, np.float32).reshape(-1))
  return sif_file.unflatten_occnet(np.concatenate(flat), width, latent_size)


def random_model(rng, *, batch=1, elements=7, latent_size=0, width=32, symmetry_count=3, radius_type='cov'):
  """A random valid SIF/LDIF as the network would produce it (reference §4.2 activations)."""
  r = sif_file.RADIUS_WIDTHS[radius_type]
  sigma = 0.15 / (1.0 + np.exp(-rng.normal(0.5, 1.0, [batch, elements, 3 if r > 1 else 1])))
  radii = sigma ** 2
  if radius_type == 'cov':
    radii = np.concatenate([radii, rng.uniform(-np.pi / 4, np.pi / 4, [batch, elements, 3])], -1)
  latents = rng.normal(0, 1, [batch, elements, latent_size]) if latent_size else None
  return evaluate.EvalModel(
      constants=-rng.uniform(0.02, 0.3, [batch, elements]),
      centers=rng.uniform(-0.35, 0.35, [batch, elements, 3]),
      radii=radii, radius_type=radius_type, symmetry_count=symmetry_count, latents=latents,
      decoder_weights=random_weights(rng, width, latent_size) if latent_size else None, name='<random>')


def sample_points(rng, model, n=3000):
  """Uniform points plus points near each element (and its mirror) so that decoders are exercised."""
  uniform = rng.uniform(-0.7, 0.7, [n, 3])
  near = model.centers[0][rng.integers(0, model.element_count, n)] + rng.normal(0, 0.05, [n, 3])
  near[: n // 4, 2] *= -1
  return np.concatenate([uniform, near]).astype(np.float32)


def numpy_values(model, points):
  """The numpy twin (float64) with the kernel's 1e-4 rule: [B, N]."""
  packed = [model.constants[..., None], model.centers, model.radii]
  if model.latents is not None:
    packed.append(model.latents)
  si = numpy_twin.StructuredImplicitNp.from_packed(np.concatenate(packed, -1), radius_type=model.radius_type,
                                                   symmetry_count=model.symmetry_count)
  points = np.broadcast_to(points, (model.batch_size,) + points.shape)
  return si.implicit_values(points, model.decoder_weights, rbf_threshold=evaluate.RBF_THRESHOLD)[..., 0]


def test_reference_files_op_tf_numpy_agree(ldif_eval_op, reference_dir, rng):
  del ldif_eval_op
  for name in ('test-ldif.txt', 'test-sif.txt'):
    model = evaluate.EvalModel.from_files(reference_dir / 'ldif2mesh' / name,
                                          reference_dir / 'ldif2mesh' / 'extracted.occnet')
    points = sample_points(rng, model, 2000)
    tiled = evaluate.evaluate_points(model, points, use_op=True)
    pointwise = evaluate.evaluate_points(model, points, use_op=True, cpu_method='pointwise')
    pure_tf = evaluate.evaluate_points(model, points, use_op=False)
    reference = numpy_values(model, points)
    assert np.abs(tiled - pointwise).max() <= TOL, name
    assert np.abs(tiled - pure_tf).max() <= TOL, name
    assert np.abs(tiled - reference).max() <= TOL, name
    # Values are not trivially zero: both shapes have inside and outside points.
    assert (tiled < -0.07).any() and (tiled > -0.07).any()


def test_reference_kernel_grid_op_vs_tf(ldif_eval_op, reference_dir):
  del ldif_eval_op
  model = evaluate.EvalModel.from_files(reference_dir / 'ldif2mesh' / 'test-ldif.txt',
                                        reference_dir / 'ldif2mesh' / 'extracted.occnet')
  grid_op = evaluate.evaluate_kernel_grid(model, 24, use_op=True)
  grid_tf = evaluate.evaluate_kernel_grid(model, 24, use_op=False)
  assert grid_op.shape == (1, 24, 24, 24)
  assert np.abs(grid_op - grid_tf).max() <= TOL
  # The grid is F at (p(x), p(y), p(z)) with [z][y][x] order and the kernel's p(i).
  p = evaluate.kernel_grid_positions(24)
  np.testing.assert_allclose(p[[0, 23]], [-0.75 + 0.75 / 24, -0.75 + 1.5 * (0.5 + 23.5 * 23 / 24) / 24])
  k, j, i = 5, 17, 11
  point = np.array([[p[i], p[j], p[k]]], np.float32)
  np.testing.assert_allclose(evaluate.evaluate_points(model, point, use_op=True)[0, 0], grid_op[0, k, j, i],
                             atol=1e-6)


@pytest.mark.parametrize('elements,latent_size,width,symmetry_count,batch', [
    (7, 8, 32, 3, 2),     # the W = 32 vector path, L != W, batch of 2
    (5, 6, 12, 5, 1),     # generic width, every element symmetric
    (40, 32, 32, 0, 1),   # more elements than the original's limit of 32, no symmetry
    (3, 3, 40, 1, 1),     # width beyond 32
])
def test_random_ldifs_agree(ldif_eval_op, rng, elements, latent_size, width, symmetry_count, batch):
  del ldif_eval_op
  model = random_model(rng, batch=batch, elements=elements, latent_size=latent_size, width=width,
                       symmetry_count=symmetry_count)
  points = sample_points(rng, model, 1500)
  tiled = evaluate.evaluate_points(model, points, use_op=True)
  pointwise = evaluate.evaluate_points(model, points, use_op=True, cpu_method='pointwise')
  pure_tf = evaluate.evaluate_points(model, points, use_op=False)
  reference = numpy_values(model, points)
  scale = max(1.0, float(np.abs(reference).max()))
  assert np.abs(tiled - reference).max() <= TOL * scale
  assert np.abs(pointwise - reference).max() <= TOL * scale
  assert np.abs(pure_tf - reference).max() <= TOL * scale
  # The decoder matters: without it the values would differ.
  assert np.abs(tiled).max() > 0


@pytest.mark.parametrize('radius_type,symmetry_count', [('cov', 0), ('cov', 4), ('aa', 2)])
def test_random_sifs_agree(ldif_eval_op, rng, radius_type, symmetry_count):
  del ldif_eval_op
  model = random_model(rng, batch=2, elements=9, symmetry_count=symmetry_count, radius_type=radius_type)
  points = sample_points(rng, model, 2000)
  tiled = evaluate.evaluate_points(model, points, use_op=True)
  pure_tf = evaluate.evaluate_points(model, points, use_op=False)
  reference = numpy_values(model, points)
  assert np.abs(tiled - reference).max() <= TOL
  assert np.abs(pure_tf - reference).max() <= TOL
  # Far from every element the kernel rule gives exactly 0 (not the tiny RBF tails).
  far = evaluate.evaluate_points(model, np.full([1, 3], 5.0, np.float32), use_op=True)
  assert np.all(far == 0.0)


def test_threshold_rule_drops_small_weights(ldif_eval_op):
  """One element: the value is c w (1 + O) where w > 1e-4 and exactly 0 beyond, unlike the TF semantics."""
  del ldif_eval_op
  rng = np.random.default_rng(7)
  model = evaluate.EvalModel(constants=[[-0.5]], centers=[[[0.0, 0.0, 0.0]]], radii=[[[0.01, 0.01, 0.01]]],
                             radius_type='aa', symmetry_count=0, latents=[[[0.3, -0.2]]],
                             decoder_weights=random_weights(rng, 8, 2))
  # w = exp(-x^2 / (2 * 0.01)) = 1e-4 at x = sqrt(0.02 ln 1e4) = 0.4292.
  points = np.array([[0.40, 0, 0], [0.42, 0, 0], [0.44, 0, 0], [0.46, 0, 0]], np.float32)
  values = evaluate.evaluate_points(model, points, use_op=True)[0]
  assert np.all(values[:2] != 0) and np.all(values[2:] == 0)
  model.validate()
  no_rule = numpy_twin.StructuredImplicitNp.from_packed(
      np.concatenate([model.constants[..., None], model.centers, model.radii, model.latents], -1),
      radius_type='aa', symmetry_count=0).implicit_values(points[None], model.decoder_weights)[0, :, 0]
  assert np.all(no_rule[2:] != 0)
  np.testing.assert_allclose(values[:2], no_rule[:2], atol=1e-6)


def _points_at_the_threshold(model, rng, n, relative=1e-7):
  """float32 points whose float64 q = d^T Sigma^-1 d to element 0 is within a relative 2e-7 of the cutoff.

  Along random directions u from the centre, t solves q(t u) = -2 ln(1e-4) in float64; the points are at
  t (1 + eps) u, eps uniform in [-relative, relative], rounded to float32 (about 6e-8 relative), so they fall on
  both sides of the threshold by less than float32 can resolve.
  """
  center = model.centers[0, 0].astype(np.float64)
  u = rng.normal(size=(n, 3))
  u /= np.linalg.norm(u, axis=-1, keepdims=True)
  q_unit = numpy_twin.rbf_quadratic_forms64(u[None, None], model.radii[:, :1], model.radius_type)[0, 0]
  t = np.sqrt(evaluate.RBF_CUTOFF / q_unit)
  eps = rng.uniform(-relative, relative, n)
  return (center + (t * (1 + eps))[:, None] * u).astype(np.float32)


@pytest.mark.parametrize('latent_size', [4, 0], ids=['ldif', 'sif'])
def test_paths_agree_on_points_at_the_threshold(ldif_eval_op, rng, latent_size):
  """`w > 1e-4` is decided in float64 by every path, so points closer to the threshold than float32 resolves get
  the same verdict from the op (tiled and pointwise), the pure-TF path, the numpy twin and torch sif.py."""
  del ldif_eval_op
  model = random_model(rng, elements=1, latent_size=latent_size, width=8, symmetry_count=1)
  model.centers[0, 0, 2] = 0.6  # the mirror copy (at z = -0.6) stays far from these points
  model.validate()
  points = _points_at_the_threshold(model, rng, 4000)
  # Ground truth: the float64 rule at the float32 points, on both sides of the cutoff.
  q = numpy_twin.rbf_quadratic_forms64(
      (points.astype(np.float64) - model.centers[0, 0].astype(np.float64))[None, None], model.radii,
      model.radius_type)[0, 0]
  assert np.abs(q / evaluate.RBF_CUTOFF - 1).max() < 5e-7
  active = q < evaluate.RBF_CUTOFF
  assert 0.3 < active.mean() < 0.7
  # The mirror images of the points, where the mirror copy's pass (at the reflected point) decides.
  points = np.concatenate([points, points * np.float32([1, 1, -1])])
  active = np.concatenate([active, active])
  # A float32 evaluation of the same rule disagrees with float64 at some of these points.
  d32 = points[:len(q)] - model.centers[0, 0]
  w32 = numpy_twin.rbf_weights(d32[None, None], model.radii, model.radius_type).astype(np.float32)
  assert np.any((w32[0, 0] > np.float32(1e-4)) != active[:len(q)])
  results = {
      'tiled': evaluate.evaluate_points(model, points, use_op=True)[0],
      'pointwise': evaluate.evaluate_points(model, points, use_op=True, cpu_method='pointwise')[0],
      'pure_tf': evaluate.evaluate_points(model, points, use_op=False)[0],
      'numpy': numpy_values(model, points)[0],
  }
  try:
    import torch  # pylint: disable=import-outside-toplevel
    from ldif.torch import sif  # pylint: disable=import-outside-toplevel
    decoder = sif.OccNetDecoder(model.decoder_weights) if latent_size else None
    latents = torch.from_numpy(model.latents) if latent_size else None
    shape = sif.Sif(torch.from_numpy(model.constants), torch.from_numpy(model.centers),
                    torch.from_numpy(model.variances()), torch.from_numpy(model.rotations()), 1, latents=latents,
                    decoder=decoder)
    results['torch'] = shape.eval(torch.from_numpy(points), rbf_threshold=sif.KERNEL_RBF_THRESHOLD).numpy()
  except ImportError:
    pass  # torch is optional (requirements-torch.txt); the other paths are still compared
  for name, values in results.items():
    # Active points have value c w (1 + O) with w ~ 1e-4; inactive ones exactly 0.
    np.testing.assert_array_equal(values != 0, active, err_msg=name)
    assert np.abs(values - results['numpy']).max() <= 1e-9, name


def test_grid_chunks_and_positions_are_exact(ldif_eval_op, rng):
  del ldif_eval_op
  model = random_model(rng, elements=6, latent_size=4, width=32, symmetry_count=2)
  origin, spacing = evaluate.kernel_grid_spec(20)
  whole = evaluate.evaluate_grid(model, origin, spacing, (20, 18, 16), use_op=True)
  slabs = evaluate.evaluate_grid(model, origin, spacing, (20, 18, 16), use_op=True,
                                 max_chunk_voxels=18 * 16 * 3)
  np.testing.assert_array_equal(whole, slabs)
  points = evaluate.grid_points(origin, spacing, (20, 18, 16)).reshape(-1, 3)
  at_points = evaluate.evaluate_points(model, points, use_op=True).reshape(whole.shape)
  np.testing.assert_array_equal(whole, at_points)
  pure_tf = evaluate.evaluate_grid(model, origin, spacing, (20, 18, 16), use_op=False)
  assert np.abs(whole - pure_tf).max() <= TOL


def _raw_inputs(model):
  decoder = sif_file.flatten_occnet(model.decoder_weights)
  return [model.constants, model.centers, model.variances(), model.rotations(), model.latents, decoder]


def test_op_reports_bad_input_without_crashing(ldif_eval_op, rng):
  model = random_model(rng, elements=4, latent_size=3, width=8, symmetry_count=1)
  good = _raw_inputs(model)
  points = np.zeros([1, 5, 3], np.float32)

  def call(inputs, pts=points, **attrs):
    kwargs = dict(symmetry_count=1, hidden_width=8)
    kwargs.update(attrs)
    return ldif_eval_op.ldif_eval_points(*[tf.constant(np.asarray(x, np.float32)) for x in inputs],
                                         tf.constant(pts), **kwargs)

  call(good)  # sanity: good input works
  cases = []
  bad = [x.copy() for x in good]
  bad[0][0, 1] = np.nan
  cases.append((bad, {}, 'constants contain NaN'))
  bad = [x.copy() for x in good]
  bad[2][0, 0, 0] = -1.0
  cases.append((bad, {}, 'negative'))
  bad = [x.copy() for x in good]
  bad[5] = bad[5][:-1]
  cases.append((bad, {}, 'decoder weights have'))
  bad = [x.copy() for x in good]
  bad[4][0, 0, 0] = np.inf
  cases.append((bad, {}, 'latents contain NaN'))
  cases.append((good, {'symmetry_count': 9}, 'symmetry_count'))
  cases.append((good, {'hidden_width': 0}, 'hidden_width'))
  bad = [x.copy() for x in good]
  bad[1] = bad[1][:, :3]
  cases.append((bad, {}, 'centers must be'))
  for inputs, attrs, match in cases:
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
      call(inputs, **attrs)
  with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match='points must be'):
    call(good, pts=np.zeros([1, 5, 2], np.float32))
  grid_inputs = [tf.constant(np.asarray(x, np.float32)) for x in good]
  with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match='non-negative'):
    ldif_eval_op.ldif_eval_grid(*grid_inputs, tf.zeros([3]), tf.ones([3]), tf.constant([2, -1, 2]),
                                tf.constant(0), symmetry_count=1, hidden_width=8)


def test_eval_model_validation_errors(rng):
  model = random_model(rng, elements=3, latent_size=4, width=8, symmetry_count=1)
  bad = evaluate.EvalModel(**{**model.__dict__, 'constants': np.full([1, 3], np.nan)})
  with pytest.raises(ValueError, match='NaN'):
    evaluate.evaluate_points(bad, np.zeros([2, 3]))
  wrong_l = evaluate.EvalModel(**{**model.__dict__, 'decoder_weights': random_weights(rng, 8, 5)})
  with pytest.raises(ValueError, match='latent size'):
    wrong_l.validate()
  no_decoder = evaluate.EvalModel(**{**model.__dict__, 'decoder_weights': None})
  with pytest.raises(ValueError, match='needs decoder weights'):
    no_decoder.validate()
  with pytest.raises(ValueError, match='resolution'):
    evaluate.evaluate_kernel_grid(model, 0)
  with pytest.raises(ValueError, match='resolution'):
    evaluate.evaluate_kernel_grid(model, 1025)
  with pytest.raises(ValueError, match='points'):
    evaluate.evaluate_points(model, np.zeros([4, 2]))


def test_iso_models_use_pure_tf(rng):
  model = random_model(rng, elements=4, symmetry_count=1, radius_type='iso')
  points = sample_points(rng, model, 500)
  values = evaluate.evaluate_points(model, points)  # auto: falls back to TF for 'iso'
  np.testing.assert_allclose(values, numpy_values(model, points), atol=TOL)
  with pytest.raises(ValueError, match='iso'):
    evaluate.evaluate_points(model, points, use_op=True)


def test_loader_can_be_disabled(ldif_eval_op, monkeypatch):
  del ldif_eval_op
  monkeypatch.setenv('LDIF_DISABLE_OP', '1')
  try:
    assert loader.load_op(reload=True) is None
    assert 'LDIF_DISABLE_OP' in loader.op_status()['reason']
    assert evaluate.path_in_use() == 'tf'
  finally:
    monkeypatch.delenv('LDIF_DISABLE_OP')
    assert loader.load_op(reload=True) is not None
  assert evaluate.path_in_use() == 'op'


def test_standalone_cpu_harness_matches_op(ldif_eval_op, reference_dir, tmp_path):
  """The TF-free driver (same CPU code) writes the kernel's .grd: identity matrix, same values as the op."""
  del ldif_eval_op
  if shutil.which('g++') is None:
    pytest.skip('g++ is not installed, so the standalone harness cannot be built')
  exe = tmp_path / 'ldif2grd_cpu'
  src = loader.PACKAGE_DIR / 'cuda_harness' / 'ldif2grd_cpu.cc'
  subprocess.run(['g++', '-std=c++17', '-O2', '-pthread', str(src), '-o', str(exe)], check=True)
  ref = reference_dir / 'ldif2mesh'
  model = evaluate.EvalModel.from_files(ref / 'test-ldif.txt', ref / 'extracted.occnet')
  expected = evaluate.evaluate_kernel_grid(model, 20, use_op=True)[0]
  for flags in ([], ['--pointwise']):
    out = tmp_path / 'h.grd'
    subprocess.run([str(exe), str(ref / 'test-ldif.txt'), str(ref / 'extracted.occnet'), str(out),
                    '-resolution', '20', '--threads', '2'] + flags, check=True, capture_output=True)
    raw = out.read_bytes()
    np.testing.assert_array_equal(np.frombuffer(raw, '<i4', 3), [20, 20, 20])
    np.testing.assert_array_equal(np.frombuffer(raw, '<f4', 16, 12).reshape(4, 4), np.eye(4))
    values = np.frombuffer(raw, '<f4', offset=76).reshape(20, 20, 20)
    assert np.abs(values - expected).max() <= TOL
  bad = subprocess.run([str(exe), str(ref / 'test-ldif.txt'), str(tmp_path / 'absent.occnet'),
                        str(tmp_path / 'x.grd')], capture_output=True, text=True, check=False)
  assert bad.returncode == 1 and 'absent.occnet' in bad.stderr


@pytest.mark.skipif(not os.environ.get('LDIF_TEST_GPU_LIBRARY'),
                    reason='set LDIF_TEST_GPU_LIBRARY=1 to check that the CUDA op library '
                    '(ldif_eval_ops_gpu.so) builds and loads (takes minutes)')
def test_gpu_library_builds_and_loads():
  ok, message = loader.build_op(cuda=True)
  assert ok, message
  assert loader.GPU_LIBRARY.is_file()
  # A fresh process: this one already holds the CPU library, which registers the same op names.
  code = (f'import tensorflow as tf; m = tf.load_op_library({str(loader.GPU_LIBRARY)!r}); '
          'print(m.ldif_eval_grid)')
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]

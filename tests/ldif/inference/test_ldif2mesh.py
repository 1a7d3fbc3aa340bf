"""ldif2mesh CLI: conformance with the original kernel's fixtures through ldif2mesh + grd2msh, and bad
input."""

import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from gaps_py import grd2msh
from gaps_py import io as gaps_io
from ldif.inference import ldif2mesh
from ldif.ops import loader
from ldif.representation import sif_file

PROJECT_ROOT = loader.PACKAGE_DIR.parents[1]


@pytest.mark.parametrize('name', ['test-ldif', 'test-sif'])
def test_conformance_with_reference_meshes(ldif_eval_op, reference_dir, tmp_path, name):
  """At resolution 128, every vertex of the original's kernel + GAPS grd2msh output (grid-index coordinates)
  is
  within 0.01 voxel of ours and vice versa (reference §9: 1.2e-3 / 2.7e-4 voxel expected)."""
  del ldif_eval_op
  ref = reference_dir / 'ldif2mesh'
  grd = tmp_path / f'{name}.grd'
  ply = tmp_path / f'{name}.ply'
  assert ldif2mesh.main([str(ref / f'{name}.txt'), str(ref / 'extracted.occnet'), str(grd),
                         '-resolution', '128']) == 0
  assert grd2msh.main([str(grd), str(ply), '-threshold', '-0.07']) == 0
  ours = trimesh.load(ply, process=False).vertices
  theirs = trimesh.load(ref / f'{name}-output.ply', process=False).vertices
  to_ours = cKDTree(ours).query(theirs)[0]
  to_theirs = cKDTree(theirs).query(ours)[0]
  assert to_ours.max() < 0.01, f'reference vertex {to_ours.max():.4g} voxel from our mesh'
  assert to_theirs.max() < 0.01, f'our vertex {to_theirs.max():.4g} voxel from the reference mesh'
  assert len(ours) > 10000


def test_grd_header_and_kernel_vs_pure_tf(ldif_eval_op, reference_dir, tmp_path):
  """The .grd has the original's header (R, R, R, identity matrix); kernel and pure-TF paths agree to 1e-5."""
  del ldif_eval_op
  ref = reference_dir / 'ldif2mesh'
  outputs = {}
  for flag in ('--use_inference_kernel', '--nouse_inference_kernel'):
    path = tmp_path / f'{flag}.grd'
    assert ldif2mesh.main([str(ref / 'test-ldif.txt'), str(ref / 'extracted.occnet'), str(path),
                           '-resolution=24', flag]) == 0
    raw = path.read_bytes()
    assert len(raw) == 12 + 64 + 4 * 24 ** 3
    np.testing.assert_array_equal(np.frombuffer(raw, '<i4', 3), [24, 24, 24])
    np.testing.assert_array_equal(np.frombuffer(raw, '<f4', 16, 12), np.eye(4).reshape(-1))
    outputs[flag], world2grid = gaps_io.read_grd(path)
    np.testing.assert_array_equal(world2grid, np.eye(4))
  diff = np.abs(outputs['--use_inference_kernel'] - outputs['--nouse_inference_kernel']).max()
  assert diff <= 1e-5
  assert outputs['--use_inference_kernel'].min() < -0.07 < outputs['--use_inference_kernel'].max()


def test_module_entry_point(ldif_eval_op, reference_dir, tmp_path):
  """`python -m ldif.inference.ldif2mesh` runs as a program (SIF: the .occnet path is not read)."""
  del ldif_eval_op
  out = tmp_path / 'sif.grd'
  env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run([sys.executable, '-m', 'ldif.inference.ldif2mesh',
                         str(reference_dir / 'ldif2mesh' / 'test-sif.txt'), str(tmp_path / 'unused.occnet'),
                         str(out), '-resolution', '16'], env=env, capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert 'Completed in' in proc.stdout
  values, _ = gaps_io.read_grd(out)
  assert values.shape == (16, 16, 16) and values.max() == 0.0 and values.min() < -0.07


def test_bad_input_is_a_clear_error(reference_dir, tmp_path, capsys):
  ref = reference_dir / 'ldif2mesh'
  ldif_txt, occnet = str(ref / 'test-ldif.txt'), str(ref / 'extracted.occnet')
  out = tmp_path / 'out.grd'
  # A decoder with another latent size than the .txt's 32 values per row.
  weights = sif_file.read_occnet(occnet)
  small = {k: (v[:16] if k.endswith(('beta_fc/kernel', 'gamma_fc/kernel')) else v)
           for k, v in weights.items()}
  small_path = tmp_path / 'l16.occnet'
  sif_file.write_occnet(small_path, small)
  nan_txt = tmp_path / 'nan.txt'
  lines = (ref / 'test-sif.txt').read_text().splitlines()
  lines[5] = ' '.join(['nan'] + lines[5].split()[1:])
  nan_txt.write_text('\n'.join(lines) + '\n')
  cases = [
      ([ldif_txt, str(small_path), str(out)], 'decoder latent size 16 does not match the latent size 32'),
      ([ldif_txt, occnet, str(out), '-resolution', '0'], 'resolution'),
      ([ldif_txt, occnet, str(out), '-resolution', '1025'], 'resolution'),
      ([ldif_txt, occnet, str(out), '-resolution', 'x'], 'integer'),
      ([str(nan_txt), occnet, str(out)], 'NaN'),
      ([str(tmp_path / 'absent.txt'), occnet, str(out)], 'absent.txt'),
      ([ldif_txt, occnet], 'expected 3 paths'),
      ([ldif_txt, occnet, str(out), '--frobnicate'], 'unknown flag'),
  ]
  for argv, message in cases:
    capsys.readouterr()
    assert ldif2mesh.main(argv) == 1, argv
    assert message in capsys.readouterr().err, argv
    assert not out.exists()

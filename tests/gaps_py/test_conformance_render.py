"""scn2img / conf2img against the real GAPS outputs for LDIF's bob and blub (../shared/reference/gaps).

GAPS rendered the msh2msh-normalized mesh re-read from its OBJ: the vertices transformed by the
full-precision normalization matrix (orig_to_gaps.txt is that matrix printed with 6 digits; we recompute it
and check that it prints the same) and rounded to 6 significant digits. Using the 6-digit matrix instead
moves 9-19% of the coordinates by one unit in the 6th digit, which alone flips ~0.25% of the depth values.
Measured (GAPS c7e5b32, OSMesa/llvmpipe), with scn2img's float32 emulation of that OpenGL pipeline:
  * depth: identical to GAPS's PNGs (masks and every value, all 40 views);
  * normals from GAPS's depth, and so also end to end: 100% / 99.994% within 2 units per channel (the
    residue is conf2img's own), radius 100%.
"""

import numpy as np
import pytest

from gaps_py import conf2img
from gaps_py import io as gaps_io
from gaps_py import msh2msh
from gaps_py import scn2img
from ldif.util import camera_util

VIEWS = 20


def _load(reference_dir, name):
  gaps_dir = reference_dir / 'gaps' / name
  vertices, faces = gaps_io.load_mesh(reference_dir / 'meshes' / f'{name}.ply')
  matrix = msh2msh.normalization_matrix(vertices, faces)
  printed = (gaps_dir / 'orig_to_gaps.txt').read_text().split()
  assert ['%g' % x for x in matrix.ravel()] == printed, 'normalization matrix differs from orig_to_gaps.txt'
  vertices = msh2msh.round_like_gaps_obj(msh2msh.transform_vertices(vertices, matrix))
  depth = np.stack([gaps_io.read_png16(gaps_dir / 'depth_images' / f'{i:06d}_depth.png')
                    for i in range(VIEWS)])
  normals = np.stack([np.stack([gaps_io.read_png16(gaps_dir / 'normals' / f'{i:06d}_depth_{c}.png')
                                for c in conf2img.CHANNELS]) for i in range(VIEWS)])
  return vertices, faces, depth, normals


_CACHE = {}


@pytest.fixture(params=['bob', 'blub'])
def case(request, reference_dir):
  """(name, our depth uint16 [20,224,224], GAPS depth [20,224,224], GAPS normals [20,4,224,224]); cached."""
  name = request.param
  if not (reference_dir / 'gaps' / name).is_dir():
    pytest.skip(f'GAPS reference outputs {reference_dir / "gaps" / name} are absent')
  if name not in _CACHE:
    vertices, faces, depth, normals = _load(reference_dir, name)
    ours = scn2img.render_depth_images(vertices, faces, camera_util.dodeca_cameras())
    _CACHE[name] = (name, ours, depth, normals)
  return _CACHE[name]


def _normal_stats(name, label, depth, theirs):
  """conf2img on depth uint16 [V,H,W] vs GAPS's normals [V,4,H,W]: (mask mismatch as a fraction of GAPS's
  foreground, fraction of common pixels with normals within 2 units, same for the radius); printed."""
  intrinsics = camera_util.base_conf_intrinsics()
  ours = np.stack([conf2img.normal_images(d, intrinsics) for d in depth]).astype(np.int64)
  theirs = theirs.astype(np.int64)
  mask_ours = (ours[:, :3] > 0).any(axis=1)
  mask_theirs = (theirs[:, :3] > 0).any(axis=1)
  both = mask_ours & mask_theirs
  normal_ok = (np.abs(ours[:, :3] - theirs[:, :3]).max(axis=1) <= 2)[both].mean()
  radius_ok = (np.abs(ours[:, 3] - theirs[:, 3]) <= 2)[both].mean()
  mask_mismatch = (mask_ours != mask_theirs).sum() / mask_theirs.sum()
  print(f'\n{name} normals ({label}): mask mismatch {100 * mask_mismatch:.4f}%, normals within 2 units '
        f'{100 * normal_ok:.4f}%, radius within 2 units {100 * radius_ok:.4f}%')
  return mask_mismatch, normal_ok, radius_ok


def test_depth_matches_gaps(case):
  name, ours, theirs, _ = case
  foreground = theirs > 0
  mask_mismatch = ((ours > 0) != foreground).sum() / foreground.sum()
  both = (ours > 0) & foreground
  diff = np.abs(ours.astype(np.int64) - theirs)[both]
  print(f'\n{name} depth: mask mismatch {100 * mask_mismatch:.4f}% of foreground, within 1 unit '
        f'{100 * np.mean(diff <= 1):.4f}%, exact {100 * np.mean(diff == 0):.4f}%')
  assert mask_mismatch <= 1e-5
  assert np.mean(diff <= 1) >= 0.99999
  assert np.mean(diff == 0) >= 0.99999


def test_normals_from_gaps_depth_match_gaps(case):
  """conf2img alone: same input depth as GAPS had."""
  name, _, depth, theirs = case
  mask_mismatch, normal_ok, radius_ok = _normal_stats(name, 'GAPS depth', depth, theirs)
  assert mask_mismatch <= 0.005
  assert normal_ok >= 0.999
  assert radius_ok >= 0.999


def test_normals_end_to_end(case):
  """scn2img then conf2img, both ours (a 1-unit depth change tilts a 4-neighbour PCA normal by up to ~0.2 rad,
  so this needs the depth values exact, not just within one unit: with 99.65% exact depth it was 98.4%)."""
  name, depth, _, theirs = case
  mask_mismatch, normal_ok, radius_ok = _normal_stats(name, 'end to end', depth, theirs)
  assert mask_mismatch <= 1e-5
  assert normal_ok >= 0.9995
  assert radius_ok >= 0.9995

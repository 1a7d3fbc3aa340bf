"""ldif.util.camera_util: dodeca cameras and GAPS camera files against the original's, back-projection."""

import math
import os
import sys

import numpy as np
import pytest

from gaps_py import io as gaps_io
from gaps_py import scn2img
from ldif.util import camera_util

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DATA = os.path.join(PROJECT_ROOT, 'ldif', 'data')


def test_dodeca_cameras_match_the_original_file(reference_dir):
  reference = gaps_io.read_cameras(reference_dir / 'dodeca_cameras.cam')
  np.testing.assert_array_equal(camera_util.dodeca_cameras(), reference)  # same 6-digit values
  np.testing.assert_allclose(camera_util.dodeca_cameras(exact=True), reference, atol=5e-6)


def test_checked_in_files_match_the_reference(reference_dir):
  np.testing.assert_array_equal(gaps_io.read_cameras(os.path.join(DATA, 'dodeca_cameras.cam')),
                                gaps_io.read_cameras(reference_dir / 'dodeca_cameras.cam'))
  ours = gaps_io.read_conf(os.path.join(DATA, 'base_conf.conf'))
  theirs = gaps_io.read_conf(reference_dir / 'base_conf.conf')
  np.testing.assert_allclose(ours['intrinsics'], theirs['intrinsics'], rtol=1e-12)
  assert [name for name, _ in ours['images']] == [name for name, _ in theirs['images']]
  for (_, a), (_, b) in zip(ours['images'], theirs['images']):
    np.testing.assert_array_equal(a, b)


def test_make_camera_files_script(tmp_path, reference_dir):
  sys.path.insert(0, os.path.join(PROJECT_ROOT, 'scripts'))
  try:
    import make_camera_files  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.pop(0)
  cam_path, conf_path = make_camera_files.write_camera_files(str(tmp_path))
  assert open(cam_path).read() == open(reference_dir / 'dodeca_cameras.cam').read()
  assert open(conf_path).read() == open(reference_dir / 'base_conf.conf').read()


def test_cam2world_is_consistent_with_the_cam_rows():
  cams = camera_util.dodeca_cameras(exact=True)
  cam2world = camera_util.dodeca_cam2world()
  assert cam2world.shape == (20, 4, 4)
  for cam, m in zip(cams, cam2world):
    rotation = m[:3, :3]
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(m[:3, 3], cam[:3])
    np.testing.assert_allclose(-rotation[:, 2], cam[3:6], atol=1e-12)  # camera looks down -z
    np.testing.assert_allclose(rotation[:, 1], cam[6:9], atol=1e-12)   # camera y = up
    np.testing.assert_allclose(m[3], [0, 0, 0, 1])
  np.testing.assert_allclose(np.linalg.norm(cams[:, :3], axis=1), 0.6 * math.sqrt(3))


def test_cam2world_agrees_with_the_renderer_frames():
  eyes, rotations, _, _ = scn2img.camera_frames(camera_util.dodeca_cameras(exact=True), 224, 224)
  cam2world = camera_util.dodeca_cam2world()
  np.testing.assert_allclose(rotations, np.transpose(cam2world[:, :3, :3], (0, 2, 1)), atol=1e-12)
  np.testing.assert_allclose(eyes, cam2world[:, :3, 3])


def test_base_conf_intrinsics(reference_dir):
  k = camera_util.base_conf_intrinsics()
  np.testing.assert_allclose(k, gaps_io.read_conf(reference_dir / 'base_conf.conf')['intrinsics'], rtol=1e-11)
  assert k[0, 0] == pytest.approx(112 / math.tan(0.5))
  wide = camera_util.base_conf_intrinsics(320, 240)
  assert wide[0, 0] == wide[1, 1] and wide[0, 2] == 160 and wide[1, 2] == 120
  with pytest.raises(ValueError):
    camera_util.base_conf_intrinsics(0, 10)


def test_depth_image_to_cam_points_formula():
  depth = np.zeros((4, 6))
  depth[0, 0], depth[3, 5] = 2.0, 1.0
  points = camera_util.depth_image_to_cam_points(depth[..., None])
  assert points.shape == (4, 6, 3)
  tan_x = math.tan(0.5)
  tan_y = (4 / 6) * tan_x
  np.testing.assert_allclose(points[0, 0],
                             [(2 * 0.5 / 6 - 1) * 2 * tan_x, -(2 * 0.5 / 4 - 1) * 2 * tan_y, -2.0])
  np.testing.assert_allclose(points[3, 5], [(2 * 5.5 / 6 - 1) * tan_x, -(2 * 3.5 / 4 - 1) * tan_y, -1])
  np.testing.assert_array_equal(points[1, 1], [0, 0, 0])
  with pytest.raises(ValueError):
    camera_util.depth_image_to_cam_points(np.zeros((2, 3, 4)))


def test_back_projected_renders_land_on_the_surface():
  # Render a sphere from the dodeca cameras, back-project with cam2world: points lie on the sphere.
  import trimesh  # pylint: disable=import-outside-toplevel
  sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.4)
  depth = scn2img.render_depth_images(sphere.vertices, sphere.faces, camera_util.dodeca_cameras(), width=64,
                                      height=64)
  cam2world = camera_util.dodeca_cam2world()
  for view in (0, 9, 17):
    points = camera_util.depth_image_to_cam_points(depth[view] / 1000.0)
    valid = depth[view] > 0
    world = points[valid] @ cam2world[view, :3, :3].T + cam2world[view, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(world, axis=1), 0.4, atol=3e-3)

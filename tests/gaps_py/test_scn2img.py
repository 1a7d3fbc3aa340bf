"""gaps_py.scn2img: analytic depth renders, GAPS's front/back-face rule, the CLI and bad input."""

import math
import os

import numpy as np
import pytest
import trimesh

from gaps_py import _raster
from gaps_py import io as gaps_io
from gaps_py import scn2img


def _camera(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), xfov=0.5):
  eye = np.asarray(eye, np.float64)
  towards = np.asarray(target, np.float64) - eye
  towards /= np.linalg.norm(towards)
  return np.concatenate([eye, towards, up, [xfov, xfov, 0.0]])


def _pixel_rays(camera, width, height):
  """World-space ray origins and directions through the pixel centres, scaled so the planar depth is t.

  Rows follow the PNG order (row 0 = top).
  """
  eyes, rotations, fx, fy = scn2img.camera_frames(camera[None], width, height)
  cols = np.arange(width) + 0.5
  rows_up = height - (np.arange(height) + 0.5)  # window y of PNG row r
  x = (cols[None, :] - width / 2) / fx[0]
  y = (rows_up[:, None] - height / 2) / fy[0]
  eye_dirs = np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)),
                       -np.ones((height, width))], axis=-1)
  return eyes[0], eye_dirs @ rotations[0]


def _ray_box(origin, dirs, rotation, half):
  """Slab intersection with a box (world = rotation @ local): returns (t_near, t_far), NaN where missed."""
  o = rotation.T @ origin
  d = dirs @ rotation
  with np.errstate(divide='ignore', invalid='ignore'):
    t0 = (-half - o) / d
    t1 = (half - o) / d
  t_near = np.minimum(t0, t1).max(axis=-1)
  t_far = np.maximum(t0, t1).min(axis=-1)
  hit = (t_near <= t_far) & (t_far > 0)
  return np.where(hit, t_near, np.nan), np.where(hit, t_far, np.nan)


def _rotated_cube(half=0.4):
  rotation = trimesh.transformations.euler_matrix(0.4, 0.7, 0.1)[:3, :3]
  box = trimesh.creation.box(extents=(2 * half,) * 3)
  return np.asarray(box.vertices) @ rotation.T, np.asarray(box.faces, np.int64), rotation


def test_cube_depth_is_planar_depth_at_pixel_centres():
  vertices, faces, rotation = _rotated_cube()
  camera = _camera((0.3, 0.4, 2.0))
  width, height = 96, 80
  image = scn2img.render_depth_images(vertices, faces, camera[None], width=width, height=height)[0]
  origin, dirs = _pixel_rays(camera, width, height)
  t_near, t_far = _ray_box(origin, dirs, rotation, 0.4)
  expected = np.where(np.isnan(t_near), 0.0, 1000.0 * np.nan_to_num(t_near))
  # Pixel centres within ~0.01 px of the silhouette are ambiguous; away from it the masks must agree.
  grazing = ~np.isnan(t_near) & (t_far - t_near < 0.002)
  solid = (expected > 0) & ~grazing
  assert solid.sum() > 1500
  np.testing.assert_array_equal(image[~grazing] > 0, expected[~grazing] > 0)
  assert grazing.sum() < 30
  # floor(1000 d), read back a hair closer than d (GAPS's glDepthRange(0, 0.999999) for front faces).
  floor = np.floor(expected[solid])
  assert np.all(image[solid] <= floor) and np.all(image[solid] >= floor - 1)
  assert np.mean(image[solid] == floor) > 0.5
  # The depth varies across the three visible faces (planar depth, not ray length).
  assert image[solid].max() - image[solid].min() > 300


def test_hole_shows_back_faces():
  box = trimesh.creation.box(extents=(0.8, 0.8, 0.8))
  vertices, faces = np.asarray(box.vertices), np.asarray(box.faces, np.int64)
  centroids = vertices[faces].mean(axis=1)
  open_faces = faces[centroids[:, 2] < 0.39]  # remove the face looking at the camera
  camera = _camera((0.0, 0.0, 3.0))
  closed = scn2img.render_depth_images(vertices, faces, camera[None], width=64, height=64)[0]
  opened = scn2img.render_depth_images(vertices, open_faces, camera[None], width=64, height=64)[0]
  centre = opened[28:36, 28:36]
  assert np.all(np.abs(closed[28:36, 28:36].astype(int) - 2600) <= 1)  # front face at z = +0.4
  assert np.all(np.abs(centre.astype(int) - 3400) <= 1)                 # inside of the back face at z = -0.4
  np.testing.assert_array_equal(opened > 0, closed > 0)


def _quad(z, facing_camera, half=0.05):
  vertices = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
  faces = np.array([[0, 1, 2], [0, 2, 3]]) if facing_camera else np.array([[0, 2, 1], [0, 3, 2]])
  return vertices, faces


@pytest.mark.parametrize('back_offset, back_wins', [(0.004, False), (0.012, True)])
def test_front_faces_win_near_ties(back_offset, back_wins):
  # A small scene (R ~ 0.07, near ~ 7e-4) seen from distance 2.5 makes GAPS's depth-range trick visible:
  # front faces are drawn into glDepthRange(0, 0.999999), so they compete (and read back) as if ~8.8 mm
  # closer, and a back face must be more than that in front of them to show.
  front_v, front_f = _quad(0.0, True)
  back_v, back_f = _quad(back_offset, False)
  vertices = np.concatenate([front_v, back_v])
  faces = np.concatenate([front_f, back_f + 4])
  camera = _camera((0.0, 0.0, 2.5), xfov=0.05)[None]
  centre = scn2img.render_depth_images(vertices, faces, camera, width=64, height=64)[0, 24:40, 24:40]
  near, far = scn2img.clip_planes(vertices, faces)
  # The front quad's window depth through OpenGL's float32 pipeline: its vertices all have clip z = MVP[2, 3]
  # (the float32 sum of c t_z and d) and clip w = 2.5; z_window = fma(z_ndc, 0.4999995, 0.4999995) is
  # stored in the 24-bit depth buffer, read back as float32 and unprojected with the float32 projection.
  modelview, projection = scn2img.gl_matrices(camera, 64, 64, near, far)
  c, d, t_z = np.float32(projection[0, 2, 2]), np.float32(projection[0, 2, 3]), np.float32(modelview[0, 2, 3])
  assert t_z == -2.5
  clip_z = np.float32(np.float32(c * t_z) + d)
  z_ndc = np.float32(clip_z * np.float32(np.float32(1.0) / np.float32(2.5)))
  half_range = np.float32(0.5 * 0.999999)
  window_z = _raster.fma32_numpy(z_ndc, half_range, half_range)
  stored = np.rint(np.float32(window_z * np.float32(2 ** 24 - 1)))
  read_back = float(np.float32(stored * (1.0 / (2 ** 24 - 1))))
  front_value = math.floor(1000 * float(d) / (2 * read_back - 1 + float(c)))
  assert 2490 <= front_value <= 2492
  plain_zbuffer = math.floor(1000 * (2.5 - back_offset))
  if back_wins:  # (the 24-bit depth buffer resolves only ~0.5 units here)
    assert np.all(np.abs(centre.astype(int) - plain_zbuffer) <= 1) and np.all(centre < front_value - 1)
  else:
    assert plain_zbuffer == 2496
    assert np.all(centre == front_value)


def test_dodeca_views_of_a_sphere():
  sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.45)
  from ldif.util import camera_util  # pylint: disable=import-outside-toplevel
  images = scn2img.render_depth_images(sphere.vertices, sphere.faces, camera_util.dodeca_cameras())
  assert images.shape == (20, 224, 224) and images.dtype == np.uint16
  distance = np.linalg.norm(camera_util.dodeca_eyes(), axis=1)
  for view in range(20):
    # The sphere's nearest point is straight ahead at distance - 0.45 (planar depth at the image centre).
    centre = images[view, 111:113, 111:113].astype(np.float64) / 1000.0
    assert np.all(np.abs(centre - (distance[view] - 0.45)) < 2e-3)
    # The silhouette radius in pixels: f * tan(asin(r / distance)).
    area = (images[view] > 0).sum()
    radius_px = 112 / math.tan(0.5) * math.tan(math.asin(0.45 / distance[view]))
    assert area == pytest.approx(math.pi * radius_px ** 2, rel=0.02)


def test_bad_inputs():
  vertices, faces, _ = _rotated_cube()
  camera = _camera((0.0, 0.0, 2.0))[None]
  with pytest.raises(ValueError, match='face indices'):
    scn2img.render_depth_images(vertices, faces + 100, camera)
  with pytest.raises(ValueError, match='NaN'):
    scn2img.render_depth_images(np.full_like(vertices, np.nan), faces, camera)
  with pytest.raises(ValueError, match=r'\[V, 12\]'):
    scn2img.render_depth_images(vertices, faces, camera[:, :10])
  with pytest.raises(ValueError, match='parallel'):
    scn2img.render_depth_images(vertices, faces, np.array([[0, 2, 0, 0, -1, 0, 0, 1, 0, 0.5, 0.5, 0]], float))
  with pytest.raises(ValueError, match='xfov'):
    scn2img.render_depth_images(vertices, faces, camera, xfov=2.0)
  with pytest.raises(ValueError, match='width'):
    scn2img.render_depth_images(vertices, faces, camera, width=0)


def test_cli_writes_gaps_named_pngs(tmp_path):
  vertices, faces, _ = _rotated_cube()
  mesh_path = tmp_path / 'cube.ply'
  trimesh.Trimesh(vertices, faces, process=False).export(mesh_path)
  cams = np.stack([_camera((0.0, 0.0, 2.0)), _camera((1.5, 0.5, 1.0))])
  gaps_io.write_cameras(tmp_path / 'views.cam', cams, digits=17)
  out_dir = tmp_path / 'depth_images'
  status = scn2img.main([str(mesh_path), str(tmp_path / 'views.cam'), str(out_dir), '-capture_depth_images',
                         '-width', '40', '-height', '30', '-mesa'])
  assert status == 0
  assert sorted(os.listdir(out_dir)) == ['000000_depth.png', '000001_depth.png']
  expected = scn2img.render_depth_images(*gaps_io.load_mesh(mesh_path), cams, width=40, height=30)
  for index in range(2):
    np.testing.assert_array_equal(gaps_io.read_png16(out_dir / f'{index:06d}_depth.png'), expected[index])


def test_cli_bad_camera_file(tmp_path, caplog):
  vertices, faces, _ = _rotated_cube()
  mesh_path = tmp_path / 'cube.ply'
  trimesh.Trimesh(vertices, faces, process=False).export(mesh_path)
  garbled = tmp_path / 'garbled.cam'
  garbled.write_text('0 0 2  0 0 -1  0 1 0  0.5 0.5\n')  # 11 numbers
  for cam in (garbled, tmp_path / 'missing.cam'):
    status = scn2img.main([str(mesh_path), str(cam), str(tmp_path / 'out'), '-capture_depth_images'])
    assert status == 1
    assert str(cam) in caplog.text
    caplog.clear()
  assert scn2img.main([str(mesh_path), str(garbled), str(tmp_path / 'out')]) == 1  # no -capture_depth_images
  assert 'capture_depth_images is required' in caplog.text

"""gaps_py.io geometry section: atomic writes, mesh loading/writing, .grd/.sdf/.pts/matrix formats."""

import os

import numpy as np
import pytest
import trimesh

from gaps_py import io as gaps_io
import geometry_meshes


# ---- atomic writes ----


def test_atomic_write_replaces_on_success_and_keeps_old_file_on_failure(tmp_path):
  path = tmp_path / 'out.bin'
  with gaps_io.atomic_write(path) as f:
    f.write(b'first')
  assert path.read_bytes() == b'first'
  with pytest.raises(RuntimeError):
    with gaps_io.atomic_write(path) as f:
      f.write(b'second, half written')
      raise RuntimeError('boom')
  assert path.read_bytes() == b'first'
  assert sorted(os.listdir(tmp_path)) == ['out.bin']
  with gaps_io.atomic_write(tmp_path / 'text.txt', mode='w') as f:
    f.write('héllo\n')
  assert (tmp_path / 'text.txt').read_text(encoding='utf-8') == 'héllo\n'
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(tmp_path / 'text.txt').st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_atomic_path(tmp_path):
  path = tmp_path / 'image.png'
  with gaps_io.atomic_path(path) as tmp:
    assert tmp.endswith('.png') and os.path.dirname(tmp) == str(tmp_path)
    with open(tmp, 'wb') as f:
      f.write(b'png bytes')
  assert path.read_bytes() == b'png bytes'
  with pytest.raises(ValueError):
    with gaps_io.atomic_path(path) as tmp:
      with open(tmp, 'wb') as f:
        f.write(b'other')
      raise ValueError('failed')
  assert path.read_bytes() == b'png bytes'
  assert sorted(os.listdir(tmp_path)) == ['image.png']


# ---- meshes ----


def test_mesh_error_message_names_the_file():
  e = gaps_io.MeshError('/a/b.ply', 'the mesh has no faces')
  assert isinstance(e, ValueError)
  assert str(e) == '/a/b.ply: the mesh has no faces'
  assert e.path == '/a/b.ply' and e.problem == 'the mesh has no faces'


@pytest.mark.parametrize('ext', ['.ply', '.obj', '.off'])
def test_write_then_load_round_trip(tmp_path, ext):
  v, f = geometry_meshes.sphere(2)
  path = tmp_path / f'sphere{ext}'
  gaps_io.write_mesh(path, v, f)
  v2, f2 = gaps_io.load_mesh(path)
  assert v2.dtype == np.float64 and f2.dtype == np.int64
  np.testing.assert_array_equal(f2, f)
  tol = {'.ply': 1e-7, '.obj': 1e-6, '.off': 0}[ext]  # float32 / %g / %.17g
  np.testing.assert_allclose(v2, v, rtol=tol, atol=tol)


def test_obj_is_written_like_gaps(tmp_path):
  path = tmp_path / 'm.obj'
  gaps_io.write_mesh(path, np.array([[0.123456789, -1e-7, 12345678.0], [1, 0, 0], [0, 1, 0]]), [[0, 1, 2]])
  assert path.read_text() == 'v 0.123457 -1e-07 1.23457e+07\nv 1 0 0\nv 0 1 0\nf 1 2 3\n'


def test_soups_stay_soups_and_unused_vertices_are_kept(tmp_path):
  v, f = geometry_meshes.soup(*geometry_meshes.sphere(1))
  v = np.concatenate([np.zeros((5, 3)), v])  # unused leading vertices, like bob.ply
  f = f + 5
  path = tmp_path / 'soup.ply'
  gaps_io.write_mesh(path, v, f)
  v2, f2 = gaps_io.load_mesh(path)
  assert v2.shape == v.shape and np.array_equal(f2, f)


def test_quads_are_triangulated(tmp_path):
  (tmp_path / 'q.obj').write_text('v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n')
  (tmp_path / 'q.off').write_text('OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n')
  for name in ('q.obj', 'q.off'):
    v, f = gaps_io.load_mesh(tmp_path / name)
    assert f.shape == (2, 3)
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()
    assert area == pytest.approx(1.0)


def test_obj_vertex_indexing_is_kept_despite_texture_seams(tmp_path):
  (tmp_path / 't.obj').write_text('v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvt 1 0\nvt 0 1\nvt 0.5 0.5\n'
                                  'f 1/1 3/3 2/2\nf 1/4 2/2 4/3\nf 1/1 4/2 3/3\nf 2/2 3/1 4/4\n')
  v, f = gaps_io.load_mesh(tmp_path / 't.obj')
  np.testing.assert_array_equal(v, [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
  np.testing.assert_array_equal(f, [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def test_stl_loads(tmp_path):
  v, f = geometry_meshes.box()
  path = tmp_path / 'box.stl'
  trimesh.Trimesh(v, f, process=False).export(path)
  v2, f2 = gaps_io.load_mesh(path)
  assert f2.shape == (12, 3)
  np.testing.assert_allclose(np.sort(v2[f2].reshape(-1, 3), axis=0), np.sort(v[f].reshape(-1, 3), axis=0),
                             atol=1e-6)


def test_mesh_with_holes_loads(tmp_path):
  v, f = geometry_meshes.sphere_with_hole()
  path = tmp_path / 'open.ply'
  gaps_io.write_mesh(path, v, f)
  assert len(gaps_io.load_mesh(path)[1]) == len(f)


def test_degenerate_faces_are_dropped_with_a_warning(tmp_path, monkeypatch):
  warnings = []
  monkeypatch.setattr(gaps_io.log, 'warning', lambda msg, *a: warnings.append(msg % a if a else msg))
  path = tmp_path / 'deg.off'
  path.write_text('OFF\n4 3 0\n0 0 0\n1 0 0\n0 1 0\n2 0 0\n3 0 1 2\n3 0 1 3\n3 1 1 2\n')
  v, f = gaps_io.load_mesh(path)
  np.testing.assert_array_equal(f, [[0, 1, 2]])
  assert len(warnings) == 1 and str(path) in warnings[0] and '2 degenerate' in warnings[0]


@pytest.mark.parametrize('name, content, problem', [
    ('missing.ply', None, 'no such file'),
    ('mesh.xyz', '0 0 0\n', 'unsupported mesh extension'),
    ('empty.obj', '', 'no faces'),
    ('points.obj', 'v 0 0 0\nv 1 0 0\n', 'no faces'),
    ('nan.off', 'OFF\n3 1 0\n0 0 nan\n1 0 0\n0 1 0\n3 0 1 2\n', 'NaN or inf'),
    ('inf.obj', 'v 0 0 inf\nv 1 0 0\nv 0 1 0\nf 1 2 3\n', 'NaN or inf'),
    ('range.off', 'OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n', 'range'),
    ('flat.off', 'OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n', 'degenerate'),
    ('garbage.ply', b'\x00\x01 not a ply file', 'could not read'),
])
def test_bad_meshes_raise_mesh_error_naming_the_file(tmp_path, name, content, problem):
  path = tmp_path / name
  if isinstance(content, bytes):
    path.write_bytes(content)
  elif content is not None:
    path.write_text(content)
  with pytest.raises(gaps_io.MeshError, match=problem) as info:
    gaps_io.load_mesh(path)
  assert str(info.value).startswith(f'{path}: ')


def test_unreadable_file_raises_mesh_error(tmp_path):
  path = tmp_path / 'dir.ply'
  path.mkdir()  # a directory is not a readable mesh file
  with pytest.raises(gaps_io.MeshError, match=str(path)):
    gaps_io.load_mesh(path)


def test_write_mesh_rejects_unknown_extension(tmp_path):
  with pytest.raises(ValueError, match='unsupported'):
    gaps_io.write_mesh(tmp_path / 'm.glb', *geometry_meshes.box())


# ---- grids, point files, matrices ----


def test_grd_round_trip_and_layout(tmp_path, rng):
  values = rng.normal(size=(3, 4, 5)).astype(np.float32)  # [Z, Y, X]
  w2g = np.arange(16, dtype=np.float32).reshape(4, 4)
  path = tmp_path / 'g.grd'
  gaps_io.write_grd(path, values, w2g)
  raw = path.read_bytes()
  assert len(raw) == 76 + 4 * values.size
  np.testing.assert_array_equal(np.frombuffer(raw[:12], '<i4'), [5, 4, 3])  # X, Y, Z
  np.testing.assert_array_equal(np.frombuffer(raw[12:76], '<f4'), w2g.ravel())
  # x fastest: the second stored value is values[0, 0, 1].
  assert np.frombuffer(raw[76:84], '<f4')[1] == values[0, 0, 1]
  v2, w2 = gaps_io.read_grd(path)
  assert v2.dtype == np.float32 and w2.dtype == np.float32
  np.testing.assert_array_equal(v2, values)
  np.testing.assert_array_equal(w2, w2g)


def test_bad_grd_files(tmp_path):
  with pytest.raises(ValueError, match='cannot read'):
    gaps_io.read_grd(tmp_path / 'missing.grd')
  (tmp_path / 'short.grd').write_bytes(b'\x00' * 10)
  with pytest.raises(ValueError, match='short.grd.*too short'):
    gaps_io.read_grd(tmp_path / 'short.grd')
  gaps_io.write_grd(tmp_path / 'g.grd', np.zeros((2, 2, 2)), np.eye(4))
  (tmp_path / 'cut.grd').write_bytes((tmp_path / 'g.grd').read_bytes()[:-4])
  with pytest.raises(ValueError, match='does not match resolution'):
    gaps_io.read_grd(tmp_path / 'cut.grd')


def test_sdf_and_pts_round_trips(tmp_path, rng):
  sdf = rng.normal(size=(7, 4))
  pts = rng.normal(size=(9, 6))
  gaps_io.write_sdf(tmp_path / 'a.sdf', sdf)
  gaps_io.write_pts(tmp_path / 'a.pts', pts)
  assert os.path.getsize(tmp_path / 'a.sdf') == 7 * 16 and os.path.getsize(tmp_path / 'a.pts') == 9 * 24
  np.testing.assert_array_equal(gaps_io.read_sdf(tmp_path / 'a.sdf'), sdf.astype(np.float32))
  np.testing.assert_array_equal(gaps_io.read_pts(tmp_path / 'a.pts'), pts.astype(np.float32))
  with pytest.raises(ValueError, match=r'\[N, 4\]'):
    gaps_io.write_sdf(tmp_path / 'b.sdf', pts)
  (tmp_path / 'odd.sdf').write_bytes(b'\x00' * 20)
  with pytest.raises(ValueError, match='odd.sdf'):
    gaps_io.read_sdf(tmp_path / 'odd.sdf')


def test_matrix_format(tmp_path):
  m = np.array([[0.512713, 0, 0, -0.0422312], [0, 0.512713, 0, 0.0974473], [0, 0, 0.512713, 3.45043e-08],
                [0, 0, 0, 1]])
  gaps_io.write_matrix(tmp_path / 'm.txt', m)
  text = (tmp_path / 'm.txt').read_text()
  assert text == ('0.512713 0 0 -0.0422312 0 0.512713 0 0.0974473 0 0 0.512713 3.45043e-08 0 0 0 1 ')
  np.testing.assert_array_equal(gaps_io.read_matrix(tmp_path / 'm.txt'), m)
  (tmp_path / 'bad.txt').write_text('1 2 3')
  with pytest.raises(ValueError, match='bad.txt.*16 numbers'):
    gaps_io.read_matrix(tmp_path / 'bad.txt')


# ---- byte-exact against GAPS's own files ----


@pytest.mark.parametrize('mesh', ['bob', 'blub'])
def test_reference_files_rewrite_byte_identical(reference_dir, tmp_path, mesh):
  ref = reference_dir / 'gaps' / mesh
  values, w2g = gaps_io.read_grd(ref / 'coarse_grid.grd')
  assert values.shape == (32, 32, 32)
  np.testing.assert_allclose(w2g, [[31 / 1.4, 0, 0, 15.5], [0, 31 / 1.4, 0, 15.5], [0, 0, 31 / 1.4, 15.5],
                                   [0, 0, 0, 1]], rtol=1e-6)
  gaps_io.write_grd(tmp_path / 'g.grd', values, w2g)
  assert (tmp_path / 'g.grd').read_bytes() == (ref / 'coarse_grid.grd').read_bytes()
  for name in ('nss_points.sdf', 'uniform_points.sdf'):
    samples = gaps_io.read_sdf(ref / name)
    assert samples.shape == (100000, 4)
    gaps_io.write_sdf(tmp_path / name, samples)
    assert (tmp_path / name).read_bytes() == (ref / name).read_bytes()
  gaps_io.write_matrix(tmp_path / 'm.txt', gaps_io.read_matrix(ref / 'orig_to_gaps.txt'))
  assert (tmp_path / 'm.txt').read_bytes() == (ref / 'orig_to_gaps.txt').read_bytes()
  v, f = gaps_io.load_mesh(reference_dir / 'meshes' / f'{mesh}.ply')
  assert f.shape == {'bob': (10688, 3), 'blub': (14208, 3)}[mesh]
  assert len(v) == {'bob': 37408, 'blub': 49730}[mesh]  # soup with unused vertices, not welded

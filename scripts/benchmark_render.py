"""Times gaps_py's depth renders (scn2img) and normal images (conf2img) per mesh, on one core.

    python scripts/benchmark_render.py [--meshes ../shared/reference/meshes/bob.ply,...] [--repeats 5]

Each mesh is normalized as msh2msh does (rounded like GAPS's OBJ), then the in-memory library calls the
dataset pipeline makes are timed: `render_depth_images` for the 20 dodeca views at 224x224 and `normal_images`
for each of the 20 depth images. PNG I/O and numba compilation (cached on disk, warmed up first) are excluded;
numba runs single-threaded (`numba.set_num_threads(1)`). Prints the median of --repeats runs per mesh, GAPS's
scn2img/conf2img medians from ../shared/reference/gaps/timings.md for comparison, and the command line.
"""

import os
import sys
import time

import numba
import numpy as np
from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaps_py import conf2img  # pylint: disable=wrong-import-position
from gaps_py import io as gaps_io  # pylint: disable=wrong-import-position
from gaps_py import msh2msh  # pylint: disable=wrong-import-position
from gaps_py import scn2img  # pylint: disable=wrong-import-position
from ldif.util import camera_util  # pylint: disable=wrong-import-position

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_MESHES = ','.join([
    os.path.join(_ROOT, '..', 'shared', 'reference', 'meshes', 'bob.ply'),
    os.path.join(_ROOT, '..', 'shared', 'reference', 'meshes', 'blub.ply'),
    '/work/cgal/data/meshes/cow.off',
    '/work/cgal/data/meshes/elephant.off',
])
# GAPS medians (wall seconds, whole process) from ../shared/reference/gaps/timings.md: (scn2img, conf2img).
_GAPS_SECONDS = {
    'bob': (0.392, 0.942), 'blub': (0.501, 0.853), 'elephant': (0.250, 0.786), 'cow': (0.331, 0.726)}

FLAGS = flags.FLAGS
flags.DEFINE_string('meshes', _DEFAULT_MESHES, 'Comma-separated mesh files (.ply/.obj/.off).')
flags.DEFINE_integer('repeats', 5, 'Timed runs per mesh (the median is reported).')
flags.DEFINE_integer('threads', 1, 'numba threads.')


def time_mesh(path, repeats):
  """Returns (triangles, foreground pixels, median wall and CPU seconds for the renders and the normals)."""
  vertices, faces = gaps_io.load_mesh(path)
  vertices, _ = msh2msh.normalize_mesh(vertices, faces)
  cameras = camera_util.dodeca_cameras()
  intrinsics = camera_util.base_conf_intrinsics()
  depth = scn2img.render_depth_images(vertices, faces, cameras)  # warm-up (compile or load the cache)
  conf2img.normal_images(depth[0], intrinsics)
  times = []  # rows: render wall, render CPU, normals wall, normals CPU
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    depth = scn2img.render_depth_images(vertices, faces, cameras)
    wall_1, cpu_1 = time.perf_counter(), time.process_time()
    for image in depth:
      conf2img.normal_images(image, intrinsics)
    times.append((wall_1 - wall, cpu_1 - cpu, time.perf_counter() - wall_1, time.process_time() - cpu_1))
  return len(faces), int((depth > 0).sum()), np.median(np.array(times), axis=0)


def main(argv):
  del argv
  numba.set_num_threads(FLAGS.threads)
  print(f'numba threads: {numba.get_num_threads()}, repeats: {FLAGS.repeats}')
  print('median seconds, wall (CPU) per mesh; GAPS: whole-process wall medians of scn2img + conf2img')
  print(f'{"mesh":10s} {"tris":>7s} {"fg px":>8s} {"20 depth":>17s} {"20 normals":>17s} {"sum":>17s} '
        f'{"GAPS":>14s}')
  for path in FLAGS.meshes.split(','):
    name = os.path.splitext(os.path.basename(path))[0]
    if not os.path.exists(path):
      print(f'{name:10s} (missing: {path})')
      continue
    tris, foreground, (render_wall, render_cpu, normals_wall, normals_cpu) = time_mesh(path, FLAGS.repeats)
    gaps = _GAPS_SECONDS.get(name)
    gaps_text = f'{gaps[0]:.3f}+{gaps[1]:.3f}' if gaps else '-'
    sum_wall, sum_cpu = render_wall + normals_wall, render_cpu + normals_cpu
    print(f'{name:10s} {tris:7d} {foreground:8d} {render_wall:8.4f} ({render_cpu:.4f}) '
          f'{normals_wall:8.4f} ({normals_cpu:.4f}) {sum_wall:8.4f} ({sum_cpu:.4f}) {gaps_text:>14s}')
  print('command: python ' + ' '.join([os.path.relpath(__file__)] + sys.argv[1:]))


if __name__ == '__main__':
  app.run(main)

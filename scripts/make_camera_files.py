"""Writes LDIF's camera files: `dodeca_cameras.cam` (scn2img cameras) and `base_conf.conf` (conf2img base).

Replaces the original's checked-in `data/dodeca_cameras.cam` and `data/base_conf.conf` (reference section 2.2)
with files generated from `ldif.util.camera_util`:

    python scripts/make_camera_files.py [--output_directory ldif/data] [--width 224] [--height 224]

The `.cam` file prints 6 significant digits as LDIF's does; the conf lists 20 `NNNNNN_depth.png` images with
identity extrinsics after the intrinsics matrix (conf2img then estimates normals in camera coordinates).
"""

import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gaps_py import io as gaps_io  # pylint: disable=wrong-import-position
from ldif.util import camera_util  # pylint: disable=wrong-import-position
from ldif.util import log  # pylint: disable=wrong-import-position

_DEFAULT_DIRECTORY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'ldif', 'data')

FLAGS = flags.FLAGS
flags.DEFINE_string('output_directory', _DEFAULT_DIRECTORY,
                    'Where to write dodeca_cameras.cam and base_conf.conf.')
flags.DEFINE_integer('width', 224, 'Render width in pixels (sets the conf intrinsics).')
flags.DEFINE_integer('height', 224, 'Render height in pixels (sets the conf intrinsics).')


def write_camera_files(output_directory, width=224, height=224):
  """Writes `dodeca_cameras.cam` and `base_conf.conf` into output_directory; returns their paths."""
  os.makedirs(output_directory, exist_ok=True)
  cam_path = os.path.join(output_directory, 'dodeca_cameras.cam')
  conf_path = os.path.join(output_directory, 'base_conf.conf')
  gaps_io.write_cameras(cam_path, camera_util.dodeca_cameras())
  names = [f'{i:06d}_depth.png' for i in range(camera_util.NUM_DODECA_VIEWS)]
  gaps_io.write_conf(conf_path, camera_util.base_conf_intrinsics(width, height), names)
  return cam_path, conf_path


def main(argv):
  del argv
  for path in write_camera_files(FLAGS.output_directory, FLAGS.width, FLAGS.height):
    log.info('Wrote %s', path)


if __name__ == '__main__':
  app.run(main)

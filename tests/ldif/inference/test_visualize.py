"""Shaded renders and the results page."""

import numpy as np
import pandas as pd
from PIL import Image
import trimesh

from ldif.inference import metrics
from ldif.inference import visualize


def test_shading_of_a_sphere():
  sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.3)
  image = visualize.render_views(sphere.vertices, sphere.faces, visualize.GT_TINT, views=(0,), size=96)
  assert image.shape == (96, 96, 3) and image.dtype == np.uint8
  # Background is white; the sphere, centred in the view, is not.
  assert (image[0, 0] == 255).all() and (image[-1, -1] == 255).all()
  centre = image[44:52, 44:52].astype(float).mean(axis=(0, 1))
  assert (centre < 255).all()
  # Lambert with the light at the camera: the middle faces the camera and is brighter than near the
  # silhouette.
  row = image[48].astype(float).sum(axis=-1)
  covered = np.nonzero(row < 3 * 255)[0]
  assert row[48] > row[covered[1]] + 50
  # Blue tint: blue channel dominates.
  assert centre[2] > centre[0]


def test_empty_depth_image_is_background():
  image = visualize.shade_depth_image(np.zeros([8, 8], np.uint16), visualize.PRED_TINT)
  assert (image == 255).all()


def test_comparison_image_and_png(tmp_path):
  gt = trimesh.creation.icosphere(subdivisions=3, radius=0.3)
  pred = trimesh.creation.box(extents=[0.4, 0.4, 0.4])
  image = visualize.comparison_image(gt, pred, views=(0, 4), size=64)
  assert image.shape == (2 * 64 + 2, 2 * 64, 3)
  path = tmp_path / 'sub' / 'x.png'
  visualize.write_png(str(path), image)
  np.testing.assert_array_equal(np.asarray(Image.open(path)), image)


def test_index_html_lists_examples_and_metrics(tmp_path):
  row = {'key': 'animal|cow', 'IoU': 81.25, 'Chamfer': 0.5, 'F-Score (tau)': 60.0, 'F-Score (2*tau)': 70.0,
         'Normal Consistency': 0.9}
  tables = metrics.result_tables([row])
  entries = [dict(row, image='visualize/train/animal/cow.png'), dict(row, key='a|<b>', image=None)]
  path = tmp_path / 'index.html'
  visualize.write_index_html(str(path), [('split train', tables.summary, entries)], title='t')
  text = path.read_text()
  assert '<img src="visualize/train/animal/cow.png"' in text
  assert '81.250' in text and 'animal|cow' in text
  assert 'a|&lt;b&gt;' in text  # escaped
  assert text.count('<img') == 1
  # The summary table is in the page, too.
  assert isinstance(tables.summary, pd.DataFrame) and '>mean<' in text

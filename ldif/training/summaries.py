"""TensorBoard summaries of a training run: every loss term, the original's extra scalars, the input views.

Scalar names follow the original (reference section 1.4): `<split>-loss/<term>` for each loss term,
`<split>-final-loss/final_loss_value`, `<split>-<uniform_sample|ns_sample>-outside-frac`, `<split>-lamp-frac`
and `<split>-chair-frac` (fraction of the batch whose mesh name starts with the lamp / chair synset), plus
`<split>-loss/ec_loss_class_comp_mean` and `<split>-loss/ec_loss_outside_bb_comp_mean` for SIF.
Images: `<split>-input_views` (the depth views of the first batch item tiled 4 x 5, each scaled to [0, 1]).
`--visualize` writes `visualize/*` images of one batch before training (instead of the original's GAPS
viewers).
"""

import numpy as np
import tensorflow as tf

LAMP_SYNSET = '03636649'
CHAIR_SYNSET = '03001627'


def _synset_fraction(mesh_names, synset):
  names = [
      n.decode('utf-8', 'replace') if isinstance(n, bytes) else str(n)
      for n in np.asarray(mesh_names).ravel()
  ]
  if not names:
    return 0.0
  return float(np.mean([n[:8] == synset for n in names]))


def tile_views(depth_images, columns=5):
  """Tiles V depth views [V, h, w, 1] into one image [rows*h, columns*w, 1] in [0, 1] (each view / max)."""
  views = np.asarray(depth_images, dtype=np.float32)
  v, h, w, _ = views.shape
  peak = views.reshape(v, -1).max(axis=1)
  views = views / np.where(peak > 0, peak, 1.0)[:, None, None, None]
  columns = min(columns, v)
  rows = -(-v // columns)
  canvas = np.zeros((rows * h, columns * w, 1), np.float32)
  for k in range(v):
    r, c = divmod(k, columns)
    canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = views[k]
  return canvas


def write_step_summaries(writer, step, split, total, terms, extras, mesh_names=None, depth_images=None):
  """Writes one step's scalars (and the input views when given) to a tf.summary writer.

  Args:
    writer: tf.summary.SummaryWriter.
    step: int global step.
    split: dataset split name (the prefix of every tag).
    total: float, the total loss.
    terms: dict term summary name -> float (see ldif.training.losses.SUMMARY_NAMES).
    extras: dict of the additional scalars ('uniform_sample-outside-frac', 'ec_loss_class_comp_mean', ...).
    mesh_names: optional [B] bytes (for the lamp/chair fractions).
    depth_images: optional [B, V, h, w, 1] float32 (gaps units); the first item is written as an image.
  """
  with writer.as_default(step=int(step)):
    for name, value in terms.items():
      tf.summary.scalar(f'{split}-loss/{name}', float(value))
    tf.summary.scalar(f'{split}-final-loss/final_loss_value', float(total))
    for name, value in extras.items():
      if name.startswith('ec_loss'):
        tf.summary.scalar(f'{split}-loss/{name}', float(value))
      else:
        tf.summary.scalar(f'{split}-{name}', float(value))
    if mesh_names is not None:
      tf.summary.scalar(f'{split}-lamp-frac', _synset_fraction(mesh_names, LAMP_SYNSET))
      tf.summary.scalar(f'{split}-chair-frac', _synset_fraction(mesh_names, CHAIR_SYNSET))
    if depth_images is not None:
      tf.summary.image(f'{split}-input_views', tile_views(np.asarray(depth_images)[0])[None], max_outputs=1)


def _points_image(points, size=256, axes=(0, 1), extent=0.75):
  """Splats points [N, 3] (gaps frame) onto a size x size image over [-extent, extent]^2 (row 0 = +axis 1)."""
  image = np.zeros((size, size, 1), np.float32)
  p = np.asarray(points, np.float32)
  u = ((p[:, axes[0]] + extent) / (2 * extent) * (size - 1)).round().astype(int)
  v = ((extent - p[:, axes[1]]) / (2 * extent) * (size - 1)).round().astype(int)
  keep = (u >= 0) & (u < size) & (v >= 0) & (v < size)
  image[v[keep], u[keep], 0] = 1.0
  return image


def write_visualization(writer, step, batch, max_items=4):
  """`--visualize`: writes images of one batch: depth views, coarse-grid slices, sample projections.

  Args:
    writer: tf.summary.SummaryWriter.
    step: int step to file them under.
    batch: preprocessed batch dict of numpy arrays/tensors (`depth_images`, `grid`, `surface_points`,
      `near_surface_samples`, `uniform_samples`, `mesh_name`).
    max_items: batch items to show.
  """
  with writer.as_default(step=int(step)):
    depth = np.asarray(batch['depth_images'])
    count = min(max_items, depth.shape[0])
    tf.summary.image('visualize/depth_views', np.stack([tile_views(depth[i]) for i in range(count)]),
                     max_outputs=count)
    grid = np.asarray(batch['grid'])[:count]
    mid = grid.shape[1] // 2
    slices = np.concatenate([grid[:, mid], grid[:, :, mid], grid[:, :, :, mid]], axis=2)  # [b, 32, 96]
    inside = (slices < 0).astype(np.float32)[..., None]
    tf.summary.image('visualize/grid_inside_mid_slices_zyx', np.repeat(np.repeat(inside, 4, 1), 4, 2),
                     max_outputs=count)
    for key in ('surface_points', 'near_surface_samples', 'uniform_samples'):
      if key not in batch:
        continue
      pts = np.asarray(batch[key])[:count]
      images = []
      for i in range(count):
        xyz = pts[i, :, :3]
        if pts.shape[-1] == 4:
          xyz = xyz[pts[i, :, 3] < 0]  # inside samples
        images.append(np.concatenate([_points_image(xyz, axes=a) for a in ((0, 1), (2, 1), (0, 2))], axis=1))
      tf.summary.image(f'visualize/{key}_xy_zy_xz', np.stack(images), max_outputs=count)
    if 'mesh_name' in batch:
      names = [
          n.decode('utf-8', 'replace') if isinstance(n, bytes) else str(n)
          for n in np.asarray(batch['mesh_name'])[:count]
      ]
      tf.summary.text('visualize/mesh_names', ', '.join(names))
  writer.flush()

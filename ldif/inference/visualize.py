"""Evaluation results as files: shaded renders of ground truth and reconstruction, and an index.html.

Replaces the original eval.py's `--visualize` (an interactive GAPS `mshview` window per example, which needs a
display) with files: per example a PNG of a few views, ground truth on the top row and the reconstruction
below, both in the gaps frame (as the original showed them, so the camera always fits); and one `index.html`
that lists every example with its metrics and its PNG.

Renders come from gaps_py's depth renderer (`scn2img.render_depth_images`, the port of GAPS scn2img) with the
dodecahedron cameras; pixels are shaded by the surface normal estimated from the depth image (Lambert, light
at the camera) and tinted by depth.
"""

import html
import os

import numpy as np

from ldif.util import log

DEFAULT_VIEWS = (0, 4, 12)
"""Dodecahedron cameras used for the renders: eyes at 0.6 (1, 1, 1), 0.6 (-1, 1, 1), 0.6 (1/phi, 0, phi)."""

IMAGE_SIZE = 224
BACKGROUND = np.array([255, 255, 255], np.uint8)
GT_TINT = np.array([0.62, 0.75, 0.95])
PRED_TINT = np.array([0.95, 0.72, 0.52])


def shade_depth_image(depth_units, tint, xfov=0.5):
  """Shades a depth image by its normals: Lambert with the light at the camera, background white.

  Args:
    depth_units: uint16 [H, W] depth PNG values (floor(1000 depth), 0 = background), as scn2img returns.
    tint: float [3] RGB colour in [0, 1].
    xfov: horizontal half field of view in radians (the dodecahedron cameras' 0.5).

  Returns:
    uint8 [H, W, 3] RGB image.
  """
  from ldif.util import camera_util  # pylint: disable=g-import-not-at-top
  depth = np.asarray(depth_units)
  valid = depth > 0
  image = np.broadcast_to(BACKGROUND, depth.shape + (3,)).copy()
  if not np.any(valid):
    return image
  points = np.asarray(camera_util.depth_image_to_cam_points(depth, xfov=xfov), np.float64)  # [H, W, 3]
  # Central differences over valid neighbours (one-sided at silhouettes) give two tangents.
  du = _masked_gradient(points, valid, axis=1)
  dv = _masked_gradient(points, valid, axis=0)
  normals = np.cross(du, dv)
  norm = np.linalg.norm(normals, axis=-1, keepdims=True)
  normals = np.where(norm > 0, normals / np.maximum(norm, 1e-12), 0.0)
  view = -points / np.maximum(np.linalg.norm(points, axis=-1, keepdims=True), 1e-12)
  lambert = np.abs(np.sum(normals * view, axis=-1))
  d = depth.astype(np.float64) / 1000.0
  near, far = d[valid].min(), d[valid].max()
  fog = 1.0 - 0.35 * (d - near) / max(far - near, 1e-6)
  shade = (0.25 + 0.75 * lambert) * fog
  rgb = np.clip(shade[..., None] * np.asarray(tint)[None, None, :], 0.0, 1.0)
  image[valid] = (255.0 * rgb[valid] + 0.5).astype(np.uint8)
  return image


def _masked_gradient(points, valid, axis):
  """Finite differences of a [H, W, 3] point image along `axis`, using only valid neighbours."""
  fwd = np.zeros_like(points)
  bwd = np.zeros_like(points)
  fwd_ok = np.zeros(valid.shape, bool)
  bwd_ok = np.zeros(valid.shape, bool)
  src = [slice(None)] * 2
  dst = [slice(None)] * 2
  src[axis], dst[axis] = slice(1, None), slice(None, -1)
  fwd[tuple(dst)] = points[tuple(src)] - points[tuple(dst)]
  fwd_ok[tuple(dst)] = valid[tuple(src)] & valid[tuple(dst)]
  bwd[tuple(src)] = points[tuple(src)] - points[tuple(dst)]
  bwd_ok[tuple(src)] = valid[tuple(src)] & valid[tuple(dst)]
  both = fwd_ok & bwd_ok
  out = np.where(fwd_ok[..., None], fwd, bwd)
  return np.where(both[..., None], 0.5 * (fwd + bwd), out)


def render_views(vertices, faces, tint, views=DEFAULT_VIEWS, size=IMAGE_SIZE):
  """Shaded renders of a gaps-frame mesh from dodecahedron cameras.

  Args:
    vertices: float [V, 3], gaps frame.
    faces: int [F, 3].
    tint: float [3] RGB in [0, 1].
    views: indices into the 20 dodecahedron cameras.
    size: image width and height in pixels.

  Returns:
    uint8 [size, len(views) * size, 3]: the views side by side.
  """
  from gaps_py import scn2img  # pylint: disable=g-import-not-at-top
  from ldif.util import camera_util  # pylint: disable=g-import-not-at-top
  cameras = np.asarray(camera_util.dodeca_cameras(), np.float64)[list(views)]
  depth = scn2img.render_depth_images(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), cameras,
                                      width=size, height=size)
  xfov = float(cameras[0, 9])
  return np.concatenate([shade_depth_image(d, tint, xfov) for d in depth], axis=1)


def comparison_image(gt_mesh, pred_mesh, views=DEFAULT_VIEWS, size=IMAGE_SIZE):
  """Ground truth (top row, blue) above reconstruction (bottom row, orange), both gaps frame.

  Args:
    gt_mesh, pred_mesh: trimesh.Trimesh in the gaps frame.

  Returns:
    uint8 [2 * size, len(views) * size, 3].
  """
  top = render_views(gt_mesh.vertices, gt_mesh.faces, GT_TINT, views, size)
  bottom = render_views(pred_mesh.vertices, pred_mesh.faces, PRED_TINT, views, size)
  separator = np.full([2, top.shape[1], 3], 160, np.uint8)
  return np.concatenate([top, separator, bottom], axis=0)


def write_png(path, image):
  """Writes an RGB uint8 [H, W, 3] image as PNG, atomically (creates the parent directory)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with gaps_io.atomic_path(path) as tmp:
    Image.fromarray(np.ascontiguousarray(image, np.uint8), mode='RGB').save(tmp, format='PNG')


def _cell(value):
  if isinstance(value, float):
    return f'{value:.3f}'
  return html.escape(str(value))


def write_index_html(path, sections, title='LDIF evaluation'):
  """Writes the results page, atomically.

  Args:
    path: the `index.html` to write.
    sections: list of (heading str, summary pandas.DataFrame or None, entries); entries is a list of dicts
      with 'key', the metric columns, and 'image' (a path relative to the html file, or None).
    title: page title.
  """
  from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
  from ldif.inference import metrics  # pylint: disable=g-import-not-at-top
  columns = list(metrics.METRIC_COLUMNS)
  parts = [
      '<!DOCTYPE html>', '<html><head><meta charset="utf-8">', f'<title>{html.escape(title)}</title>',
      '<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1em}'
      'td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eee}'
      'td.k{text-align:left}img{max-width:100%}.ex{margin:1.5em 0}</style>',
      '</head><body>', f'<h1>{html.escape(title)}</h1>',
      '<p>Each image: ground truth (top, blue) and reconstruction (bottom, orange), gaps frame, from three '
      'dodecahedron cameras. IoU and F-scores in percent, Chamfer-L2 x 1000 (mesh frame), normal consistency '
      '0-1.</p>']
  for heading, summary, entries in sections:
    parts.append(f'<h2>{html.escape(heading)}</h2>')
    if summary is not None and len(summary):
      header = ''.join(f'<th>{html.escape(str(c))}</th>' for c in summary.columns)
      parts.append(f'<table><tr>{header}</tr>')
      for _, row in summary.iterrows():
        parts.append('<tr>' + ''.join(
            f'<td class="k">{_cell(v)}</td>' if i == 0 else f'<td>{_cell(v)}</td>'
            for i, v in enumerate(row.tolist())) + '</tr>')
      parts.append('</table>')
    for entry in entries:
      parts.append('<div class="ex">')
      parts.append(f'<h3>{html.escape(entry["key"])}</h3>')
      parts.append('<table><tr>' + ''.join(f'<th>{html.escape(c)}</th>' for c in columns) + '</tr><tr>' +
                   ''.join(f'<td>{_cell(entry.get(c, float("nan")))}</td>' for c in columns) +
                   '</tr></table>')
      if entry.get('image'):
        src = html.escape(entry['image'].replace(os.sep, '/'), quote=True)
        parts.append(f'<img src="{src}" alt="{html.escape(entry["key"], quote=True)}">')
      parts.append('</div>')
  parts.append('</body></html>')
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with gaps_io.atomic_write(path, mode='w') as f:
    f.write('\n'.join(parts) + '\n')
  log.verbose(f'Wrote {path}')

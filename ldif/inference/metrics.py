"""Reconstruction metrics as the original LDIF defines them, and the per-mesh / per-class result tables.

Port of ldif/inference/metrics.py (reference §7.2, §7.7). Scale factors, as in the original:
- IoU: percent (0-100), on the 100k uniform samples of an example, in the gaps frame:
  100 |P & G| / (|P | G| + 1e-5), predicted inside where the soft class < 0.5, ground truth inside where sdf < 0.
- Chamfer-L2: 1000 x (mean over P of d^2 + mean over G of d^2), squared Euclidean nearest-neighbour distances between
  100k surface samples of each mesh, in the mesh frame (the user's input units).
- F-score(tau): percent; precision/recall = 100 x fraction of samples whose squared distance is <= tau, with
  tau = 1e-4 (distance 0.01) and 2 tau = 2e-4 (distance ~0.0141), F = 2PR / (P + R + 1e-9).
- Normal consistency: fraction 0-1, mean of |n_p . n_NN(p)| in both directions (face normals of the samples).
"""

import dataclasses

import numpy as np
import pandas as pd
from scipy import spatial
import trimesh

FSCORE_TAU = 1e-4
"""F-score threshold on the *squared* distance (distance 0.01)."""

SAMPLE_COUNT = 100000
"""Surface samples per mesh for Chamfer, F-score and normal consistency."""

METRIC_COLUMNS = ('IoU', 'Chamfer', 'F-Score (tau)', 'F-Score (2*tau)', 'Normal Consistency')

# ShapeNet synset -> class name, for the summary table. The original comments airplane out (reference §10.9);
# here it is restored.
SYNSET_TO_CLASS = {
    '02691156': 'airplane', '02933112': 'cabinet', '03001627': 'chair', '03636649': 'lamp',
    '04090263': 'rifle', '04379243': 'table', '04530566': 'watercraft', '02828884': 'bench',
    '02958343': 'car', '03211117': 'display', '03691459': 'speaker', '04256520': 'sofa',
    '04401088': 'telephone', '02472293': 'bodyshapes', '04330267': 'stove', '04004475': 'printer',
    '03928116': 'piano', '02942699': 'camera', '02843684': 'birdhouse', '02818832': 'bed',
    '04460130': 'tower', '03337140': 'file', '02871439': 'bookshelf', '03710193': 'mailbox',
}
CLASS_TO_SYNSET = {v: k for k, v in SYNSET_TO_CLASS.items()}


def point_iou(pred_is_inside, gt_is_inside):
  """IoU in percent between two boolean occupancy arrays of the same shape (reference §7.2)."""
  pred = np.asarray(pred_is_inside, dtype=bool)
  gt = np.asarray(gt_is_inside, dtype=bool)
  if pred.shape != gt.shape:
    raise ValueError(f'occupancy arrays differ in shape: {pred.shape} vs {gt.shape}')
  intersection = np.logical_and(pred, gt).sum()
  union = np.logical_or(pred, gt).sum()
  return float(100.0 * intersection / (union + 1e-5))


def sample_points_and_normals(mesh, count=SAMPLE_COUNT, seed=0):
  """Area-weighted surface samples and the normals of the faces they lie on.

  Args:
    mesh: trimesh.Trimesh with at least one face of positive area.
    count: number of samples.
    seed: integer seed for trimesh's sampler.

  Returns:
    (points float64 [count, 3], normals float64 [count, 3]) in the mesh's frame.
  """
  points, face_index = trimesh.sample.sample_surface(mesh, count, seed=seed)
  return np.asarray(points, np.float64), np.asarray(mesh.face_normals[face_index], np.float64)


def _f_score(pred_to_gt_sq, gt_to_pred_sq, tau):
  precision = 100.0 * np.mean(pred_to_gt_sq <= tau)
  recall = 100.0 * np.mean(gt_to_pred_sq <= tau)
  return float(2.0 * precision * recall / (precision + recall + 1e-9))


def surface_metrics_from_samples(pred_points, pred_normals, gt_points, gt_normals):
  """Chamfer-L2, F-scores and normal consistency between two sampled surfaces (reference §7.7).

  Args:
    pred_points, gt_points: float [N, 3] / [M, 3] surface samples (same frame).
    pred_normals, gt_normals: float [N, 3] / [M, 3] unit normals of those samples.

  Returns:
    dict with 'Chamfer', 'F-Score (tau)', 'F-Score (2*tau)', 'Normal Consistency'.
  """
  pred_to_gt, pred_nn = spatial.cKDTree(gt_points).query(pred_points, workers=-1)
  gt_to_pred, gt_nn = spatial.cKDTree(pred_points).query(gt_points, workers=-1)
  pred_sq, gt_sq = pred_to_gt**2, gt_to_pred**2
  consistency = 0.5 * np.mean(np.abs(np.sum(pred_normals * gt_normals[pred_nn], axis=1))) + \
      0.5 * np.mean(np.abs(np.sum(gt_normals * pred_normals[gt_nn], axis=1)))
  return {
      'Chamfer': float(1000.0 * (pred_sq.mean() + gt_sq.mean())),
      'F-Score (tau)': _f_score(pred_sq, gt_sq, FSCORE_TAU),
      'F-Score (2*tau)': _f_score(pred_sq, gt_sq, 2.0 * FSCORE_TAU),
      'Normal Consistency': float(consistency),
  }


def mesh_metrics(pred_mesh, gt_mesh, sample_count=SAMPLE_COUNT, seed=0):
  """All surface metrics between a predicted and a ground-truth mesh, both in the mesh frame.

  Port of ldif/inference/metrics.py all_mesh_metrics. Both meshes are sampled with the same seed, so a mesh
  compared with itself scores Chamfer 0, F-scores 100 and normal consistency 1 exactly.

  Args:
    pred_mesh, gt_mesh: trimesh.Trimesh.
    sample_count: samples per mesh (100000 as the original).
    seed: sampling seed.

  Returns:
    dict: 'Chamfer', 'F-Score (tau)', 'F-Score (2*tau)', 'Normal Consistency'.

  Raises:
    ValueError: if a mesh has no faces of positive area.
  """
  for name, mesh in (('predicted', pred_mesh), ('ground-truth', gt_mesh)):
    if len(mesh.faces) == 0 or not mesh.area > 0:
      raise ValueError(f'The {name} mesh has no surface to sample')
  pred = sample_points_and_normals(pred_mesh, sample_count, seed)
  gt = sample_points_and_normals(gt_mesh, sample_count, seed)
  return surface_metrics_from_samples(*pred, *gt)


def class_of(key):
  """Class name from a mesh name 'synset|name' (synsets mapped to ShapeNet names; others kept)."""
  if key.count('|') != 1:
    raise ValueError(f"Can't split mesh name {key!r} into class|name")
  synset = key.split('|')[0]
  return SYNSET_TO_CLASS.get(synset, synset)


@dataclasses.dataclass
class ResultTables:
  """Per-mesh rows and the per-class summary (the original's full_results / result_summary CSVs)."""
  full: pd.DataFrame
  summary: pd.DataFrame


def result_tables(rows):
  """Builds the result tables from per-mesh metric dicts.

  Args:
    rows: list of dicts with 'key' (mesh name 'synset|name') and the METRIC_COLUMNS.

  Returns:
    ResultTables: `full` has columns key + METRIC_COLUMNS (one row per mesh); `summary` has class + the per-class
    means, one row per class, and a final row 'mean' = unweighted mean of the class means (as the original).
  """
  full = pd.DataFrame(rows, columns=['key', *METRIC_COLUMNS])
  classes = full['key'].map(class_of)
  summary = full[list(METRIC_COLUMNS)].groupby(classes.rename('class')).mean().reset_index()
  mean_row = summary[list(METRIC_COLUMNS)].mean(axis=0).to_frame().T
  mean_row.insert(0, 'class', 'mean')
  summary = pd.concat([summary, mean_row], ignore_index=True)
  return ResultTables(full=full, summary=summary)


def format_table(df, floatfmt='.3f'):
  """A fixed-width text table of a result DataFrame (3 decimals, as the original prints)."""
  return df.to_string(index=False, float_format=lambda v: format(v, floatfmt))

"""One evaluation example: what eval reads from an example directory.

Port of the parts of ldif/inference/example.py `InferenceExample` that eval.py uses (`from_directory`,
`depth_images`, `precomputed_surface_samples_from_dodeca`, `uniform_samples`, `tx`/`gaps2occnet`, `gt_mesh`,
`normalized_gt_mesh`, `mesh_name`). The directory is read through `ldif.datasets.example` (the one reader of
the example layout); unlike the original, the 10000-of-100000 surface subset is drawn with an explicit seed,
so an evaluation is reproducible (reference §10.13).
"""

import dataclasses
import os

import numpy as np

from ldif.datasets import example as dataset_example


@dataclasses.dataclass
class InferenceExample:
  """The inputs and ground truth of one example directory `<dataset>/<split>/<class>/<name>/`.

  Attributes:
    directory: the example directory.
    split, class_name, name: its path components (class_name is the directory name, e.g. 'animal' or a
      synset).
    mesh_name: `"<synset>|<name>"` (the `key` of the result tables).
    depth_renders: float32 [20, 224, 224, 1], dodecahedron depth in thousandths of gaps units (0 =
      background).
    surface_point_samples: float32 [10000, 6], surface points + "normals" from the depth images, gaps frame.
    uniform_samples: float32 [100000, 4], uniform points in [-0.7, 0.7]^3 + approximate signed distance
      (negative inside), gaps frame; the IoU samples.
    orig_to_gaps: float64 [4, 4], mesh frame -> gaps frame, as stored (6 significant digits).
    gt_mesh_path: the `mesh_orig.<ext>` link (the ground truth, mesh frame).
    features: the full schema dict of the example (`ldif.datasets.schema`, unbatched), as training reads it.
  """
  directory: str
  split: str
  class_name: str
  name: str
  mesh_name: str
  depth_renders: np.ndarray
  surface_point_samples: np.ndarray
  uniform_samples: np.ndarray
  orig_to_gaps: np.ndarray
  gt_mesh_path: str
  features: dict

  @classmethod
  def from_directory(cls, directory, seed=0):
    """Reads an example directory made by meshes2dataset.py.

    Args:
      directory: `<dataset>/<split>/<class>/<name>[/]`.
      seed: seed of the 10000-of-100000 surface-sample subset fed to the encoder.

    Raises:
      ValueError naming the file: missing/incomplete directory, a missing or malformed file, no `mesh_orig.*`.
    """
    directory = os.fspath(directory)
    from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
    data = dataset_example.read_example_directory(directory, seed=seed)
    split, class_name, name = dataset_example.example_identity(directory)
    matrix_path = os.path.join(directory, dataset_example.ORIG_TO_GAPS)
    try:
      orig_to_gaps = np.asarray(gaps_io.read_matrix(matrix_path), np.float64)
    except OSError as e:
      raise ValueError(f'{matrix_path}: cannot read the normalization matrix ({e})') from e
    if orig_to_gaps.shape != (4, 4) or not np.all(np.isfinite(orig_to_gaps)):
      raise ValueError(f'{matrix_path}: expected a finite 4x4 matrix, got shape {orig_to_gaps.shape}')
    if abs(np.linalg.det(orig_to_gaps)) < 1e-12:
      raise ValueError(f'{matrix_path}: the normalization matrix is singular')
    gt_path = dataset_example.find_mesh_orig(directory)
    if gt_path is None:
      raise ValueError(f'{directory}: no ground-truth mesh link mesh_orig.* '
                       f'(one of {", ".join(dataset_example.MESH_EXTENSIONS)})')
    return cls(directory=directory, split=split, class_name=class_name, name=name,
               mesh_name=data['mesh_name'].decode('utf-8'), depth_renders=data['depth_renders'],
               surface_point_samples=data['surface_point_samples'],
               uniform_samples=data['bounding_box_samples'], orig_to_gaps=orig_to_gaps, gt_mesh_path=gt_path,
               features=data)

  def batch(self):
    """The example as a batch of one: the schema dict with a leading axis of 1 (what `preprocess` takes)."""
    return {k: (np.asarray([v]) if k == 'mesh_name' else np.asarray(v)[np.newaxis])
            for k, v in self.features.items()}

  @property
  def gaps_to_orig(self):
    """float64 [4, 4], gaps frame -> mesh frame: the inverse of the stored `orig_to_gaps` (`gaps2occnet`)."""
    return np.linalg.inv(self.orig_to_gaps)

  def gt_mesh(self):
    """The ground-truth mesh in the mesh frame, as a trimesh.Trimesh (no vertex merging, as GAPS).

    Raises:
      gaps_py.io.MeshError (a ValueError) naming the file, for an unreadable or empty mesh.
    """
    import trimesh  # pylint: disable=g-import-not-at-top
    from gaps_py import io as gaps_io  # pylint: disable=g-import-not-at-top
    vertices, faces = gaps_io.load_mesh(self.gt_mesh_path)
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)

  def normalized_gt_mesh(self):
    """The ground-truth mesh mapped into the gaps frame with `orig_to_gaps` (trimesh.Trimesh)."""
    mesh = self.gt_mesh()
    v = np.asarray(mesh.vertices, np.float64)
    h = np.concatenate([v, np.ones([v.shape[0], 1])], axis=1) @ self.orig_to_gaps.T
    mesh.vertices = h[:, :3] / h[:, 3:4]
    return mesh

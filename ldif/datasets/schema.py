"""The LDIF training-example schema: the one place that defines the example features.

An example is a dict with seven keys (reference §2.7). In a TFRecord each float feature is a `FloatList` of
the row-major flattened array and `mesh_name` is a one-element `BytesList`; they are parsed back with
`tf.io.FixedLenFeature`. The parsed tuple order of the original (`process_element.parse_tf_example`) is the
order of `FEATURES`.

| key                     | shape             | dtype   | content                                           |
|-------------------------|-------------------|---------|---------------------------------------------------|
| `bounding_box_samples`  | [100000, 4]       | float32 | uniform samples in [-0.7, 0.7]^3: xyz + approx.   |
|                         |                   |         | signed distance (only its sign is used), gaps     |
| `depth_renders`         | [20, 224, 224, 1] | float32 | dodeca depth x 1000 (PNG integers), 0 = none      |
| `mesh_name`             | []                | string  | `"<synset>|<name>"`, utf-8                        |
| `near_surface_samples`  | [100000, 4]       | float32 | xyz + binary SDF (+1 out, -1 in, 0 padding)       |
| `grid`                  | [32, 32, 32]      | float32 | coarse SDF, indexed [z][y][x], negative inside    |
| `world2grid`            | [4, 4]            | float32 | gaps frame -> grid index transform of `grid`      |
| `surface_point_samples` | [10000, 6]        | float32 | xyz + "normal" from the depth images (§2.4)       |

Serialization is done here by hand in the protobuf wire format of `tf.train.Example` (so that writer processes
need not import TensorFlow and arrays go straight from numpy buffers); the bytes parse with `tf.train.Example`
and `tf.io.parse_single_example`, which the tests check.

Port of ldif/datasets/process_element.py (`full_featurespec`, `make_tf_example`, `parse_tf_example`) and the
class-name table of ldif/inference/example.py.
"""

import dataclasses

import numpy as np

VIEW_COUNT = 20
IMAGE_HEIGHT = 224
IMAGE_WIDTH = 224
SAMPLE_COUNT = 100000
SURFACE_SAMPLE_COUNT = 10000
STORED_SURFACE_SAMPLE_COUNT = 100000
GRID_RESOLUTION = 32
DEPTH_SCALE = 1000.0


@dataclasses.dataclass(frozen=True)
class Feature:
  """One example feature: `name`, static `shape` (tuple of ints), `dtype` ('float32' or 'string')."""
  name: str
  shape: tuple
  dtype: str
  description: str

  @property
  def size(self):
    """Number of scalars in the flattened feature (1 for the string)."""
    return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


FEATURES = (
    Feature('bounding_box_samples', (SAMPLE_COUNT, 4), 'float32',
            'uniform samples in the box: xyz + approximate signed distance, gaps frame'),
    Feature('depth_renders', (VIEW_COUNT, IMAGE_HEIGHT, IMAGE_WIDTH, 1), 'float32',
            'dodecahedron depth images in thousandths of gaps units, 0 = background'),
    Feature('mesh_name', (), 'string', '"<synset>|<name>"'),
    Feature('near_surface_samples', (SAMPLE_COUNT, 4), 'float32', 'xyz + binary SDF, gaps frame'),
    Feature('grid', (GRID_RESOLUTION,) * 3, 'float32', 'coarse SDF grid [z][y][x]'),
    Feature('world2grid', (4, 4), 'float32', 'gaps frame -> grid index transform'),
    Feature('surface_point_samples', (SURFACE_SAMPLE_COUNT, 6), 'float32',
            'surface points + normals from the depth images, gaps frame'),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
FEATURES_BY_NAME = {f.name: f for f in FEATURES}

# ShapeNet synsets known to the original (ldif/inference/example.py); class directory names that are category
# names are stored as their synset in `mesh_name`, anything else is kept as it is.
SYNSET_TO_CATEGORY = {
    '02691156': 'airplane',
    '02933112': 'cabinet',
    '03001627': 'chair',
    '03636649': 'lamp',
    '04090263': 'rifle',
    '04379243': 'table',
    '04530566': 'watercraft',
    '02828884': 'bench',
    '02958343': 'car',
    '03211117': 'display',
    '03691459': 'speaker',
    '04256520': 'sofa',
    '04401088': 'telephone',
    '2472293': 'bodyshapes',
    '2472294': 'caesar',
    '2472295': 'surreal',
}
CATEGORY_TO_SYNSET = {v: k for k, v in SYNSET_TO_CATEGORY.items()}


def class_to_synset(class_name):
  """Maps a class directory name to the synset stored in `mesh_name` (category -> synset, else unchanged)."""
  return CATEGORY_TO_SYNSET.get(class_name, class_name)


def make_mesh_name(class_name, example_name):
  """Returns the `mesh_name` string `"<synset>|<name>"` (port of `InferenceExample.mesh_name`)."""
  return f'{class_to_synset(class_name)}|{example_name}'


def _as_name_bytes(value, source):
  if isinstance(value, bytes):
    return value
  if isinstance(value, str):
    return value.encode('utf-8')
  if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in 'SUO':
    return _as_name_bytes(value.item(), source)
  raise ValueError(f'{source}: mesh_name must be str or bytes, got {type(value).__name__}')


def validate_example(example, source='example'):
  """Checks an example dict against the schema and returns it with canonical dtypes.

  Args:
    example: dict with exactly the keys of `FEATURE_NAMES`; float features are array-likes of the listed
      shape, `mesh_name` is str or bytes.
    source: a name for error messages (e.g. the example directory).

  Returns:
    A new dict: float features as C-contiguous float32 numpy arrays of the schema shapes, `mesh_name`
    as bytes.

  Raises:
    ValueError: naming `source` and the feature, for missing/extra keys, wrong shapes or non-finite values.
  """
  missing = [n for n in FEATURE_NAMES if n not in example]
  extra = [n for n in example if n not in FEATURES_BY_NAME]
  if missing or extra:
    raise ValueError(f'{source}: example keys do not match the schema '
                     f'(missing {missing}, unexpected {extra})')
  out = {}
  for feature in FEATURES:
    value = example[feature.name]
    if feature.dtype == 'string':
      out[feature.name] = _as_name_bytes(value, source)
      continue
    arr = np.ascontiguousarray(value, dtype=np.float32)
    if arr.shape != feature.shape:
      raise ValueError(f'{source}: feature {feature.name} has shape {arr.shape}, expected {feature.shape}')
    if not np.all(np.isfinite(arr)):
      raise ValueError(f'{source}: feature {feature.name} contains NaN or inf values')
    out[feature.name] = arr
  return out


def _varint(value):
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _length_delimited(field_number, payload):
  """Wire type 2 record: tag, length, payload."""
  return _varint((field_number << 3) | 2) + _varint(len(payload)) + payload


def _float_feature(arr):
  # Feature.float_list (field 2) -> FloatList.value (field 1, packed little-endian float32).
  return _length_delimited(2, _length_delimited(1, arr.astype('<f4', copy=False).tobytes()))


def _bytes_feature(value):
  # Feature.bytes_list (field 1) -> BytesList.value (field 1).
  return _length_delimited(1, _length_delimited(1, value))


def serialize_example(example, source='example'):
  """Serializes an example dict to the bytes of a `tf.train.Example` (as the original's `make_tf_example`).

  Args:
    example: dict as accepted by `validate_example`.
    source: a name for error messages.

  Returns:
    bytes: a serialized `tf.train.Example` whose `features.feature` map has the seven schema keys.

  Raises:
    ValueError: as `validate_example`.
  """
  example = validate_example(example, source)
  entries = []
  for feature in FEATURES:
    value = example[feature.name]
    encoded = _bytes_feature(value) if feature.dtype == 'string' else _float_feature(value)
    # Features.feature (field 1) is a map: entries with key (field 1) and value (field 2).
    entry = _length_delimited(1, feature.name.encode('utf-8')) + _length_delimited(2, encoded)
    entries.append(_length_delimited(1, entry))
  return _length_delimited(1, b''.join(entries))


def feature_spec():
  """The `tf.io.parse_*example` spec: name -> `tf.io.FixedLenFeature(shape, dtype)` (as full_featurespec)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {
      f.name: tf.io.FixedLenFeature(list(f.shape), tf.string if f.dtype == 'string' else tf.float32)
      for f in FEATURES
  }


def parse_example(serialized):
  """Parses one serialized example (scalar tf.string) into a dict of tensors with the schema shapes."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.parse_single_example(serialized, feature_spec())


def parse_example_batch(serialized):
  """Parses a [B] tf.string batch into a dict of tensors of shape [B] + schema shape."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.parse_example(serialized, feature_spec())


def as_tuple(example):
  """Returns the example's values in the original's parsed-tuple order (`FEATURE_NAMES`)."""
  return tuple(example[name] for name in FEATURE_NAMES)

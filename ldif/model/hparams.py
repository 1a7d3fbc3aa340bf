"""Typed hyperparameters of the LDIF / SIF autoencoders, with the original's presets.

Port of ldif/model/hparams.py. The original kept its hyperparameters in a `tf.contrib.training.HParams` object
with two- to five-letter keys ('sc', 'ipe', 'mfc', ...) and pickled it next to the checkpoints. Here they are
a frozen dataclass, `HParams`, whose fields have descriptive names; every field that the original had records
its short key (`HParams.short_key(name)`), so dictionaries in the original's vocabulary can be imported
(`HParams.from_short_keys`) and exported (`HParams.to_short_keys`). Experiments store them as JSON
(`to_json`/`from_json`, `save_json`/`load_json`); nothing is pickled.

Flag-like fields that the original stored as the strings 't'/'f' are booleans here and convert back to 't'/'f'
in `to_short_keys`. Fields with more than two values keep the original's string codes.

Presets (`HParams.preset(name)`):
  'ldif'             build_ldif_hparams(): ResNet50-V2 over 20 depth views, 32 elements (16 mirrored),
                     rotated Gaussians, a 32-float latent per element from a local PointNet, OccNet decoder.
  'sif'              build_sif_hparams(): the small CNN over one depth view, 100 axis-aligned elements,
                     no latents.
  'sif++'            build_improved_sif_hparams(): LDIF's encoder and element layout without latents.
  'singleview-depth' build_singleview_depth_hparams(): one 224x224 xyz image (samp 'im1xyzpn') of dodeca
                     view didx = 0, which ldif.datasets.preprocess computes from the depth render
                     (`xyz_images=True`); no latents (ipe = 'f'), so the surface points go unused.

Only a part of the keys is live for these presets (reference section 3.2); the others are carried so that a
dictionary survives an import/export round trip unchanged.
"""

import dataclasses
import json
import os
import tempfile
import typing

FORMAT_NAME = 'ldif-tf2-hparams'
FORMAT_VERSION = 1


def _field(short_key, default, doc):
  """A dataclass field carrying the original's short key and a one-line description in its metadata."""
  return dataclasses.field(default=default, metadata={'short_key': short_key, 'doc': doc})


@dataclasses.dataclass(frozen=True)
class HParams:
  """All hyperparameters of the original's `autoencoder_hparams` (plus port-only options), typed.

  Defaults are the original's `autoencoder_hparams` defaults (not a preset). Use `HParams.preset('ldif')` etc.
  for the published configurations. Instances are immutable; derive variants with `replace(**changes)`.

  Raises (on construction):
    TypeError: a field has a value of the wrong type.
    ValueError: a live field has a value the port does not know (e.g. radius_type 'foo').
  """
  # --- optimization -----------------------------------------------------------------------------------------
  optimize_explicit_cnn: bool = _field('ob', True, "Train the explicit-parameter CNN ('f' froze it).")
  batch_size: int = _field('bs', 24, 'Batch size B (train.py --batch_size overrides it).')
  learning_rate: float = _field('lr', 5e-5, 'Adam learning rate (constant).')
  optimizer: str = _field('opt', 'adm', "'adm' Adam, 'sgd', 'mtm' momentum.")
  synchronize_replicas: bool = _field('sync', False, 'SyncReplicasOptimizer (TF1 multi-GPU); unused here.')
  gpu_count: int = _field('gpuc', 0, "GPU count for sync='t'; unused.")
  virtual_batch_size: int = _field('vbs', 64, "Virtual batch size for sync='t'; unused.")
  encoder_lr_multiplier: float = _field('elr', 1.0, 'Gradient multiplier on the CNN output (1 = none).')
  debug: bool = _field('dbg', False, 'NaN/Inf checks (unused).')
  # --- observation ------------------------------------------------------------------------------------------
  image_height: int = _field('h', 137, 'Network input image height h.')
  image_width: int = _field('w', 137, 'Network input image width w.')
  stored_image_height: int = _field('gh', 224, 'Height of the stored depth renders.')
  stored_image_width: int = _field('gw', 224, 'Width of the stored depth renders.')
  observation_sampling: str = _field(
      'samp', 'imdpn', "Observation: 'imdpn' 20 depth views + points + normals; 'im1dpn' one view; "
      "'im1xyzpn' one xyz image.")
  single_view_index: int = _field('didx', 1, 'Dodecahedron view index for single-view observations.')
  random_image_count: int = _field('rc', 1, 'Random image count (unused).')
  background: str = _field('bg', 'ws', 'Background of RGB renders (unused).')
  data_augmentation: str = _field('da', 'f', "Data augmentation: 'f' none (the only supported value).")
  depth_noise: float = _field('dmn', 0.0, 'Depth map noise (0: none).')
  point_cloud_noise: float = _field('pcn', 0.0, 'Point cloud noise along the normals (0: none).')
  xyz_noise: float = _field('xin', 0.0, 'xyz image noise (0: none).')
  crop_input: bool = _field('cri', False, 'Crop the input region (unused).')
  crop_loss: bool = _field('crl', False, 'Crop the loss region (unused).')
  input_crop_count: int = _field('cic', 1024, 'Input crop count (unused).')
  loss_crop_count: int = _field('clc', 1024, 'Loss crop count (unused).')
  cache_data: bool = _field('cd', False, 'Cache input data (unused).')
  input_thread_count: int = _field('itc', 12, 'Input pipeline threads (unused; tf.data autotunes).')
  category: str = _field('cat', 'all', 'Class to train on (unused).')
  balance_categories: bool = _field('blc', True, 'Balance categories (unused).')
  dataset_rescale: float = _field('rsl', 1.0, 'Dataset rescaling factor (1: none; the only supported value).')
  waymo_scaling: bool = _field('wm', False, "Waymo box for the 'bb' loss (False: the +-0.7 cube).")
  # --- architecture -----------------------------------------------------------------------------------------
  architecture: str = _field('arch', 'efcnn', "'efcnn' early-fusion CNN (the only supported value).")
  cnn_architecture: str = _field('cnna', 'r50', "'s50' TF-slim ResNet50-V2, 'cnn' the small SIF CNN.")
  implicit_architecture: str = _field(
      'ia', 'p', "'p' explicit CNN + local PointNet latents; '1' one network predicts everything.")
  element_count: int = _field('sc', 100, 'Number of shape elements E.')
  symmetric_element_count: int = _field('lyr', 10, 'Number of elements (the first ones) mirrored across z=0.')
  radius_type: str = _field('r', 'cov', "'iso' 1 variance, 'aa' 3 variances, 'cov' 3 variances + 3 angles.")
  constant_mode: str = _field('cp', 'a', "Constant activation: 'a' -|a|, 's' sigmoid(a)-1.")
  local_frame_transform: str = _field('tx', 'crs',
                                      "World-to-local transform: 'crs' centre/rotate/scale, 'i'.")
  implicit_parameters: str = _field('ipe', 'f', "Per-element latents: 't' enabled (LDIF), 'f' off, 'e'.")
  implicit_parameter_type: str = _field('ip', 'sb', "Latent semantics: 'sb' residual to the RBF.")
  implicit_parameters_contribute: bool = _field('ipc', True, 'Whether the OccNet term enters F (debugging).')
  latent_size: int = _field('ips', 32, 'Latent length L (and the OccNet hidden width).')
  network_per_element: bool = _field('npe', False, 'A separate decoder per element (unsupported).')
  normalization: str = _field('nrm', 'none', "FC-head normalizer: 'none' (the only supported value).")
  fc_layer_count: int = _field('fcc', 3, 'FC head layer count (dead: the head is hard-coded to 3).')
  fc_layer_width: int = _field('fcs', 2048, 'FC head width (dead: hard-coded 2048).')
  rotate_latents: bool = _field('fua', True, 'Rotate latents in the mid-fusion CNN (unused).')
  implicit_embedding_cnn_version: str = _field('iec', 'v2', "Twin-tower CNN scope version (ia='2' only).")
  # --- point encoder ----------------------------------------------------------------------------------------
  point_encoder: str = _field('pe', 'pn', "'pn' PointNet.")
  dgcnn_feature_count: int = _field('nf', 64, 'DG-CNN feature count (unused).')
  pointnet_feature_transform: bool = _field('p64', False, 'PointNet 64x64 learned feature transform.')
  fast_pointnet_reduce: bool = _field('fbp', True, 'Plain max reduce over points (False: legacy maxpool2d).')
  pointnet_max_pool_features: int = _field('mfc', 1024, 'Width of the last per-point PointNet layer.')
  deprecated_conv2d_pointnet: bool = _field('udp', True, 'The 1x1-conv2d PointNet (pointnet_depr).')
  pointnet_positional_encoding: bool = _field('hyp', False, "'Nerfify' PointNet inputs (unsupported).")
  local_point_count: int = _field('lpc', 1024, 'Points per element in the local PointNet views.')
  # --- decoder ----------------------------------------------------------------------------------------------
  occnet_resnet_layer_count: int = _field('orc', 1, 'OccNet residual blocks (1 supported).')
  occnet_positional_encoding: bool = _field('hyo', False, "'Nerfify' OccNet inputs (unsupported).")
  deprecated_single_shape_occnet: bool = _field('dd', False, 'The unbatched OccNet (unsupported).')
  occnet_fixed_residual: bool = _field('fon', True, 'Take the OccNet skip after cbn_1 (the fixed variant).')
  # --- representation / evaluation --------------------------------------------------------------------------
  level_set: float = _field('lset', -0.07, 'Iso-level of F that is the surface.')
  hardness: float = _field('hdn', 100.0, 'Sharpness of the class transfer sigmoid(hdn*(F-lset)).')
  learn_hardness: bool = _field('lhdn', False, 'Learn hdn (unsupported).')
  aggregation: str = _field('ag', 's', "Element aggregation: 's' sum.")
  partition_of_unity: bool = _field('pou', False, 'Normalize by the weight sum (unsupported).')
  reconstruction_equations: str = _field('rec', 'r', 'Reconstruction equations (unused).')
  refinement_points: str = _field('ir', 'zero-set', 'Points used for refinement (eval only; unused).')
  sdf_rescale: float = _field('res', 1.0, 'Input/training SDF rescaling (unused).')
  # --- losses -----------------------------------------------------------------------------------------------
  loss_terms: str = _field('loss', 'unsbbgi', 'Loss keys, matched by substring (u, ns, ec, gi, bb, ...).')
  loss_receptive_field: str = _field('lrf', 'g', "'g' global reconstruction (the only supported value).")
  loss_sample_count: int = _field('spc', 1024, 'Samples per sample loss, per batch item.')
  local_presample_count: int = _field('xsc', 10000, "Pre-sample count for lrf='x' (unused).")
  uniform_sample_weight: float = _field('l2w', 1.0, "Weight of the uniform sample loss 'u'.")
  near_surface_sample_weight: float = _field('a2w', 0.1, "Weight of the near-surface sample loss 'ns'.")
  inside_weight: float = _field('ucf', 1.0, 'Weight of inside samples in both sample losses.')
  apply_inside_weight_near_surface: bool = _field(
      'aucf', False, 'Dead in the original: ucf is always applied to both sample losses.')
  grid_inside_weight: float = _field('ig', 1.0, "Weight of the coarse-grid inside loss 'gi'.")
  grid_inside_threshold: float = _field('igt', 0.044, "Grid SDF above which 'gi' penalizes a centre.")
  grid_squared_weight: float = _field('gs', 0.0, "Weight of 'gs' (unused).")
  grid_direct_weight: float = _field('gd', 0.0, "Weight of 'gd' (unused).")
  bounding_box_weight: float = _field('ibblw', 10.0, "Weight of the box terms of 'bb' and 'ec'.")
  center_magnitude_weight: float = _field('cm', 0.01, "Weight of 'm' (dead in the presets).")
  center_inside_prediction_weight: float = _field('cc', 0.0, "Weight of the prediction term of 'ec'.")
  center_variance_threshold: float = _field('vt', 0.0, "Threshold of 'xv' (unused).")
  center_nn_threshold: float = _field('nnt', 0.0, "Threshold of 'xp' (unused).")
  center_variance_weight: float = _field('vw', 0.0, "Weight of 'xv' (unused).")
  center_nn_weight: float = _field('nw', 0.0, "Weight of 'xp' (unused).")
  overlap_weight: float = _field('ow', 0.0, "Weight of 'xw' (unused).")
  # --- bookkeeping ------------------------------------------------------------------------------------------
  ident: str = _field('ident', 'sif', 'Identifier used to look up backwards-compatible defaults.')
  # --- port-only options (no short key; not exported by to_short_keys) --------------------------------------
  occnet_batch_statistics: bool = _field(
      None, False, 'Port-only fix of the OccNet CBN quirk (reference 10.5): normalize training batches with '
      'their own moments instead of the freshly updated scalar running values. Default False = original.')

  # ----------------------------------------------------------------------------------------------------------
  def __post_init__(self):
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      expected = _FIELD_TYPES[f.name]
      if expected is float and isinstance(value, int) and not isinstance(value, bool):
        object.__setattr__(self, f.name, float(value))
        continue
      if expected is int and isinstance(value, bool):
        raise TypeError(f'HParams.{f.name} ({f.metadata["short_key"]}) must be int, got bool {value!r}')
      if not isinstance(value, expected):
        raise TypeError(f'HParams.{f.name} ({f.metadata["short_key"]}) must be {expected.__name__}, '
                        f'got {type(value).__name__} {value!r}')
    for name, allowed in _ALLOWED_VALUES.items():
      if getattr(self, name) not in allowed:
        raise ValueError(f'HParams.{name} ({self.short_key(name)}) = {getattr(self, name)!r} is not one of '
                         f'{sorted(allowed)}')
    for name in ('batch_size', 'element_count', 'image_height', 'image_width', 'loss_sample_count',
                 'local_point_count', 'pointnet_max_pool_features', 'occnet_resnet_layer_count'):
      if getattr(self, name) <= 0:
        raise ValueError(
            f'HParams.{name} ({self.short_key(name)}) must be positive, got {getattr(self, name)}')
    if not 0 <= self.symmetric_element_count <= self.element_count:
      raise ValueError(f'HParams.symmetric_element_count (lyr) = {self.symmetric_element_count} must lie in '
                       f'[0, element_count = {self.element_count}]')
    if self.latent_size < 0:
      raise ValueError(f'HParams.latent_size (ips) must be >= 0, got {self.latent_size}')

  # ---- presets ---------------------------------------------------------------------------------------------
  @classmethod
  def preset(cls, name):
    """The original's hyperparameter combination `name` ('ldif', 'sif', 'sif++', 'singleview-depth').

    Raises:
      ValueError: unknown name.
    """
    if name not in PRESETS:
      raise ValueError(f'Unknown hyperparameter preset {name!r}; expected one of {sorted(PRESETS)}')
    return cls.from_short_keys(dict(_DEFAULT_SHORT, **PRESETS[name]))

  def matching_preset(self):
    """The preset these hyperparameters equal, ignoring batch_size and port-only options; None if none."""
    mine = {k: v for k, v in self.to_short_keys().items() if k != 'bs'}
    for name in PRESETS:
      theirs = {k: v for k, v in HParams.preset(name).to_short_keys().items() if k != 'bs'}
      if mine == theirs:
        return name
    return None

  def differences(self, other, ignore=('batch_size',)):
    """{field name: (self value, other value)} for every field that differs, except those in `ignore`."""
    out = {}
    for f in dataclasses.fields(self):
      if f.name in ignore:
        continue
      a, b = getattr(self, f.name), getattr(other, f.name)
      if a != b:
        out[f.name] = (a, b)
    return out

  def replace(self, **changes):
    """A copy with some fields changed (validated as on construction)."""
    return dataclasses.replace(self, **changes)

  # ---- short-key dictionaries ------------------------------------------------------------------------------
  @staticmethod
  def short_key(name):
    """The original's short key of field `name` (None for port-only fields). Raises KeyError if unknown."""
    return _NAME_TO_SHORT[name]

  @staticmethod
  def field_name(short_key):
    """The descriptive field name of the original's `short_key`. Raises KeyError if unknown."""
    return _SHORT_TO_NAME[short_key]

  def to_short_keys(self):
    """A dict in the original's vocabulary (90 keys; booleans as 't'/'f'): {'sc': 32, 'ipe': 't', ...}."""
    out = {}
    for f in dataclasses.fields(self):
      key = f.metadata['short_key']
      if key is None:
        continue
      value = getattr(self, f.name)
      out[key] = ('t' if value else 'f') if isinstance(value, bool) else value
    return out

  @classmethod
  def from_short_keys(cls, short, **port_options):
    """Builds HParams from a dict in the original's vocabulary (e.g. a converted hparam_pickle.txt).

    As the original's reader did, keys missing from `short` are filled from the backwards-compatibility table
    of its `ident` ('sif' when absent), then from the autoencoder defaults, and cnna 'r50' is read as 's50'.

    Args:
      short: dict short key -> value ('t'/'f' strings for boolean fields; bools are accepted too).
      **port_options: values for port-only fields (e.g. occnet_batch_statistics=True).

    Raises:
      ValueError: unknown keys, or a 't'/'f' field with another value, or invalid values.
      TypeError: wrong value types.
    """
    if not isinstance(short, dict):
      raise TypeError(f'Expected a dict of short keys, got {type(short).__name__}')
    unknown = sorted(set(short) - set(_SHORT_TO_NAME))
    if unknown:
      raise ValueError(f'Unknown hyperparameter short keys: {unknown}')
    merged = dict(short)
    ident = merged.get('ident', 'sif')
    for key, value in _BACKWARDS_COMPATIBLE_DEFAULTS.get(ident, {}).items():
      merged.setdefault(key, value)
    for key, value in _DEFAULT_SHORT.items():
      merged.setdefault(key, value)
    if merged.get('cnna') == 'r50':
      merged['cnna'] = 's50'
    kwargs = {}
    for key, value in merged.items():
      name = _SHORT_TO_NAME[key]
      if _FIELD_TYPES[name] is bool and isinstance(value, str):
        if value not in ('t', 'f'):
          raise ValueError(f"Hyperparameter {key} ({name}) must be 't' or 'f', got {value!r}")
        value = value == 't'
      kwargs[name] = value
    kwargs.update(port_options)
    return cls(**kwargs)

  # ---- JSON ------------------------------------------------------------------------------------------------
  def to_dict(self):
    """{descriptive field name: value} (plain JSON types)."""
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

  def to_json(self):
    """A JSON document {"format": "ldif-tf2-hparams", "version": 1, "hparams": {...}, "short_keys": {...}}.

    "short_keys" repeats the values in the original's vocabulary for people comparing with the original; on
    reading, "hparams" is authoritative.
    """
    doc = {
        'format': FORMAT_NAME,
        'version': FORMAT_VERSION,
        'hparams': self.to_dict(),
        'short_keys': self.to_short_keys()
    }
    return json.dumps(doc, indent=2, sort_keys=False) + '\n'

  @classmethod
  def from_json(cls, text, source='<string>'):
    """Parses `to_json` output. Fields absent from the document take their defaults (forward compatibility).

    Raises:
      ValueError: not JSON, wrong format name/version, unknown field names, invalid values (message names
        `source`).
    """
    try:
      doc = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f'{source}: not valid JSON ({e})') from None
    if not isinstance(doc, dict) or doc.get('format') != FORMAT_NAME or 'hparams' not in doc:
      raise ValueError(f'{source}: not an {FORMAT_NAME} document (expected keys "format" = "{FORMAT_NAME}" '
                       f'and "hparams")')
    if doc.get('version') != FORMAT_VERSION:
      raise ValueError(f'{source}: unsupported {FORMAT_NAME} version {doc.get("version")!r} '
                       f'(this code reads version {FORMAT_VERSION})')
    values = doc['hparams']
    if not isinstance(values, dict):
      raise ValueError(f'{source}: "hparams" must be an object')
    unknown = sorted(set(values) - set(_FIELD_TYPES))
    if unknown:
      raise ValueError(f'{source}: unknown hyperparameter names {unknown}')
    try:
      return cls(**values)
    except (TypeError, ValueError) as e:
      raise ValueError(f'{source}: {e}') from None

  def save_json(self, path):
    """Writes `to_json()` to `path` atomically (temporary file in the same folder, then os.replace)."""
    write_text_atomically(path, self.to_json())

  @classmethod
  def load_json(cls, path):
    """Reads a file written by `save_json`. Raises FileNotFoundError or ValueError naming `path`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(f'{path}: hyperparameter file not found')
    with open(path, encoding='utf-8') as f:
      return cls.from_json(f.read(), source=path)

  # ---- derived quantities used by the model and losses -----------------------------------------------------
  @property
  def radius_length(self):
    """R: 1 (iso), 3 (aa) or 6 (cov)."""
    return {'iso': 1, 'aa': 3, 'cov': 6}[self.radius_type]

  @property
  def explicit_element_length(self):
    """1 + 3 + R: constant, centre, radii (the CNN output per element when latents come from PointNet)."""
    return 4 + self.radius_length

  @property
  def has_latents(self):
    """True when elements carry OccNet latents (ipe 't' or 'e')."""
    return self.implicit_parameters in ('t', 'e')

  @property
  def element_length(self):
    """Packed element length D: explicit part plus L when latents are enabled (ldif 42, sif++ 10, sif 7)."""
    return self.explicit_element_length + (self.latent_size if self.has_latents else 0)

  @property
  def effective_element_count(self):
    """E' = E + symmetric elements."""
    return self.element_count + self.symmetric_element_count

  @property
  def view_count(self):
    """Number of depth views the encoder sees: 20 ('imd...') or 1 ('im1...')."""
    return 1 if self.observation_sampling.startswith('im1') else 20

  def loss_enabled(self, key):
    """Whether loss key `key` ('u', 'ns', 'ec', 'gi', 'bb', ...) is on; the original matches substrings."""
    return key in self.loss_terms


_FIELD_TYPES = {f.name: (typing.get_type_hints(HParams)[f.name]) for f in dataclasses.fields(HParams)}
_NAME_TO_SHORT = {f.name: f.metadata['short_key'] for f in dataclasses.fields(HParams)}
_SHORT_TO_NAME = {v: k for k, v in _NAME_TO_SHORT.items() if v is not None}

# Live fields whose values are checked (anything else is carried as given).
_ALLOWED_VALUES = {
    'radius_type': {'iso', 'aa', 'cov'},
    'constant_mode': {'a', 's'},
    'implicit_architecture': {'1', '2', 'p'},
    'implicit_parameters': {'t', 'f', 'e'},
    'cnn_architecture': {'s50', 'cnn', 'r50', 'r18', 'h50', 'k50'},
    'aggregation': {'s', 'm'},
    'loss_receptive_field': {'g', 'l', 'x'},
    'optimizer': {'adm', 'sgd', 'mtm'},
}

_DEFAULT_SHORT = {}
for _f in dataclasses.fields(HParams):
  if _f.metadata['short_key'] is not None:
    _DEFAULT_SHORT[_f.metadata['short_key']] = (('t' if _f.default else 'f')
                                                if isinstance(_f.default, bool) else _f.default)
del _f

# The keys each of the original's builder functions changes relative to autoencoder_hparams (section 3.1).
PRESETS = {
    'ldif':
        dict(arch='efcnn', samp='imdpn', cnna='s50', hyo='f', hyp='f', sc=32, lyr=16, loss='unsbbgi', mfc=512,
             ips=32, ipe='t'),
    'sif':
        dict(h=137, w=137, samp='im1dpn', ia='1', cnna='cnn', sc=100, lyr=0, cat='all', cd='f', r='aa',
             spc=3000, blc='f', bs=16, ips=0, ipe='f', ucf=10.0, aucf='t', loss='unsec', cm=0.1, igt=0.0,
             ig=0.0, gs=0.0, gd=0.0, cc=0.01),
    'sif++':
        dict(arch='efcnn', samp='imdpn', cnna='s50', hyo='f', hyp='f', sc=32, lyr=16, loss='unsbbgi', mfc=512,
             ips=0, ipe='f'),
    'singleview-depth':
        dict(h=224, w=224, cnna='s50', samp='im1xyzpn', didx=0, ia='p', sc=32, lyr=16),
}

# The original's backwards_compatible_hparam_defaults('sif'): values for keys that postdate old checkpoints.
_BACKWARDS_COMPATIBLE_DEFAULTS = {
    'sif':
        dict(elr=1.0, cd='f', dd='f', fon='t', itc=10, ia='2', lpc=1024, p64='t', iec='v1', lrf='g', lyr=0,
             bg='b', blc='f', wm='f', rsl=1.0, rec='r', dbg='f', cp='a', tx='i', dmn=0.0, pcn=0.0, xin=0.0,
             ag='s', vt=0.0, nnt=0.0, vw=0.0, nw=0.0, ow=0.0, pe='pn', nf=64, fbp='f', mfc=1024, udp='t',
             da='f', cri='f', cic=1024, crl='f', clc=1024, hyo='f', hyp='f'),
}


def write_text_atomically(path, text):
  """Writes `text` (UTF-8) to `path` through a temporary file in the same folder and os.replace."""
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp', dir=directory)
  try:
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise

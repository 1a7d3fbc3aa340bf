"""A trained experiment at inference: its model restored from a checkpoint, and the encoder that runs it.

Port of ldif/inference/predict.py `DepthEncoder` (with `TrainedNetwork.from_modeldir`) and the checkpoint
choice of ldif/inference/experiment.py `Job` (reference §1.4, §1.5, §7.1). Layout of an experiment (as
train.py writes it):

    <model_directory>/sif-transcoder-<experiment_name>/1-hparams/train/   hparams.json + checkpoints

`Experiment.load` restores the newest checkpoint, or the one of a given step (`--ckpt`, which the original
ignored). `Experiment.encode(example)` runs the encoder on one example as the original's `DepthEncoder` did:
the 20 depth renders at 224 x 224 in thousandths and 10000 surface samples [10000, 6] go through the training
preprocessing (resize to the network's 137 x 137 with aligned corners, / 1000) and the model in inference mode
(batch size 1); the packed vector becomes a `predict.Decoder`. Unlike the original, the surface subset and the
LDIF local-view selection are seeded, so an evaluation is reproducible.
"""

import os

import tensorflow as tf

from ldif.inference import predict
from ldif.representation import structured_implicit_function as sif_lib
from ldif.util import log

MODEL_NAME = 'sif-transcoder'
"""The original's model name: experiments live in `<model_directory>/sif-transcoder-<experiment_name>/`."""


def _stable_seed(seed, text):
  """A 31-bit seed from an int seed and a string (independent of Python's hash randomization)."""
  from ldif.datasets import example as dataset_example  # pylint: disable=g-import-not-at-top
  return dataset_example.derive_seed(seed, 'eval', text) % (2**31 - 1)


class Experiment:
  """A restored model and its hyperparameters; encodes examples into `predict.Decoder`s.

  Attributes:
    model: the Keras `StructuredImplicitModel` (inference mode).
    hparams: `ldif.model.hparams.HParams`.
    checkpoint_path: the checkpoint restored (a path prefix or file, as the training code names it).
    step: its training step.
    directory: the job directory.
    seed: base seed of the per-example local-view selection (LDIF).
  """

  def __init__(self, model, hparams, checkpoint_path='', step=-1, directory='', seed=0):
    self.model = model
    self.hparams = hparams
    self.checkpoint_path = checkpoint_path
    self.step = int(step)
    self.directory = directory
    self.seed = int(seed)
    self._occnet_weights = None
    self._encode_fn = None

  # ---- loading ----

  @classmethod
  def load(cls, model_directory, experiment_name, ckpt=-1, seed=0):
    """Restores an experiment from `<model_directory>/sif-transcoder-<experiment_name>/1-hparams/train/`.

    Args:
      model_directory: the root passed to train.py's --model_directory.
      experiment_name: train.py's --experiment_name.
      ckpt: training step of the checkpoint to restore; -1 (default) for the newest.
      seed: base seed of the LDIF local-view selection.

    Returns:
      Experiment.

    Raises:
      ValueError naming the directory or file: missing model directory, experiment or job directory, no
      checkpoint, no checkpoint of the requested step (`ldif.training.experiment.ExperimentError`, listing the
      available steps), a missing or invalid hparams.json, or a checkpoint that does not fit the model.
    """
    from ldif.training import experiment as training_experiment  # pylint: disable=g-import-not-at-top
    model_directory = os.fspath(model_directory)
    if not os.path.isdir(model_directory):
      raise ValueError(f'{model_directory}: the model directory does not exist')
    paths = training_experiment.ExperimentPaths.from_name(model_directory, experiment_name)
    root = paths.root
    if not os.path.isdir(root):
      found = sorted(d[len(MODEL_NAME) + 1:] for d in os.listdir(model_directory)
                     if d.startswith(MODEL_NAME + '-') and os.path.isdir(os.path.join(model_directory, d)))
      raise ValueError(f'{root}: no experiment named {experiment_name!r} in {model_directory} '
                       f'(experiments there: {", ".join(found) if found else "none"})')
    if not os.path.isdir(paths.job_dir):
      raise ValueError(f'{paths.job_dir}: the experiment has no job directory (was it trained with '
                       'train.py?)')
    steps = training_experiment.checkpoint_steps(paths)
    if not steps and not tf.train.latest_checkpoint(paths.job_dir):
      raise ValueError(f'{paths.job_dir}: the experiment {experiment_name!r} has no checkpoint '
                       f'({training_experiment.CHECKPOINT_NAME}-<step>.index); train it first')
    step = None if ckpt is None or int(ckpt) < 0 else int(ckpt)
    loaded = training_experiment.load_experiment(paths.root, step)
    return cls(loaded.model, loaded.hparams, loaded.checkpoint_path, loaded.step, paths.job_dir, seed)

  # ---- encoding ----

  @property
  def is_ldif(self):
    return bool(self.hparams.has_latents and self.hparams.implicit_parameters_contribute)

  def occnet_weights(self):
    """The OccNet decoder weights dict (pinned keys, float32 numpy), or None for SIF / SIF++."""
    if not self.is_ldif:
      return None
    if self._occnet_weights is None:
      self._occnet_weights = self.model.occnet.decoder_weights()
    return self._occnet_weights

  def _encoder(self):
    if self._encode_fn is None:
      model = self.model

      @tf.function(reduce_retracing=True)
      def encode(observation, local_view_seed):
        outputs = model(observation, training=False, local_view_seed=local_view_seed)
        return {k: v for k, v in outputs.items() if k in ('activations', 'latents')}

      self._encode_fn = encode
    return self._encode_fn

  def observation(self, batch):
    """Model inputs from a batch of one example (schema dict with leading axis 1), via the training
    preprocessing (`ldif.datasets.preprocess.preprocess`; with `xyz_images` for xyz observation samplings such
    as the singleview-depth preset's)."""
    from ldif.datasets import preprocess  # pylint: disable=g-import-not-at-top
    hp = self.hparams
    view_index = hp.single_view_index if hp.view_count == 1 else None
    pre = preprocess.preprocess(batch, height=hp.image_height, width=hp.image_width, view_index=view_index,
                                sample_count=1, seed=0, xyz_images='xyz' in hp.observation_sampling)
    return {k: pre[k] for k in ('depth_images', 'xyz_images', 'surface_points', 'surface_normals') if k in pre}

  def encode_batch(self, batch, key=''):
    """Encodes a batch of one example into a `predict.Decoder`.

    Args:
      batch: the schema dict with a leading axis of 1 (`depth_renders` [1, 20, 224, 224, 1] in thousandths,
        `surface_point_samples` [1, 10000, 6], ...; gaps frame).
      key: a string (e.g. the mesh name) that, with `seed`, seeds the LDIF local-view selection.

    Returns:
      predict.Decoder of the predicted shape (gaps frame).
    """
    hp = self.hparams
    observation = self.observation(batch)
    seed = tf.constant([self.seed, _stable_seed(self.seed, key)], tf.int32)
    outputs = self._encoder()(observation, seed)
    shape = self.model.structured_implicit(outputs)
    if shape.latents is not None and not hp.implicit_parameters_contribute:
      log.verbose('ipc is off: the OccNet term does not contribute; decoding without latents')
      shape = sif_lib.StructuredImplicit(shape.constants, shape.centers, shape.radii, None,
                                         radius_type=shape.radius_type, symmetry_count=shape.symmetry_count)
    return predict.Decoder(shape, self.occnet_weights() if shape.latents is not None else None)

  def encode(self, ex):
    """Encodes an `ldif.inference.example.InferenceExample` (see `encode_batch`)."""
    return self.encode_batch(ex.batch(), key=ex.mesh_name)

  def describe(self):
    """A one-line summary for logs."""
    hp = self.hparams
    kind = hp.matching_preset() if hasattr(hp, 'matching_preset') else ''
    latents = hp.latent_size if self.is_ldif else 0
    return (f'{kind or "custom"} model, {hp.element_count} elements ({hp.symmetric_element_count} '
            f'symmetric), radius type {hp.radius_type}, latents {latents}; checkpoint {self.checkpoint_path} '
            f'(step {self.step})')


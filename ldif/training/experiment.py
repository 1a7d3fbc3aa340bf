"""Experiment directories: where a training run keeps its hyperparameters, checkpoints and logs, and how to
rebuild the trained model from them (for inference, evaluation, or resuming).

Layout (the original's, with `hparams.json` in place of `hparam_pickle.txt`):

    <model_directory>/sif-transcoder-<experiment_name>/
      log/                               TensorBoard event files
      1-hparams/train/                   the "job" directory
        hparams.json                     ldif.model.hparams.HParams.to_json() (format 'ldif-tf2-hparams')
        checkpoint                       tf.train.CheckpointManager state (latest checkpoint, history)
        model.ckpt-<step>.index          TF2 object-based checkpoints; <step> = number of completed training
        model.ckpt-<step>.data-00000-of-00001   steps (the restored global step). Up to 5 are kept.

`model_directory` defaults to `trained_models/` relative to the current working directory (the original
resolved relative paths against its package directory).

For inference::

    from ldif.training import experiment
    exp = experiment.load_experiment('trained_models/sif-transcoder-my-ldif')   # latest checkpoint
    outputs = exp.model(observation, training=False)         # dict: activations, latents, embedding
    sif = exp.model.structured_implicit(outputs)              # StructuredImplicit (gaps frame)
    values = sif.implicit_values(points, exp.model.decoder())  # F, [B, N, 1]
    occnet_weights = exp.model.occnet.decoder_weights()       # LDIF only: dict for occnet_decode / .occnet
"""

import dataclasses
import os
import re

import tensorflow as tf

from ldif.model.hparams import HParams
from ldif.util import log

HPARAMS_FILE = 'hparams.json'
LEGACY_HPARAMS_FILE = 'hparam_pickle.txt'
CHECKPOINT_NAME = 'model.ckpt'
EXPERIMENT_PREFIX = 'sif-transcoder-'


class ExperimentError(ValueError):
  """A problem with an experiment directory (missing/mismatched hyperparameters, missing checkpoint)."""


@dataclasses.dataclass(frozen=True)
class ExperimentPaths:
  """Paths of one experiment (all absolute).

  Attributes:
    root: <model_directory>/sif-transcoder-<name>.
    log_dir: root/log (TensorBoard).
    job_dir: root/1-hparams/train (checkpoints and hparams.json).
    hparams_path: job_dir/hparams.json.
  """
  root: str
  log_dir: str
  job_dir: str
  hparams_path: str

  @classmethod
  def from_root(cls, root):
    """Paths for an experiment root directory (`.../sif-transcoder-<name>`)."""
    root = os.path.abspath(os.fspath(root))
    job_dir = os.path.join(root, '1-hparams', 'train')
    return cls(root=root, log_dir=os.path.join(root, 'log'), job_dir=job_dir,
               hparams_path=os.path.join(job_dir, HPARAMS_FILE))

  @classmethod
  def from_name(cls, model_directory, experiment_name):
    """Paths for `<model_directory>/sif-transcoder-<experiment_name>` (relative paths: against the CWD).

    Raises:
      ValueError: an empty experiment name or one containing a path separator.
    """
    if not experiment_name or os.sep in experiment_name or (os.altsep and os.altsep in experiment_name):
      raise ValueError(
          f'experiment_name must be a non-empty name without path separators, got {experiment_name!r}')
    return cls.from_root(os.path.join(os.fspath(model_directory), EXPERIMENT_PREFIX + experiment_name))


def resolve_experiment_root(path):
  """Accepts an experiment root, its `1-hparams/train` job directory, or a checkpoint prefix inside it, and
  returns ExperimentPaths."""
  path = os.path.abspath(os.fspath(path))
  if os.path.isfile(os.path.join(path, HPARAMS_FILE)) and os.path.basename(path) == 'train':
    return ExperimentPaths.from_root(os.path.dirname(os.path.dirname(path)))
  if re.search(re.escape(CHECKPOINT_NAME) + r'-\d+$', path):
    return resolve_experiment_root(os.path.dirname(path))
  return ExperimentPaths.from_root(path)


def checkpoint_steps(paths):
  """Sorted steps of the checkpoints present in the job directory (from the `.index` files)."""
  if not os.path.isdir(paths.job_dir):
    return []
  pattern = re.compile(re.escape(CHECKPOINT_NAME) + r'-(\d+)\.index$')
  steps = []
  for name in os.listdir(paths.job_dir):
    m = pattern.match(name)
    if m:
      steps.append(int(m.group(1)))
  return sorted(steps)


def checkpoint_path(paths, step=None):
  """The checkpoint prefix for `step` (None = latest according to the `checkpoint` state file, falling back to
  the highest step present).

  Raises:
    ExperimentError: no checkpoint, or none for that step (the message lists the available steps).
  """
  steps = checkpoint_steps(paths)
  if step is None:
    latest = tf.train.latest_checkpoint(paths.job_dir)
    if latest:
      return latest
    if not steps:
      raise ExperimentError(f'{paths.job_dir}: no checkpoints ({CHECKPOINT_NAME}-<step>.index) found')
    step = steps[-1]
  if int(step) not in steps:
    raise ExperimentError(f'{paths.job_dir}: no checkpoint for step {step}; available steps: {steps}')
  return os.path.join(paths.job_dir, f'{CHECKPOINT_NAME}-{int(step)}')


def read_hparams(paths):
  """HParams from `<job_dir>/hparams.json`.

  Raises:
    ExperimentError: the file is missing (mentioning a legacy pickle if one is present) or invalid.
  """
  if not os.path.isfile(paths.hparams_path):
    legacy = os.path.join(paths.job_dir, LEGACY_HPARAMS_FILE)
    if os.path.isfile(legacy):
      raise ExperimentError(
          f'{paths.job_dir}: has only the original TF1 {LEGACY_HPARAMS_FILE} (a pickle, which '
          f'this port never reads); convert its dict with HParams.from_short_keys and save it '
          f'as {HPARAMS_FILE}')
    raise ExperimentError(
        f'{paths.hparams_path}: hyperparameter file not found (not an experiment directory?)')
  try:
    return HParams.load_json(paths.hparams_path)
  except ValueError as e:
    raise ExperimentError(str(e)) from None


def check_hparams_match(stored, requested, model_type, paths):
  """Raises ExperimentError when an experiment's stored hyperparameters differ from those requested
  (batch size excepted, as train.py lets --batch_size change between runs)."""
  diffs = stored.differences(requested)
  if diffs:
    stored_type = stored.matching_preset() or 'a custom configuration'
    detail = ', '.join(f'{k}: stored {a!r} vs requested {b!r}' for k, (a, b) in sorted(diffs.items()))
    raise ExperimentError(
        f'{paths.hparams_path}: the experiment was trained as {stored_type}, but '
        f'--model_type {model_type} was requested ({detail}). Use another --experiment_name '
        f'or the matching --model_type.')


def build_model(hparams, compute_dtype=None):
  """A StructuredImplicitModel for `hparams` with all variables created (encoder, head, PointNet, OccNet)."""
  from ldif.model.model import StructuredImplicitModel  # pylint: disable=import-outside-toplevel
  return StructuredImplicitModel(hparams, compute_dtype=compute_dtype).initialize()


@dataclasses.dataclass
class LoadedExperiment:
  """A trained model rebuilt from an experiment directory.

  Attributes:
    paths: ExperimentPaths.
    hparams: HParams read from hparams.json.
    model: StructuredImplicitModel with the checkpoint's weights (use training=False).
    step: the checkpoint's global step.
    checkpoint_path: the restored checkpoint prefix.
  """
  paths: ExperimentPaths
  hparams: HParams
  model: object
  step: int
  checkpoint_path: str


def load_experiment(experiment_dir, step=None, *, model_type=None):
  """Rebuilds a trained model from an experiment directory for inference.

  Reads `1-hparams/train/hparams.json`, builds `StructuredImplicitModel(hparams)` (float32), and restores the
  model weights (encoder, FC head, PointNet, OccNet including its CBN running statistics, ResNet batch-norm
  moving averages) from the latest checkpoint, or from `model.ckpt-<step>` when `step` is given. Optimizer
  state in the checkpoint is ignored.

  Args:
    experiment_dir: `<model_directory>/sif-transcoder-<name>` (its job directory or a checkpoint prefix inside
      it are accepted too).
    step: int checkpoint step (number of completed training steps) or None for the latest.
    model_type: optional preset name ('ldif', 'sif', 'sif++', 'singleview-depth'); when given, the stored hyperparameters must
      equal that preset's (batch size excepted).

  Returns:
    LoadedExperiment(paths, hparams, model, step, checkpoint_path).

  Raises:
    ExperimentError: missing/invalid hparams.json, no such checkpoint, a model_type mismatch, or a checkpoint
      whose variables do not match the model.
  """
  paths = resolve_experiment_root(experiment_dir)
  hparams = read_hparams(paths)
  if model_type is not None:
    check_hparams_match(hparams,
                        HParams.preset(model_type).replace(batch_size=hparams.batch_size), model_type, paths)
  prefix = checkpoint_path(paths, step)
  model = build_model(hparams)
  global_step = tf.Variable(0, dtype=tf.int64, trainable=False)
  checkpoint = tf.train.Checkpoint(model=model, global_step=global_step)
  try:
    status = checkpoint.restore(prefix)
    status.expect_partial()
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    raise ExperimentError(f'{prefix}: could not restore the model from this checkpoint ({e})') from None
  log.info(f'Restored {prefix} (step {int(global_step.numpy())})')
  return LoadedExperiment(paths=paths, hparams=hparams, model=model, step=int(global_step.numpy()),
                          checkpoint_path=prefix)

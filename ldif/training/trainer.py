"""The training loop behind train.py: input pipeline, train step, summaries, checkpoints, resuming.

Port of train.py's main loop and ldif/training/shared_launcher.py (`sif_transcoder`, `set_train_op`):
- Adam (lr = hparam `lr` = 5e-5, beta1 0.9, beta2 0.999, epsilon 1e-8), constant rate, no clipping, no weight
  decay, all trainable variables (ob = 't'); ResNet batch-norm statistics update every step.
- One `tf.function` train step: forward pass, losses (ldif.training.losses), gradients, Adam update, global
  step + 1. XLA compiles the whole step (`xla='step'`), only the CNN encoder and FC head (`'encoder'`), the
  encoder, the losses and the Adam update separately (`'parts'`), or nothing (`'none'`). The default `'auto'`
  picks what scripts/bench_train.py measured fastest on a 2-core CPU: `'step'` for SIF and SIF++ (2-4x faster
  than no XLA for SIF, 1.4x for SIF++ at batch 8) and `'encoder'` for LDIF (all modes within 10%; XLA compiles
  the PointNet's top-k selection and sparse max-pool gradient into slower code than TF's kernels).
- Summaries every `summary_step_interval` steps (step % interval == 0), checkpoints when
  step % `checkpoint_interval` == 0 (the first step included) and after the last step, at most 5 kept
  (`tf.train.CheckpointManager`). A checkpoint is named by the number of completed steps: `model.ckpt-<n>`.
- Resuming: if the experiment has a checkpoint, the latest one is restored and training continues at its
  global step until `train_step_count`; the stored hparams.json must match the requested model type.
- Randomness is seeded (`seed`): weight initialization, shuffling, loss-sample indices (stateless, a function
  of (seed, step)) and the local-view selection (stateless, (seed, step)). The original was unseeded. The
  input stream is not checkpointed; a resumed run reshuffles with a seed derived from (seed, start step).
- Multi-GPU: `tf.distribute.MirroredStrategy` when more than one GPU is visible (the batch is split across
  replicas, the loss is averaged).
- Mixed precision: the CNN, FC head and PointNet compute in bfloat16 (CPU) or float16 with loss scaling (GPU);
  the representation, losses and OccNet decoder stay float32.

Errors that leave the experiment untouched (raised before anything is written): a dataset split that does not
exist, unreadable/corrupted input shards at the first batch, stored hyperparameters that do not match the
requested model type. A corrupted record met later, or a non-finite loss, stops training with an error before
the next checkpoint, so existing checkpoints are never overwritten with a broken state.
"""

import dataclasses
import os
import time
import zlib

import keras
import numpy as np
import tensorflow as tf

from ldif.datasets import pipeline
from ldif.datasets import preprocess as preprocess_lib
from ldif.model.hparams import HParams
from ldif.training import experiment
from ldif.training import losses
from ldif.training import summaries
from ldif.util import log

# 'singleview-depth' (the original's build_singleview_depth_hparams: one 224x224 xyz image) goes beyond the
# original train.py, whose --model_type offered only the first three.
MODEL_TYPES = ('ldif', 'sif', 'sif++', 'singleview-depth')
XLA_MODES = ('auto', 'step', 'encoder', 'parts', 'none')
DEFAULT_XLA_MODE = 'auto'


class TrainingError(RuntimeError):
  """Training cannot go on (unreadable data mid-run, non-finite loss); the last checkpoint is kept."""


class DatasetError(ValueError):
  """The dataset directory or split cannot be read."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything a training run needs (train.py's flags).

  Attributes:
    dataset_directory: output of meshes2dataset.py.
    experiment_name: the experiment lives in <model_directory>/sif-transcoder-<experiment_name>.
    model_type: 'ldif', 'sif', 'sif++' or 'singleview-depth' (the hyperparameter preset; the last is not
      in the original train.py).
    model_directory: root of experiments; relative paths are relative to the current directory.
    batch_size: B (overrides the preset's bs, as the original's flag did).
    train_step_count: train until the global step reaches this.
    split: dataset split to train on.
    summary_step_interval / checkpoint_interval: see the module docstring.
    visualize: write images of the first batch to TensorBoard before training.
    seed: seed of all randomness.
    mixed_precision: bfloat16 (CPU) / float16 (GPU) compute in the CNN, head and PointNet.
    xla: where XLA compiles the train step: 'auto' (see `resolve_xla_mode`), 'step' (the whole step),
      'encoder' (the CNN encoder + FC head only), 'parts' (encoder, losses and Adam update separately) or
      'none'. See scripts/bench_train.py for the measurements behind 'auto'.
    occnet_batch_statistics: the port-only fix of the OccNet CBN quirk (default False = original numbers).
    max_checkpoints_to_keep: as tf.train.Saver(max_to_keep=5).
    progress_bar: show a tqdm progress bar (else log every 10 steps as the original).
  """
  dataset_directory: str
  experiment_name: str = 'reproduce-ldif'
  model_type: str = 'ldif'
  model_directory: str = 'trained_models/'
  batch_size: int = 1
  train_step_count: int = 1000000
  split: str = 'train'
  summary_step_interval: int = 10
  checkpoint_interval: int = 250
  visualize: bool = False
  seed: int = 0
  mixed_precision: bool = False
  xla: str = DEFAULT_XLA_MODE
  occnet_batch_statistics: bool = False
  max_checkpoints_to_keep: int = 5
  progress_bar: bool = True

  def validate(self):
    """Raises ValueError for impossible settings."""
    if self.model_type not in MODEL_TYPES:
      raise ValueError(f'--model_type must be one of {list(MODEL_TYPES)}, got {self.model_type!r}')
    for name in ('batch_size', 'summary_step_interval', 'checkpoint_interval', 'max_checkpoints_to_keep'):
      if getattr(self, name) < 1:
        raise ValueError(f'--{name} must be >= 1, got {getattr(self, name)}')
    if self.train_step_count < 0:
      raise ValueError(f'--train_step_count must be >= 0, got {self.train_step_count}')
    if not self.dataset_directory:
      raise ValueError('A dataset directory must be provided (--dataset_directory).')
    if not os.path.isdir(self.dataset_directory):
      raise DatasetError(f'No dataset directory found at {self.dataset_directory}')
    if not self.split:
      raise ValueError('--split must not be empty')
    if self.xla not in XLA_MODES:
      raise ValueError(f'--xla must be one of {list(XLA_MODES)}, got {self.xla!r}')

  def hparams(self):
    """The resolved hyperparameters: the preset with this batch size and port-only options."""
    return HParams.preset(self.model_type).replace(batch_size=self.batch_size,
                                                   occnet_batch_statistics=self.occnet_batch_statistics)


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """What `train` did: the experiment paths, first and last step run, and the losses of the steps it ran."""
  paths: experiment.ExperimentPaths
  start_step: int
  final_step: int
  losses: tuple


def derive_seed(seed, *tokens):
  """A 31-bit seed from a base seed and tokens (stable across runs and platforms)."""
  text = '|'.join([str(int(seed))] + [str(t) for t in tokens])
  return zlib.crc32(text.encode('utf-8')) & 0x7FFFFFFF


def required_keys(hparams):
  """Preprocessed-batch keys the train step needs (model inputs + loss inputs; depth images always, for the
  summaries)."""
  keys = {'depth_images'} | losses.required_batch_keys(hparams)
  if 'xyz' in hparams.observation_sampling:
    keys.add('xyz_images')
  if hparams.implicit_architecture == 'p' and hparams.has_latents:
    keys |= {'surface_points', 'surface_normals'}
  return sorted(keys)


def preprocess_options(hparams):
  """The keyword arguments of `ldif.datasets.preprocess.preprocess` for these hyperparameters."""
  return dict(height=hparams.image_height, width=hparams.image_width,
              view_index=hparams.single_view_index if hparams.view_count == 1 else None,
              sample_count=hparams.loss_sample_count, xyz_images='xyz' in hparams.observation_sampling)


def make_training_dataset(hparams, dataset_directory, split, batch_size, *, seed=0, start_step=0):
  """Batches for the train step: (inputs dict with `required_keys`, mesh_name [B] strings).

  Reads with `ldif.datasets.pipeline.build_dataset` (shuffled, repeated) and preprocesses in the pipeline,
  with stateless sample indices seeded by (seed, step).

  Raises:
    DatasetError: the split has no data.
  """
  try:
    raw = pipeline.build_dataset(dataset_directory, split, batch_size, shuffle=True, repeat=True,
                                 seed=derive_seed(seed, 'shuffle', start_step))
  except ValueError as e:
    raise DatasetError(str(e)) from None
  keys = required_keys(hparams)
  options = preprocess_options(hparams)
  sample_seed = derive_seed(seed, 'loss_samples')

  def prepare(index, batch):
    step_seed = tf.stack([tf.constant(sample_seed, tf.int64), tf.cast(index, tf.int64) + start_step])
    out = preprocess_lib.preprocess(batch, seed=step_seed, **options)
    return {k: out[k] for k in keys}, out['mesh_name']

  return raw.enumerate().map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(1)


def resolve_xla_mode(xla, hparams):
  """'auto' -> 'encoder' for models with a local PointNet (LDIF), else 'step'; other modes unchanged."""
  if xla != 'auto':
    return xla
  return 'encoder' if hparams.implicit_architecture == 'p' and hparams.has_latents else 'step'


def _policy_name(mixed_precision):
  if not mixed_precision:
    return 'float32'
  return 'mixed_float16' if tf.config.list_physical_devices('GPU') else 'mixed_bfloat16'


class Trainer:
  """Model, optimizer, global step and the compiled train step for one set of hyperparameters.

  Args:
    hparams: HParams.
    seed: base seed (weights are initialized from it when `initialize_seed` is True).
    xla: one of XLA_MODES (see TrainConfig); 'auto' is resolved with `resolve_xla_mode`.
    mixed_precision: see TrainConfig.
    strategy: a tf.distribute strategy (None = the default strategy).

  Attributes:
    model: StructuredImplicitModel; optimizer: keras Adam; global_step: int64 tf.Variable;
    checkpoint: tf.train.Checkpoint(model, optimizer, global_step).
  """

  def __init__(self, hparams, *, seed=0, xla=DEFAULT_XLA_MODE, mixed_precision=False, strategy=None,
               initialize_seed=True):
    if xla not in XLA_MODES:
      raise ValueError(f'xla must be one of {list(XLA_MODES)}, got {xla!r}')
    self.hparams = hparams
    xla = resolve_xla_mode(xla, hparams)
    self.strategy = strategy or tf.distribute.get_strategy()
    self.distributed = isinstance(self.strategy, tf.distribute.MirroredStrategy)
    if self.distributed and xla != 'none':
      # Batch-norm and CBN statistics of mirrored variables are averaged across replicas with a cross-replica
      # synchronization, which TF does not allow inside a nested (XLA) function.
      log.warning(f'--xla {xla} is not available with MirroredStrategy; training without XLA')
      xla = 'none'
    self.xla = xla
    self.policy = _policy_name(mixed_precision)
    self._view_seed = derive_seed(seed, 'local_views')
    losses.enabled_terms(hparams)  # Fails early for unsupported loss strings.
    if initialize_seed:
      keras.utils.set_random_seed(derive_seed(seed, 'weights'))
    with self.strategy.scope():
      self.model = experiment.build_model(hparams, compute_dtype=self.policy)
      self.model.jit_encoder = xla in ('encoder', 'parts')
      if self.model.pointnet is not None:
        # Under XLA the PointNet's fused max pool must take its gradient with static shapes.
        self.model.pointnet.static_shapes = xla == 'step'
      optimizer = keras.optimizers.Adam(learning_rate=hparams.learning_rate, beta_1=0.9, beta_2=0.999,
                                        epsilon=1e-8)
      if self.policy == 'mixed_float16':
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
      self.optimizer = optimizer
      self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name='global_step',
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.train_variables = self._train_variables()
      self.optimizer.build(self.train_variables)
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                          global_step=self.global_step)
    # xla='parts': XLA for the encoder + head (in the model), for the representation + decoder + losses, and
    # for the Adam update; plain TF for the local views and the PointNet (top-k selection and the sparse
    # max-pool gradient run faster outside XLA on CPUs).
    parts = self.xla == 'parts'
    self._loss_fn = tf.function(self._losses, jit_compile=True) if parts else self._losses
    self._apply_fn = tf.function(self._apply, jit_compile=True) if parts else self._apply
    self._step = None

  def _train_variables(self):
    variables = list(self.model.trainable_variables)
    if not self.hparams.optimize_explicit_cnn:
      frozen = {id(v) for v in self.model.encoder.trainable_variables + self.model.head.trainable_variables}
      variables = [v for v in variables if id(v) not in frozen]
    return variables

  # ---- the step --------------------------------------------------------------------------------------------
  def _gradients(self, batch):
    """Forward pass, losses and gradients on one replica's batch. Returns (grads, scalars dict)."""
    hp = self.hparams
    context = tf.distribute.get_replica_context()
    replicas = self.strategy.num_replicas_in_sync
    replica_id = tf.cast(context.replica_id_in_sync_group if context is not None else 0, tf.int64)
    seed = tf.stack([tf.constant(self._view_seed, tf.int64), self.global_step * replicas + replica_id])
    with tf.GradientTape() as tape:
      outputs = self.model(batch, training=True, local_view_seed=seed)
      outputs = {k: v for k, v in outputs.items() if k in ('activations', 'latents')}
      loss_inputs = {k: batch[k] for k in losses.required_batch_keys(hp)}
      total, terms, extras = self._loss_fn(outputs, loss_inputs)
      objective = total / replicas
      if self.policy == 'mixed_float16':
        objective = self.optimizer.scale_loss(objective)
    grads = tape.gradient(objective, self.train_variables)
    scalars = {'total': total}
    scalars.update({f'loss/{k}': v for k, v in terms.items()})
    scalars.update({f'extra/{k}': v for k, v in extras.items()})
    return grads, scalars

  def _losses(self, outputs, loss_inputs):
    """The representation, the decoder (training mode) and the loss terms: (total, terms, extras)."""
    hp = self.hparams
    sif = self.model.structured_implicit(outputs)
    if sif.latents is not None and not hp.implicit_parameters_contribute:
      sif = type(sif)(sif.constants, sif.centers, sif.radii, None, radius_type=sif.radius_type,
                      symmetry_count=sif.symmetry_count)
    return losses.compute_losses(hp, sif, self.model.decoder(training=True), loss_inputs)

  def _apply(self, grads):
    self.optimizer.apply_gradients(zip(grads, self.train_variables))

  def _single_device_step(self, batch):
    grads, scalars = self._gradients(batch)
    self._apply_fn(grads)
    self.global_step.assign_add(1)
    return scalars

  def _build_step(self):
    if not self.distributed:
      return tf.function(self._single_device_step, jit_compile=self.xla == 'step', reduce_retracing=True)

    def replica_step(batch):
      grads, scalars = self._gradients(batch)
      self.optimizer.apply_gradients(zip(grads, self.train_variables))
      return scalars

    @tf.function
    def distributed_step(batch):
      per_replica = self.strategy.run(replica_step, args=(batch,))
      scalars = {
          k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()
      }
      self.global_step.assign_add(1)
      return scalars

    return distributed_step

  def train_step(self, batch):
    """Runs one step on a batch (a dict with `required_keys`; distributed values under MirroredStrategy).

    Returns:
      dict of scalar tensors: 'total', 'loss/<term>' per enabled term, 'extra/<name>' (outside fractions, ec
      components).
    """
    if self._step is None:
      self._step = self._build_step()
    return self._step(batch)


# ---- the run -----------------------------------------------------------------------------------------------
def _select_strategy():
  gpus = tf.config.list_physical_devices('GPU')
  if len(gpus) > 1:
    log.info(f'{len(gpus)} GPUs visible: training with tf.distribute.MirroredStrategy')
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()


def _data_error(config, error):
  return DatasetError(
      f'Reading split {config.split!r} of the dataset {config.dataset_directory} failed '
      f'({type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ""}). '
      f'A TFRecord shard may be corrupted; re-create it with meshes2dataset.py '
      f'(--optimize_only --trample_optimized).')


def _next_batch(iterator, config):
  try:
    return next(iterator)
  except StopIteration:
    raise DatasetError(
        f'The dataset {config.dataset_directory} split {config.split!r} yielded no complete batch '
        f'of {config.batch_size} examples') from None
  except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
          tf.errors.UnknownError, tf.errors.OutOfRangeError) as e:
    raise _data_error(config, e) from None


def _prepare_experiment(config, hparams):
  """Checks an existing experiment against the request. Returns (paths, is_new). Writes nothing."""
  paths = experiment.ExperimentPaths.from_name(config.model_directory, config.experiment_name)
  has_checkpoints = bool(experiment.checkpoint_steps(paths)) or os.path.isfile(
      os.path.join(paths.job_dir, 'checkpoint'))
  if os.path.isfile(paths.hparams_path):
    stored = experiment.read_hparams(paths)
    experiment.check_hparams_match(stored, hparams, config.model_type, paths)
    if stored.batch_size != hparams.batch_size:
      log.warning(f'Resuming with batch size {hparams.batch_size} (the experiment started with '
                  f'{stored.batch_size}); {paths.hparams_path} keeps the original value')
    return paths, False
  if has_checkpoints or os.path.isfile(os.path.join(paths.job_dir, experiment.LEGACY_HPARAMS_FILE)):
    experiment.read_hparams(paths)  # raises with the right message
  return paths, True


def train(config):
  """Trains (or resumes) an experiment as train.py does. See the module docstring.

  Args:
    config: TrainConfig.

  Returns:
    TrainResult.

  Raises:
    ValueError / DatasetError / experiment.ExperimentError: bad flags, dataset or experiment (nothing
    written).
    TrainingError: data became unreadable or the loss non-finite mid-run (checkpoints untouched since the last
      save).
  """
  config.validate()
  hparams = config.hparams()
  paths, is_new = _prepare_experiment(config, hparams)
  strategy = _select_strategy()
  if config.batch_size % strategy.num_replicas_in_sync:
    raise ValueError(
        f'--batch_size {config.batch_size} must be divisible by the {strategy.num_replicas_in_sync} '
        'replicas')

  latest = tf.train.latest_checkpoint(paths.job_dir) if not is_new else None
  start_step = 0
  if latest:
    try:
      start_step = int(tf.train.load_variable(latest, 'global_step/.ATTRIBUTES/VARIABLE_VALUE'))
    except (ValueError, tf.errors.OpError) as e:
      raise experiment.ExperimentError(f'{latest}: unreadable checkpoint ({e})') from None
  elif not is_new:
    log.info(f'{paths.job_dir} has hparams.json but no checkpoint; training from scratch')

  # Read the first batch before building the model, so that bad data fails fast.
  dataset = make_training_dataset(hparams, config.dataset_directory, config.split, config.batch_size,
                                  seed=config.seed, start_step=start_step)
  iterator = iter(dataset)
  first = _next_batch(iterator, config) if start_step < config.train_step_count else None

  trainer = Trainer(hparams, seed=config.seed, xla=config.xla, mixed_precision=config.mixed_precision,
                    strategy=strategy)
  manager = tf.train.CheckpointManager(trainer.checkpoint, paths.job_dir,
                                       max_to_keep=config.max_checkpoints_to_keep,
                                       checkpoint_name=experiment.CHECKPOINT_NAME)
  if latest:
    try:
      trainer.checkpoint.restore(latest).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
      raise experiment.ExperimentError(f'{latest}: could not restore the checkpoint ({e})') from None
    if int(trainer.global_step.numpy()) != start_step:
      raise experiment.ExperimentError(f'{latest}: inconsistent global step')
    log.info(f'Resuming from {latest} at step {start_step}')

  # Validation is over: from here on the experiment directory is written.
  os.makedirs(paths.job_dir, exist_ok=True)
  os.makedirs(paths.log_dir, exist_ok=True)
  if is_new:
    log.info(f'New experiment {paths.root}; writing {paths.hparams_path}')
    hparams.save_json(paths.hparams_path)
  writer = tf.summary.create_file_writer(paths.log_dir)
  if config.visualize and first is not None:
    _write_visualization(config, hparams, writer, start_step)
    log.info(f'Wrote visualizations of one batch to {paths.log_dir}')

  if strategy.num_replicas_in_sync > 1:
    dist_iterator = iter(strategy.experimental_distribute_dataset(dataset.map(lambda inputs, names: inputs)))
    first = None
  else:
    dist_iterator = None

  losses_seen = []
  bar = None
  if config.progress_bar and start_step < config.train_step_count:
    import tqdm  # pylint: disable=import-outside-toplevel
    bar = tqdm.tqdm(total=config.train_step_count, initial=start_step, unit='step', dynamic_ncols=True,
                    desc=f'{config.model_type} {config.experiment_name}')
  log_every = 10
  tic = time.time()
  last_log_step = start_step
  try:
    for step in range(start_step, config.train_step_count):
      if dist_iterator is not None:
        try:
          inputs = next(dist_iterator)
        except (tf.errors.OpError, StopIteration) as e:
          raise TrainingError(str(_data_error(config, e))) from None
        names = None
      else:
        if first is not None:
          inputs, names = first
          first = None
        else:
          try:
            inputs, names = _next_batch(iterator, config)
          except DatasetError as e:
            raise TrainingError(f'{e} (at step {step}; the last checkpoint is kept)') from None
      scalars = trainer.train_step(inputs)
      total = float(scalars['total'])
      if not np.isfinite(total):
        raise TrainingError(f'The loss became {total} at step {step}; stopping without saving (the last '
                            f'checkpoint in {paths.job_dir} is kept)')
      losses_seen.append(total)
      if step % config.summary_step_interval == 0:
        terms = {k[len('loss/'):]: float(v) for k, v in scalars.items() if k.startswith('loss/')}
        extras = {k[len('extra/'):]: float(v) for k, v in scalars.items() if k.startswith('extra/')}
        depth = None
        if dist_iterator is None:
          depth = inputs['depth_images'].numpy()
        summaries.write_step_summaries(writer, step, config.split, total, terms, extras,
                                       mesh_names=None if names is None else names.numpy(),
                                       depth_images=depth)
      if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f'{total:.5f}', refresh=False)
      if (step + 1 - last_log_step) >= log_every or step == config.train_step_count - 1:
        elapsed = time.time() - tic
        rate = (step + 1 - last_log_step) / max(elapsed, 1e-9)
        message = f'Step: {step}\tLoss: {total:.6f}\tSteps/second: {rate:.3f}'
        (log.verbose if bar is not None else log.info)(message)
        tic, last_log_step = time.time(), step + 1
      if step % config.checkpoint_interval == 0 or step == config.train_step_count - 1:
        saved = manager.save(checkpoint_number=step + 1)
        log.verbose(f'Wrote checkpoint {saved}')
  finally:
    if bar is not None:
      bar.close()
    writer.flush()
  final_step = int(trainer.global_step.numpy())
  log.info(f'Done training: global step {final_step}, experiment {paths.root}')
  return TrainResult(paths=paths, start_step=start_step, final_step=final_step, losses=tuple(losses_seen))


def _write_visualization(config, hparams, writer, step):
  """Writes images of one fully preprocessed batch under visualize/ (the --visualize flag)."""
  raw = pipeline.build_dataset(config.dataset_directory, config.split, config.batch_size, shuffle=False,
                               repeat=False, seed=config.seed)
  try:
    batch = next(iter(raw))
  except (tf.errors.OpError, StopIteration) as e:
    raise _data_error(config, e) from None
  processed = preprocess_lib.preprocess(batch, seed=tf.constant([config.seed, 0], tf.int64),
                                        **preprocess_options(hparams))
  summaries.write_visualization(writer, step, {k: v.numpy() for k, v in processed.items()})

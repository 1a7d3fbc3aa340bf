"""Device setup for training: leaving GPU memory for the ldif2mesh inference kernel.

Port of the `--reserve_memory_for_inference_kernel` logic of the original train.py (which asked nvidia-smi for
the free memory and gave TensorFlow (free - 1536 MB) / free of it) with TF2 device configuration.
"""

import shutil
import subprocess
import sys

import tensorflow as tf

from ldif.util import log

INFERENCE_KERNEL_RESERVE_MB = 1024 + 512


def free_gpu_memory_mb():
  """Free memory per GPU in MB from `nvidia-smi`, or None when nvidia-smi is unavailable or fails."""
  exe = shutil.which('nvidia-smi')
  if exe is None:
    return None
  try:
    out = subprocess.run([exe, '--query-gpu=memory.free', '--format=csv,nounits,noheader'], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return [int(line.strip()) for line in out.splitlines() if line.strip()]
  except (OSError, subprocess.SubprocessError, ValueError):
    return None


def reserve_memory_for_inference_kernel(reserve_mb=INFERENCE_KERNEL_RESERVE_MB):
  """Caps TensorFlow's memory on each GPU at (free - reserve_mb) so the CUDA inference kernel can run later.

  A no-op (with a log line) without a GPU or on macOS, unlike the original, which failed without a GPU. Must
  be called before TensorFlow initializes its GPUs (i.e. before any op runs).

  Returns:
    list of per-GPU memory limits in MB that were set, or None when nothing was done (no GPU, macOS, or no
    nvidia-smi: then memory growth is enabled instead, which also leaves unused memory to other programs).

  Raises:
    ValueError: a GPU has less than `reserve_mb` MB free.
  """
  gpus = tf.config.list_physical_devices('GPU')
  if not gpus or sys.platform == 'darwin':
    log.info('No GPU visible: --reserve_memory_for_inference_kernel has nothing to do')
    return None
  free = free_gpu_memory_mb()
  if free is None or len(free) < len(gpus):
    log.warning('nvidia-smi did not report free GPU memory; enabling memory growth instead of a fixed cap')
    for gpu in gpus:
      tf.config.experimental.set_memory_growth(gpu, True)
    return None
  limits = []
  for gpu, free_mb in zip(gpus, free):
    limit = free_mb - reserve_mb
    if limit <= 0:
      raise ValueError(
          f"Can't leave {reserve_mb} MB for the inference kernel on {gpu.name}: only {free_mb} MB "
          'are free')
    tf.config.set_logical_device_configuration(gpu,
                                               [tf.config.LogicalDeviceConfiguration(memory_limit=limit)])
    limits.append(limit)
  log.info(f'TensorFlow may use {limits} MB of GPU memory (leaving {reserve_mb} MB per GPU for the kernel)')
  return limits

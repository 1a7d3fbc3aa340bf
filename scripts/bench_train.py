"""Benchmarks the training step of each preset on the CPU (or whatever device TF picks).

    python scripts/bench_train.py [--presets ldif,sif,sif++] [--batch_sizes 2,8]
                                  [--xla_modes none,encoder,parts,step] [--steps 4] [--markdown PATH]

Every (preset, batch size, XLA mode) runs in a fresh subprocess that builds the trainer
(ldif.training.trainer.Trainer) and feeds it an in-memory batch of the preprocessed shapes (no input
pipeline). Reported per row:
- seconds per train step: the minimum and the median over --steps steps after a warm-up, and the compile time
  (first call);
- the analytic FLOPs per step (multiply-adds x 2 of every conv / dense / matmul of the forward pass, and of
  the backward pass as this port runs it: 2x the forward for every layer, except that the PointNet's fused
  max-pool layer has an O(channels) backward, its other per-point layers are recomputed and back-propagated
  only at the arg-max points (counted at the upper bound of min(K, mfc) points per set; data-dependent, about a
  quarter of that at initialization), and the first conv layer needs no input gradient), and the
  dense-equivalent count (3x the forward);
- the fraction of the machine's dense matmul rate (a 2048x2048 float32 matmul, measured in the same run) that
  the executed FLOPs reach.
A ResNet50-V2 alone (137x137x20, batch 8, forward + backward + Adam, training-mode batch norm) is timed with
and without XLA, and again inside each LDIF batch-8 process, one step in turn with the LDIF step so that both
see the same load: the reference for the target "LDIF step at batch 8 <= 1.5x the encoder alone".

XLA modes (ldif.training.trainer.XLA_MODES): 'none'; 'step' (the whole train step compiled); 'encoder' (only
the CNN encoder and FC head, nested in a plain step); 'parts' (the encoder, the losses and the Adam update
compiled separately, the local views and PointNet plain).

Prints a markdown table and the command line; --markdown also writes them to a file. Timings on a shared
machine are noisy: the script reports the load average before and after.
"""

import argparse
import json
import os
import subprocess
import sys
import time

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- analytic multiply-add counts (forward), from the layer shapes of reference section 5 ------------------
def _resnet_macs(h, w, c_in):
  """Forward MACs of slim resnet_v2_50 with 2048 logits at h x w x c_in, per image."""
  ceil2 = lambda n: -(-n // 2)  # pylint: disable=unnecessary-lambda-assignment
  h, w = ceil2(h), ceil2(w)  # conv1 7x7/2 with explicit padding: 137 -> 69
  macs = 49 * c_in * 64 * h * w
  h, w = ceil2(h), ceil2(w)  # pool1
  depth_in = 64
  for base, units, stride in ((64, 3, 2), (128, 4, 2), (256, 6, 2), (512, 3, 1)):
    depth = 4 * base
    for i in range(units):
      s = stride if i == units - 1 else 1
      ho, wo = (ceil2(h), ceil2(w)) if s == 2 else (h, w)
      if depth_in != depth:
        macs += depth_in * depth * ho * wo  # projection shortcut
      macs += depth_in * base * h * w + 9 * base * base * ho * wo + base * depth * ho * wo
      h, w, depth_in = ho, wo, depth
  return macs + 2048 * 2048, 49 * c_in * 64 * 69 * 69


def _sif_cnn_macs(h, w, c_in):
  macs, c = 0, c_in
  for d in (16, 32, 64, 128, 128):
    h, w = -(-h // 2), -(-w // 2)
    macs += 9 * c * d * h * w
    c = d
  first = 9 * c_in * 16 * -(-137 // 2)**2
  return macs + h * w * c * 1024, first


def step_flops(preset, batch):
  """(executed training FLOPs per step, dense-equivalent 3x-forward FLOPs) for a preset at a batch size."""
  sys.path.insert(0, PROJECT_ROOT)
  from ldif.model.hparams import HParams  # pylint: disable=import-outside-toplevel
  hp = HParams.preset(preset)
  b = batch
  e, ee, l, s = hp.element_count, hp.effective_element_count, hp.latent_size, hp.loss_sample_count
  if hp.cnn_architecture == 's50':
    enc, first = _resnet_macs(hp.image_height, hp.image_width, hp.view_count)
    emb = 2048
  else:
    enc, first = _sif_cnn_macs(hp.image_height, hp.image_width, hp.view_count)
    emb = 1024
  head_len = hp.element_length if hp.implicit_architecture == '1' else hp.explicit_element_length
  head = emb * 2048 + 2048 * 2048 + 2048 * e * head_len
  fwd = b * (enc + head)
  bwd = 2 * fwd - b * first  # no input gradient for the first conv
  if hp.has_latents:
    k, mfc = hp.local_point_count, hp.pointnet_max_pool_features
    points = b * e * k
    early = 6 * 64 + 64 * 64 + 64 * 64 + 64 * 128
    widest = 128 * mfc
    final = mfc * 512 + 512 * 256 + 256 * l
    fwd_pn = points * (early + widest) + b * e * final
    fwd += fwd_pn
    # Sparse backward (ldif.nets.pointnet.per_point_mlp_max): the widest layer O(channels) per set; the
    # earlier per-point layers recomputed (1x) and back-propagated (2x) at the arg-max points only.
    argmax_points = b * e * min(k, mfc)
    bwd += 3 * argmax_points * early + 2 * b * e * final + b * e * mfc * 128 * 2
    w = l
    rows = b * ee * s
    occ = rows * (3 * w + 2 * w * w + w) + b * ee * 3 * 2 * l * w
    fwd += 2 * occ  # uniform and near-surface losses
    bwd += 2 * 2 * occ
  executed = 2 * (fwd + bwd)
  dense_equivalent = 2 * 3 * fwd
  return executed, dense_equivalent


# ---- single measurements (run in a subprocess) -------------------------------------------------------------
def _matmul_rate(repeats=10):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  n = 2048
  a = tf.random.normal([n, n])
  c = tf.random.normal([n, n])
  f = tf.function(lambda: tf.matmul(a, c))
  f().numpy()
  best = float('inf')
  for _ in range(repeats):
    t = time.perf_counter()
    f().numpy()
    best = min(best, time.perf_counter() - t)
  return 2 * n**3 / best


def _interleaved(fns, steps):
  """Times several step functions in turn (one step each, `steps` rounds) after compiling/warming each up.

  Interleaving spreads the load of other processes over all variants; the minimum over rounds estimates each
  variant's own cost. Returns {name: (compile seconds, min step seconds, median step seconds)}.
  """
  compile_s, times = {}, {name: [] for name in fns}
  for name, fn in fns.items():
    t = time.perf_counter()
    fn()
    compile_s[name] = time.perf_counter() - t
    fn()
  for _ in range(steps):
    for name, fn in fns.items():
      t = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t)
  return {name: (compile_s[name], min(ts), sorted(ts)[len(ts) // 2]) for name, ts in times.items()}


def _resnet_step_fn(batch, xla):
  """A ResNet50-V2-alone train step (137x137x20, forward + backward + Adam), as a no-argument callable."""
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from ldif.nets import resnet  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(0)
  images = tf.random.uniform([batch, 137, 137, 20], maxval=2.0)
  net = resnet.ResNet50V2()
  net(images)
  optimizer = keras.optimizers.Adam(5e-5)
  optimizer.build(net.trainable_variables)

  @tf.function(jit_compile=xla)
  def step():
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(net(images, training=True)))
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer.apply_gradients(zip(grads, net.trainable_variables))
    return loss

  return lambda: float(step())


def measure(spec):
  """Builds the requested step functions in this process and times them in turn."""
  sys.path.insert(0, PROJECT_ROOT)
  fns = {}
  if spec.get('preset'):
    from ldif.model.hparams import HParams  # pylint: disable=import-outside-toplevel
    from ldif.training import synthetic  # pylint: disable=import-outside-toplevel
    from ldif.training import trainer  # pylint: disable=import-outside-toplevel
    hp = HParams.preset(spec['preset']).replace(batch_size=spec['batch'])
    data = synthetic.random_preprocessed_batch(hp, spec['batch'])
    t = trainer.Trainer(hp, seed=0, xla=spec['mode'])
    fns['preset'] = lambda: float(t.train_step(data)['total'])
  for xla in spec.get('resnet', []):
    fns[f'resnet_{xla}'] = _resnet_step_fn(8, xla == 'step')
  return _interleaved(fns, spec['steps'])


def _run_child(spec):
  env = dict(os.environ, PYTHONPATH=PROJECT_ROOT, TF_CPP_MIN_LOG_LEVEL='2',
             GLIBC_TUNABLES='glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=4294967296')
  out = subprocess.run(
      [sys.executable, os.path.abspath(__file__), '--_child',
       json.dumps(spec)], capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=3600)
  for line in out.stdout.splitlines():
    if line.startswith('RESULT '):
      return json.loads(line[len('RESULT '):])
  raise RuntimeError(f'benchmark child {spec} failed:\n{out.stderr[-3000:]}')


def _child(spec):
  spec = json.loads(spec)
  if spec['kind'] == 'matmul':
    result = {'flops_per_s': _matmul_rate()}
  else:
    result = measure(spec)
  print('RESULT ' + json.dumps(result), flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--presets', default='ldif,sif,sif++')
  parser.add_argument('--batch_sizes', default='2,8')
  parser.add_argument('--xla_modes', default='none,encoder,parts,step')
  parser.add_argument('--no_resnet', action='store_true', help='skip the ResNet50-V2-alone reference')
  parser.add_argument('--steps', type=int, default=4)
  parser.add_argument('--markdown', default='')
  parser.add_argument('--_child', default='')
  args = parser.parse_args()
  if args._child:  # pylint: disable=protected-access
    _child(args._child)  # pylint: disable=protected-access
    return
  command = (f'python scripts/bench_train.py --presets {args.presets} --batch_sizes {args.batch_sizes} '
             f'--xla_modes {args.xla_modes} --steps {args.steps}')
  if args.no_resnet:
    command += ' --no_resnet'
  load_before = os.getloadavg()
  rate = _run_child({'kind': 'matmul'})['flops_per_s']
  print(f'dense matmul rate (2048^2 float32): {rate / 1e9:.1f} GFLOP/s', flush=True)
  names = {'none': 'none', 'encoder': 'encoder only', 'parts': 'parts', 'step': 'whole step'}
  rows = []
  resnet_flops = 2 * 3 * 8 * _resnet_macs(137, 137, 20)[0]
  ratios = {}
  if not args.no_resnet:
    r = _run_child({'kind': 'resnet', 'resnet': ['step', 'none'], 'steps': args.steps})
    for mode in ('step', 'none'):
      compile_s, best, median = r[f'resnet_{mode}']
      rows.append(('ResNet50-V2 alone (137x137x20)', 8, names[mode], best, median, compile_s, resnet_flops,
                   resnet_flops))
      print(rows[-1], flush=True)
  modes = args.xla_modes.split(',')
  for preset in args.presets.split(','):
    for batch in [int(b) for b in args.batch_sizes.split(',')]:
      executed, dense = step_flops(preset, batch)
      for mode in modes:
        reference = not args.no_resnet and preset == 'ldif' and batch == 8
        r = _run_child({
            'kind': 'preset',
            'preset': preset,
            'batch': batch,
            'mode': mode,
            'steps': args.steps,
            'resnet': ['step'] if reference else []
        })
        compile_s, best, median = r['preset']
        rows.append((preset, batch, names[mode], best, median, compile_s, executed, dense))
        print(rows[-1], flush=True)
        if reference:
          ratios[mode] = (best, r['resnet_step'][1])
  load_after = os.getloadavg()
  lines = [
      f'Command: `{command}`', '',
      f'Machine: {os.cpu_count()} CPU cores; dense matmul rate (2048x2048 float32, best of 10): '
      f'{rate / 1e9:.1f} GFLOP/s. Load average (1 min) before/after: {load_before[0]:.2f} / '
      f'{load_after[0]:.2f}. Each row is a fresh process; s/step is the minimum over {args.steps} timed '
      f'steps '
      f'after a warm-up (median beside it).', '',
      '| network | batch | XLA | s/step (min) | s/step (median) | compile s | GFLOP/step (executed) | '
      'GFLOP/step (3x fwd) | GFLOP/s | fraction of matmul rate |',
      '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|'
  ]
  for name, batch, mode, best, median, compile_s, executed, dense in rows:
    achieved = executed / best
    lines.append(f'| {name} | {batch} | {mode} | {best:.3f} | {median:.3f} | {compile_s:.1f} | '
                 f'{executed / 1e9:.1f} | {dense / 1e9:.1f} | {achieved / 1e9:.1f} | {achieved / rate:.2f} |')
  if ratios:
    lines += [
        '', 'LDIF at batch 8 vs a ResNet50-V2 alone (XLA) timed in turn in the same process (target <= 1.5x):'
    ]
    for mode, (ldif_s, resnet_s) in ratios.items():
      lines.append(f'- {names[mode]}: {ldif_s:.3f} s vs {resnet_s:.3f} s = {ldif_s / resnet_s:.2f}x')
  text = '\n'.join(lines)
  print('\n' + text)
  if args.markdown:
    with open(args.markdown, 'w', encoding='utf-8') as f:
      f.write('# Train-step benchmark (scripts/bench_train.py)\n\n' + text + '\n')


if __name__ == '__main__':
  main()

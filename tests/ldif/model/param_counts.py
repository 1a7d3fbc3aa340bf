"""Parameter counts of the original's networks, derived by hand from the layer shapes of reference section 5.

Independent of the Keras code: every count is a sum over (kernel, bias, batch-norm) shapes written out here.
Used by tests/ldif/model/test_param_counts.py and by `python tests/ldif/model/param_counts.py`, which prints
the table for the README (/work/plan/param_counts.md).

Conventions: "trainable" counts kernels, biases and batch-norm gamma/beta; "non-trainable" counts batch-norm
moving means/variances (ResNet) and the OccNet CBN scalar running statistics.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Count:
  trainable: int
  non_trainable: int = 0

  def __add__(self, other):
    return Count(self.trainable + other.trainable, self.non_trainable + other.non_trainable)

  @property
  def total(self):
    return self.trainable + self.non_trainable


ZERO = Count(0, 0)


def dense(n_in, n_out, bias=True):
  """A fully connected layer or a 1x1 convolution."""
  return Count(n_in * n_out + (n_out if bias else 0))


def conv(k, n_in, n_out, bias=True):
  """A k x k convolution."""
  return Count(k * k * n_in * n_out + (n_out if bias else 0))


def batch_norm(channels):
  """gamma, beta (trainable) and moving mean, moving variance (not trainable)."""
  return Count(2 * channels, 2 * channels)


def resnet_v2_50(in_channels, num_classes=2048):
  """slim resnet_v2_50(num_classes) (section 5.2): conv1 with bias, bottleneck units, postnorm, 1x1 logits."""
  total = conv(7, in_channels, 64)
  depth_in = 64
  for base, units in ((64, 3), (128, 4), (256, 6), (512, 3)):
    depth = 4 * base
    for _ in range(units):
      total += batch_norm(depth_in)  # preact
      if depth_in != depth:
        total += conv(1, depth_in, depth)  # projection shortcut, with bias
      total += conv(1, depth_in, base, bias=False) + batch_norm(base)
      total += conv(3, base, base, bias=False) + batch_norm(base)
      total += conv(1, base, depth)  # conv3, with bias
      depth_in = depth
  total += batch_norm(2048)  # postnorm
  total += conv(1, 2048, num_classes)  # logits
  return total


def sif_cnn(in_channels, height=137, width=137, embedding=1024):
  """Five 3x3 stride-2 SAME convs (16, 32, 64, 128, 128) + FC (section 5.3)."""
  total = ZERO
  c = in_channels
  h, w = height, width
  for depth in (16, 32, 64, 128, 128):
    total += conv(3, c, depth)
    c = depth
    h, w = -(-h // 2), -(-w // 2)
  return total + dense(h * w * c, embedding)


def fc_head(embedding, element_count, element_length):
  """FC 2048, FC 2048, FC E*D (section 5.4)."""
  return dense(embedding, 2048) + dense(2048, 2048) + dense(2048, element_count * element_length)


def pointnet(in_features, max_pool_features, latent):
  """pointnet_depr: 64, 64 | 64, 128, mfc per point, then 512, 256, L (section 5.5)."""
  total = ZERO
  widths = [in_features, 64, 64, 64, 128, max_pool_features, 512, 256, latent]
  for a, b in zip(widths[:-1], widths[1:]):
    total += dense(a, b)
  return total


def occnet(latent, width):
  """sample_resize_fc, 3 CBNs (beta/gamma FCs + scalar running mean/variance), fc_1, fc_2, final (5.6)."""
  cbn = dense(latent, width) + dense(latent, width) + Count(0, 2)
  return dense(3, width) + cbn + cbn + cbn + dense(width, width) + dense(width, width) + dense(width, 1)


def preset_counts(name):
  """{'encoder', 'fc_head', 'pointnet', 'occnet', 'total'} Counts of a preset's network."""
  if name == 'ldif':
    parts = {
        'encoder': resnet_v2_50(20),
        'fc_head': fc_head(2048, 32, 10),
        'pointnet': pointnet(6, 512, 32),
        'occnet': occnet(32, 32)
    }
  elif name == 'sif++':
    parts = {'encoder': resnet_v2_50(20), 'fc_head': fc_head(2048, 32, 10), 'pointnet': ZERO, 'occnet': ZERO}
  elif name == 'sif':
    parts = {'encoder': sif_cnn(1), 'fc_head': fc_head(1024, 100, 7), 'pointnet': ZERO, 'occnet': ZERO}
  elif name == 'singleview-depth':
    parts = {'encoder': resnet_v2_50(3), 'fc_head': fc_head(2048, 32, 10), 'pointnet': ZERO, 'occnet': ZERO}
  else:
    raise ValueError(name)
  total = ZERO
  for part in parts.values():
    total += part
  parts['total'] = total
  return parts


PRESETS = ('ldif', 'sif', 'sif++', 'singleview-depth')


def markdown_table():
  """The README table: one row per preset, trainable counts per part, totals."""
  lines = [
      '| preset | encoder | FC head | PointNet | OccNet | trainable | non-trainable | total |',
      '|---|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for name in PRESETS:
    c = preset_counts(name)
    lines.append(f"| {name} | {c['encoder'].trainable:,} | {c['fc_head'].trainable:,} | "
                 f"{c['pointnet'].trainable:,} | {c['occnet'].trainable:,} | {c['total'].trainable:,} | "
                 f"{c['total'].non_trainable:,} | {c['total'].total:,} |")
  return '\n'.join(lines)


if __name__ == '__main__':
  print(markdown_table())

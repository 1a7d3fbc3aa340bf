"""gaps_py._cli: the GAPS-style flag parser and exit-status wrapper shared by the gaps_py programs."""

import logging
import operator

import numpy as np
import pytest

from gaps_py import _cli

_TABLE = _cli.Cli(
    'demo', 'usage: demo in out [-n N] [-bbox 6 floats] [-scale S] [-mode_a|-mode_b] [-exactly N]',
    positional=('input_path', 'output_path'),
    flags={
        '-n': _cli.Flag('n', 1, int),
        '-border': _cli.Flag('border', 1, lambda s: int(float(s))),
        '-bbox': _cli.Flag('bbox', 6, float),
        '-scale': _cli.Flag('scale', 1, float, combine=operator.mul),
        '-mode_a': _cli.Flag('mode', const='a'),
        '-mode_b': _cli.Flag('mode', const='b'),
        '-exactly': _cli.Flag('n', 1, int, also={'exact': True}),
        '-switch': _cli.Flag('switch'),
        '-mesa': _cli.IGNORED,
        '-debug': _cli.Flag(log_level='verbose'),
    },
    defaults={'n': 7, 'scale': 1.0, 'exact': False, 'switch': False},
    unsupported={'-capture_': 'only -capture_depth_images'})


@pytest.fixture(autouse=True)
def _restore_log_level():
  logger = logging.getLogger('ldif')
  level = logger.level
  yield
  logger.setLevel(level)


def test_defaults_and_positional_names():
  args = _TABLE.parse(['a.obj', 'b.grd'])
  assert (args.input_path, args.output_path) == ('a.obj', 'b.grd')
  assert (args.n, args.scale, args.exact, args.switch) == (7, 1.0, False, False)
  assert args.bbox is None and args.mode is None and args.border is None  # dests without a default


def test_values_types_and_order():
  # Flags and file names mix in any order; a value that looks like a negative number is still a value.
  args = _TABLE.parse(['-bbox', '-0.7', '-0.7', '-0.7', '0.7', '0.7', '0.7', 'a.obj', '-n', '-3', '-mode_a',
                       'b.grd', '-border', '2.9', '-switch', '-mode_b', '-mesa'])
  assert args.bbox == [-0.7, -0.7, -0.7, 0.7, 0.7, 0.7] and all(type(x) is float for x in args.bbox)
  assert args.n == -3 and type(args.n) is int
  assert args.border == 2 and args.mode == 'b' and args.switch is True  # last mode flag wins
  assert (args.input_path, args.output_path) == ('a.obj', 'b.grd')


def test_combine_and_also():
  args = _TABLE.parse(['a', 'b', '-scale', '2', '-scale', '0.25'])
  assert args.scale == 0.5
  args = _TABLE.parse(['a', 'b', '-exactly', '5', '-n', '9'])
  assert args.n == 9 and args.exact is True  # -exactly's side assignment stays


@pytest.mark.parametrize('argv, message', [
    (['a', 'b', '-nope'], 'invalid program argument: -nope'),
    (['a', 'b', '-'], 'invalid program argument: -'),  # GAPS: anything starting with '-' is a flag
    (['a', 'b', '-capture_color_images'], '-capture_color_images is not supported by gaps_py.demo '
                                          '(only -capture_depth_images)'),
    (['a', 'b', '-n'], '-n needs 1 value'),
    (['a', 'b', '-bbox', '0', '0', '0', '1', '1'], '-bbox needs 6 values'),
    (['a', 'b', '-n', '1.5'], "-n: invalid value '1.5'"),
    (['a'], 'expected 2 file arguments (input_path output_path), got 1'),
    (['a', 'b', 'c'], 'expected 2 file arguments (input_path output_path), got 3'),
])
def test_usage_errors(argv, message):
  with pytest.raises(_cli.UsageError) as info:
    _TABLE.parse(argv)
  assert str(info.value) == message
  assert isinstance(info.value, ValueError)


def test_log_level_flags():
  logger = logging.getLogger('ldif')
  logger.setLevel(logging.WARNING)
  _TABLE.parse(['a', 'b', '-v'])  # -v is built in
  assert logger.level == logging.DEBUG
  logger.setLevel(logging.WARNING)
  _TABLE.parse(['a', 'b', '-debug'])
  assert logger.level == logging.DEBUG
  table = _cli.Cli('demo', 'usage', ('x',), {'-v': _cli.Flag(log_level='info')})  # a table may respell -v
  table.parse(['x', '-v'])
  assert logger.level == logging.INFO


def test_main_exit_status_and_messages(tmp_path, capsys, monkeypatch):
  errors = []
  monkeypatch.setattr(_cli.log, 'error', lambda msg, *args: errors.append(msg % args))

  def output():  # logged errors and stderr since the last call
    err = capsys.readouterr().err
    text = '\n'.join(errors + [err])
    errors.clear()
    return text

  seen = []
  assert _TABLE.main(['in', 'out', '-n', '3'], seen.append) == 0
  assert seen[0].n == 3 and output() == ''

  def never_called(args):
    raise AssertionError('called')

  assert _TABLE.main(['in'], never_called) == 1
  err = output()
  assert 'expected 2 file arguments' in err and err.rstrip().endswith(_TABLE.usage)

  def needs_mode(args):
    if args.mode is None:
      raise _cli.UsageError('give -mode_a or -mode_b')

  assert _TABLE.main(['in', 'out'], needs_mode) == 1
  err = output()
  assert 'give -mode_a or -mode_b' in err and _TABLE.usage in err

  def reads_missing_file(args):
    np.load(tmp_path / args.input_path)

  assert _TABLE.main(['missing.npy', 'out'], reads_missing_file) == 1
  err = output()
  assert f'{tmp_path / "missing.npy"}: No such file or directory' in err and _TABLE.usage not in err

  def bad_content(args):
    raise ValueError(f'{args.input_path}: no faces')

  assert _TABLE.main(['in.obj', 'out'], bad_content) == 1
  err = output()
  assert 'in.obj: no faces' in err and _TABLE.usage not in err

  def crashes(args):
    raise KeyError('bug')  # a program bug is not turned into an exit status

  with pytest.raises(KeyError):
    _TABLE.main(['in', 'out'], crashes)


def test_describe_error():
  assert _cli.describe_error(FileNotFoundError(2, 'No such file or directory', 'x.ply')) == \
      'x.ply: No such file or directory'
  assert _cli.describe_error(OSError('disk full')) == 'disk full'
  assert _cli.describe_error(ValueError('m.obj: no faces')) == 'm.obj: no faces'

"""GAPS-style command lines for the gaps_py programs: single-dash flags, positional file names, exit status.

GAPS programs read their arguments left to right: an argument that starts with '-' is a flag (followed by a
fixed number of values), anything else fills the next file name; an unknown flag or one file name too many is
an error (the ParseArgs loop of every GAPS app, e.g. apps/msh2df). Each gaps_py CLI describes its flags as
a table and hands the work to `Cli.main`::

    _CLI = _cli.Cli('grd2msh', _USAGE, positional=('input_grid', 'output_mesh'),
                    flags={'-threshold': _cli.Flag('threshold', 1, float)}, defaults={'threshold': 0.0})

    def main(argv=None):
      return _CLI.main(argv, _run)   # _run(args) reads args.input_grid, args.threshold, ...

Exit status 1 on a usage error (the problem, then the usage line, on stderr) and on a failure while running
(`ValueError` / `OSError`: logged as `<path>: <problem>`, no usage line); 0 on success.
"""

import dataclasses
import sys
import types
from typing import Any, Callable, Mapping, Optional

from ldif.util import log


class UsageError(ValueError):
  """A command line that does not fit the program (unknown flag, missing value, wrong file count, ...).

  `Cli.main` answers it with the message and the usage line, wherever it is raised: the program function may
  raise it too, for checks that need the parsed values (e.g. a required mode flag).
  """


@dataclasses.dataclass(frozen=True)
class Flag:
  """One flag of a GAPS-style command line.

  Attributes:
    dest: attribute of the parsed namespace it sets; None for a flag that is accepted and ignored (or only
      sets a log level).
    nargs: how many values follow the flag. 0: `dest` becomes `const`; 1: `dest` becomes `type(value)`;
      more: `dest` becomes the list of the converted values.
    type: converts each value string (float, int, str, ...); a ValueError it raises is a usage error.
    const: what a flag without values stores.
    combine: if given, `dest` becomes `combine(previous, new)` instead of `new` (e.g. operator.mul for GAPS
      msh2msh's cumulative -scale).
    also: further (dest -> value) assignments made whenever the flag appears.
    log_level: if given, the flag sets the log level (`ldif.util.log.set_level`) when it is read.
  """
  dest: Optional[str] = None
  nargs: int = 0
  type: Callable[[str], Any] = str
  const: Any = True
  combine: Optional[Callable[[Any, Any], Any]] = None
  also: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  log_level: Optional[str] = None


IGNORED = Flag()
VERBOSE = Flag(log_level='verbose')

GL_PROGRAM_FLAGS = {
    '-width': Flag('width', 1, int),
    '-height': Flag('height', 1, int),
    '-v': Flag(log_level='info'),
    '-debug': Flag(log_level='verbose'),
    '-mesa': IGNORED,
    '-glut': IGNORED,
}
"""Flags of the GAPS OpenGL programs (scn2img, conf2img): image size, log level; the OpenGL back-end choice
(-mesa, -glut) is accepted and ignored. Their -v keeps the default level ('info'), -debug shows verbose."""


@dataclasses.dataclass(frozen=True)
class Cli:
  """A gaps_py program's command line.

  Attributes:
    prog: program name (for messages), e.g. 'scn2img'.
    usage: the usage line printed after a usage error.
    positional: names of the required file arguments, in order; each becomes an attribute of the namespace.
    flags: flag spelling -> Flag. `-v` (log level 'verbose') is added unless the table spells it itself.
    defaults: initial value of every `dest` (a dest without a default starts as None).
    unsupported: flag prefix -> hint, for GAPS flags this port deliberately lacks: an unknown flag with that
      prefix gives "<flag> is not supported by gaps_py.<prog> (<hint>)" instead of the generic message.
  """
  prog: str
  usage: str
  positional: tuple
  flags: Mapping[str, Flag]
  defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  unsupported: Mapping[str, str] = dataclasses.field(default_factory=dict)

  def parse(self, argv):
    """Parses a list of argument strings into a `types.SimpleNamespace` (defaults, flags, file names).

    Log-level flags take effect as they are read. Raises: UsageError naming the offending argument.
    """
    table = {'-v': VERBOSE, **self.flags}
    args = types.SimpleNamespace(**{**{f.dest: None for f in table.values() if f.dest}, **self.defaults})
    files = []
    argv = list(argv)
    while argv:
      arg = argv.pop(0)
      if not arg.startswith('-'):
        files.append(arg)
        continue
      flag = table.get(arg)
      if flag is None:
        for prefix, hint in self.unsupported.items():
          if arg.startswith(prefix):
            raise UsageError(f'{arg} is not supported by gaps_py.{self.prog} ({hint})')
        raise UsageError(f'invalid program argument: {arg}')
      if len(argv) < flag.nargs:
        raise UsageError(f'{arg} needs {flag.nargs} value{"s" if flag.nargs > 1 else ""}')
      raw, argv = argv[:flag.nargs], argv[flag.nargs:]
      try:
        values = [flag.type(v) for v in raw]
      except ValueError:
        raise UsageError(f'{arg}: invalid value {" ".join(raw)!r}') from None
      if flag.log_level:
        log.set_level(flag.log_level)
      if flag.dest:
        value = flag.const if flag.nargs == 0 else values[0] if flag.nargs == 1 else values
        if flag.combine is not None:
          value = flag.combine(getattr(args, flag.dest), value)
        setattr(args, flag.dest, value)
      for dest, value in flag.also.items():
        setattr(args, dest, value)
    if len(files) != len(self.positional):
      raise UsageError(f'expected {len(self.positional)} file arguments ({" ".join(self.positional)}), '
                       f'got {len(files)}')
    for name, value in zip(self.positional, files):
      setattr(args, name, value)
    return args

  def main(self, argv, program):
    """Parses `argv` (None: sys.argv[1:]) and calls `program(args)`. Returns the exit status (0 or 1).

    A UsageError (from parsing or from `program`) logs the problem and prints the usage line to stderr;
    a ValueError or OSError from `program` logs "<path>: <problem>". Both return 1.
    """
    try:
      program(self.parse(sys.argv[1:] if argv is None else argv))
    except UsageError as e:
      log.error('%s', e)
      print(self.usage, file=sys.stderr)
      return 1
    except (ValueError, OSError) as e:
      log.error('%s', describe_error(e))
      return 1
    return 0


def describe_error(error):
  """'<path>: <problem>' for an OSError that names its file, else the exception's message (gaps_py's
  ValueErrors, e.g. `gaps_py.io.MeshError`, already start with the path)."""
  if isinstance(error, OSError) and error.filename is not None and error.strerror:
    return f'{error.filename}: {error.strerror}'
  return str(error)

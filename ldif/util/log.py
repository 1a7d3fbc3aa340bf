"""Logging with the original LDIF's level names (verbose, info, warning, error).

Messages print to stderr as `LEVEL: message`, as the original's `file_util.log` did. Use::

    from ldif.util import log
    log.set_level('info')
    log.info('Wrote %s', path)
"""

import logging
import sys

_LEVELS = {
    'verbose': logging.DEBUG,
    'info': logging.INFO,
    'warning': logging.WARNING,
    'error': logging.ERROR,
}

_logger = logging.getLogger('ldif')
if not _logger.handlers:
  _handler = logging.StreamHandler(sys.stderr)
  _handler.setFormatter(logging.Formatter('%(levelname)s: %(message)s'))
  _logger.addHandler(_handler)
  _logger.propagate = False
  _logger.setLevel(logging.INFO)
logging.addLevelName(logging.DEBUG, 'VERBOSE')


def set_level(name):
  """Sets the level from a flag value: one of verbose/info/warning/error (case-insensitive).

  Raises:
    ValueError: for any other name.
  """
  key = str(name).strip().lower()
  if key not in _LEVELS:
    raise ValueError(f'Unknown log level {name!r}; expected one of {sorted(_LEVELS)}')
  _logger.setLevel(_LEVELS[key])


def verbose(msg, *args):
  _logger.debug(msg, *args)


def info(msg, *args):
  _logger.info(msg, *args)


def warning(msg, *args):
  _logger.warning(msg, *args)


def error(msg, *args):
  _logger.error(msg, *args)

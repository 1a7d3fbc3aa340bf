"""Shared pytest fixtures: where the conformance references are, seeded RNGs, the LDIF evaluation op.

Helper functions shared across folders are in tests/testutil.py.
"""

import os
import pathlib

import numpy as np
import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('LDIF_SHARED_DIR', PROJECT_ROOT.parent / 'shared'))
REFERENCE = SHARED / 'reference'


@pytest.fixture
def reference_dir():
  """`../shared/reference` (or $LDIF_SHARED_DIR/reference); skips the test, saying why, if absent."""
  if not REFERENCE.is_dir():
    pytest.skip(f'conformance reference folder {REFERENCE} is absent (it sits beside the checkout as ../shared)')
  return REFERENCE


@pytest.fixture
def rng():
  return np.random.default_rng(1234)


@pytest.fixture(scope='session')
def ldif_eval_op():
  """The compiled LDIF evaluation op module (`ldif.ops.loader.ensure_op`, which builds it when missing or
  stale); skips the test, saying why, when it cannot be had."""
  from ldif.ops import loader  # pylint: disable=g-import-not-at-top  (TF only for the tests that ask)
  module, reason = loader.ensure_op()
  if module is None:
    pytest.skip(f'the LDIF evaluation op is not available: {reason}')
  return module

"""Shared pytest fixtures: where the conformance references are, and seeded RNGs."""

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

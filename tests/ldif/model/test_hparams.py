"""Tests of the typed hyperparameters (ldif/model/hparams.py)."""

import ast
import dataclasses
import json
import pathlib

import pytest

from ldif.model import hparams as hparams_lib
from ldif.model.hparams import HParams

ORIGINAL_HPARAMS = pathlib.Path('/work/src/ldif/ldif/model/hparams.py')


def test_every_original_key_is_mapped_once():
  short = [f.metadata['short_key'] for f in dataclasses.fields(HParams) if f.metadata['short_key']]
  assert len(short) == 90 and len(set(short)) == 90
  assert HParams.short_key('element_count') == 'sc'
  assert HParams.field_name('mfc') == 'pointnet_max_pool_features'
  assert HParams.short_key('occnet_batch_statistics') is None


def test_defaults_are_the_originals_autoencoder_defaults():
  d = HParams().to_short_keys()
  assert (d['sc'], d['lyr'], d['ips'], d['mfc'], d['spc'], d['lpc']) == (100, 10, 32, 1024, 1024, 1024)
  assert (d['cnna'], d['ia'], d['ipe'], d['r'], d['loss'], d['samp']) == ('r50', 'p', 'f', 'cov', 'unsbbgi',
                                                                          'imdpn')
  assert (d['lr'], d['l2w'], d['a2w'], d['ibblw'], d['igt'], d['lset'], d['hdn']) == (5e-5, 1.0, 0.1, 10.0,
                                                                                      0.044, -0.07, 100.0)
  assert (d['ob'], d['fon'], d['udp'], d['p64'], d['fbp']) == ('t', 't', 't', 'f', 't')


def test_defaults_match_the_original_source_when_available():
  if not ORIGINAL_HPARAMS.is_file():
    pytest.skip(f'{ORIGINAL_HPARAMS} (the original code base) is not on this machine')
  src = ORIGINAL_HPARAMS.read_text()
  start = src.index('autoencoder_hparams = tf.contrib.training.HParams(')
  call = ast.parse(src[start:src.index('def backwards_compatible_hparam_defaults')].strip()).body[0].value
  original = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
  assert HParams().to_short_keys() == original


@pytest.mark.parametrize('name, expected', [
    ('ldif',
     dict(sc=32, lyr=16, ipe='t', ips=32, mfc=512, cnna='s50', ia='p', r='cov', loss='unsbbgi', spc=1024,
          samp='imdpn', ucf=1.0)),
    ('sif',
     dict(sc=100, lyr=0, ipe='f', ips=0, ia='1', cnna='cnn', r='aa', loss='unsec', spc=3000, ucf=10.0,
          cc=0.01, samp='im1dpn', bs=16, ig=0.0, igt=0.0)),
    ('sif++', dict(sc=32, lyr=16, ipe='f', ips=0, mfc=512, cnna='s50', ia='p', r='cov', loss='unsbbgi')),
    ('singleview-depth', dict(h=224, w=224, samp='im1xyzpn', didx=0, sc=32, lyr=16, ipe='f')),
])
def test_presets(name, expected):
  short = HParams.preset(name).to_short_keys()
  assert {k: short[k] for k in expected} == expected


def test_derived_quantities():
  ldif, sif, sifpp = HParams.preset('ldif'), HParams.preset('sif'), HParams.preset('sif++')
  assert (ldif.element_length, sifpp.element_length, sif.element_length) == (42, 10, 7)
  assert (ldif.effective_element_count, sif.effective_element_count) == (48, 100)
  assert (ldif.view_count, sif.view_count) == (20, 1)
  assert [k for k in ('u', 'ns', 'ec', 'gi', 'bb', 'm') if ldif.loss_enabled(k)] == ['u', 'ns', 'gi', 'bb']
  assert [k for k in ('u', 'ns', 'ec', 'gi', 'bb', 'm') if sif.loss_enabled(k)] == ['u', 'ns', 'ec']


@pytest.mark.parametrize('name', ['ldif', 'sif', 'sif++', 'singleview-depth'])
def test_json_and_short_key_round_trips(name, tmp_path):
  hp = HParams.preset(name).replace(batch_size=3, occnet_batch_statistics=True)
  assert HParams.from_json(hp.to_json()) == hp
  path = tmp_path / 'hparams.json'
  hp.save_json(path)
  assert HParams.load_json(path) == hp
  assert [p.name for p in tmp_path.iterdir()] == ['hparams.json']  # no temporary file left behind
  doc = json.loads(path.read_text())
  assert doc['format'] == 'ldif-tf2-hparams' and doc['short_keys']['bs'] == 3
  assert HParams.from_short_keys(hp.to_short_keys(), occnet_batch_statistics=True) == hp
  assert hp.matching_preset() == name


def test_from_short_keys_fills_backwards_compatible_defaults():
  hp = HParams.from_short_keys({'sc': 7, 'cnna': 'r50'})
  assert hp.element_count == 7
  assert hp.cnn_architecture == 's50'  # r50 is read as s50, as the original's reader did
  # Missing keys of an old 'sif' dict take the backwards-compatibility table, not the current defaults.
  assert (hp.implicit_architecture, hp.local_frame_transform, hp.symmetric_element_count) == ('2', 'i', 0)
  assert hp.pointnet_feature_transform and not hp.fast_pointnet_reduce


def test_bad_values_are_rejected(tmp_path):
  with pytest.raises(ValueError, match='radius_type'):
    HParams(radius_type='sphere')
  with pytest.raises(TypeError, match='element_count'):
    HParams(element_count='32')
  with pytest.raises(ValueError, match='symmetric_element_count'):
    HParams(element_count=4, symmetric_element_count=5)
  with pytest.raises(ValueError, match='Unknown hyperparameter short keys'):
    HParams.from_short_keys({'sc': 32, 'nope': 1})
  with pytest.raises(ValueError, match="'t' or 'f'"):
    HParams.from_short_keys({'ob': 'yes'})
  with pytest.raises(ValueError, match='Unknown hyperparameter preset'):
    HParams.preset('occnet')
  doc = json.loads(HParams().to_json())
  doc['hparams']['no_such_field'] = 1
  with pytest.raises(ValueError, match='no_such_field'):
    HParams.from_json(json.dumps(doc), source='x.json')
  doc = json.loads(HParams().to_json())
  doc['version'] = 99
  with pytest.raises(ValueError, match='version'):
    HParams.from_json(json.dumps(doc))
  with pytest.raises(ValueError, match='not valid JSON'):
    HParams.from_json('{')
  with pytest.raises(FileNotFoundError):
    HParams.load_json(tmp_path / 'missing.json')
  # An int for a float field is accepted and stored as float.
  assert HParams(learning_rate=1).learning_rate == 1.0 and isinstance(
      HParams(learning_rate=1).learning_rate, float)


def test_differences_and_matching_preset():
  ldif = HParams.preset('ldif')
  assert ldif.replace(batch_size=2).matching_preset() == 'ldif'
  assert ldif.replace(element_count=31).matching_preset() is None
  diffs = HParams.preset('sif').differences(ldif)
  assert 'element_count' in diffs and 'batch_size' not in diffs


def test_no_pickle_anywhere():
  source = pathlib.Path(hparams_lib.__file__).read_text()
  assert 'import pickle' not in source

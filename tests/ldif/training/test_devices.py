"""Tests of --reserve_memory_for_inference_kernel (ldif/training/devices.py), with a faked GPU list."""

import pytest

from ldif.training import devices


class _FakeConfig:

  def __init__(self, gpus):
    self.gpus = gpus
    self.limits = {}
    self.growth = []

    class Experimental:

      @staticmethod
      def set_memory_growth(gpu, value):
        self.growth.append((gpu, value))

    self.experimental = Experimental()

  def list_physical_devices(self, kind):
    return self.gpus if kind == 'GPU' else []

  def set_logical_device_configuration(self, gpu, configs):
    self.limits[gpu] = configs[0].memory_limit

  LogicalDeviceConfiguration = staticmethod(lambda memory_limit: type('C',
                                                                      (), {'memory_limit': memory_limit}))


class _Gpu:

  def __init__(self, name):
    self.name = name


def _patch(monkeypatch, gpus, free):
  fake = _FakeConfig(gpus)
  monkeypatch.setattr(devices.tf, 'config', fake)
  monkeypatch.setattr(devices, 'free_gpu_memory_mb', lambda: free)
  monkeypatch.setattr(devices.sys, 'platform', 'linux')
  return fake


def test_no_gpu_is_a_no_op(monkeypatch):
  fake = _patch(monkeypatch, [], None)
  assert devices.reserve_memory_for_inference_kernel() is None
  assert not fake.limits and not fake.growth


def test_caps_each_gpu_at_free_minus_the_reserve(monkeypatch):
  gpus = [_Gpu('gpu0'), _Gpu('gpu1')]
  fake = _patch(monkeypatch, gpus, [10000, 4000])
  assert devices.reserve_memory_for_inference_kernel() == [10000 - 1536, 4000 - 1536]
  assert fake.limits == {gpus[0]: 8464, gpus[1]: 2464}


def test_too_little_free_memory_is_an_error(monkeypatch):
  _patch(monkeypatch, [_Gpu('gpu0')], [1000])
  with pytest.raises(ValueError, match='only 1000 MB'):
    devices.reserve_memory_for_inference_kernel()


def test_without_nvidia_smi_memory_growth_is_enabled(monkeypatch):
  gpus = [_Gpu('gpu0')]
  fake = _patch(monkeypatch, gpus, None)
  assert devices.reserve_memory_for_inference_kernel() is None
  assert fake.growth == [(gpus[0], True)]

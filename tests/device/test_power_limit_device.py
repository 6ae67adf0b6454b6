"""The heating controller's power cap on a real NVIDIA GPU; skipped where NVML sees none.

Where the agent may set the limit (root, or the system service) it caps the card at its
minimum, reads the cap back, and gives the default back; where it may not, the driver's
refusal (NO_PERMISSION, NOT_SUPPORTED) leaves the GPU out of what the agent may cap, and the
heating falls back to the duty cycle. Run with ``tests/device/run_nvml_check.sh``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from heatshare.sensors.nvml import NvmlSensor, NvmlUnavailable

pynvml = pytest.importorskip("pynvml")


@pytest.fixture
def sensor() -> Iterator[NvmlSensor]:
    try:
        s = NvmlSensor(pynvml)
    except NvmlUnavailable as exc:
        pytest.skip(f"needs an NVIDIA GPU: {exc}")
    yield s
    s.close()  # gives back any cap left by a failed test


def test_the_power_cap_is_set_and_given_back_or_refused_cleanly(sensor: NvmlSensor) -> None:
    control = {index: (lo, hi) for index, lo, hi in sensor.power_limit_control()}
    for info in sensor.devices:
        if info.index not in control:
            print(f"GPU {info.index}: the agent may not set its power limit here")
            assert sensor.set_power_limit(info.index, 1e9) is None
            continue
        lo, _hi = control[info.index]
        default = pynvml.nvmlDeviceGetPowerManagementDefaultLimit(
            pynvml.nvmlDeviceGetHandleByIndex(info.index)
        )
        assert sensor.set_power_limit(info.index, 0.0) == lo  # clamped to the minimum
        assert sensor.read()[info.index].power_limit_w == pytest.approx(lo, abs=1.0)
        sensor.restore_power_limit(info.index)
        assert sensor.read()[info.index].power_limit_w == pytest.approx(default / 1000, abs=1.0)
        print(f"GPU {info.index}: capped at {lo:.0f} W, back to {default / 1000:.0f} W")

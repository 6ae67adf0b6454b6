"""``heatshare-agent run`` with sensors a test can break: the real agent process, the host's
real sensors, a GPU replayed by the fake ``pynvml`` (tests/fakes), and faults read from
``<profile>/faults.json`` at every sample:

- ``{"fail": "sentence"}``: every sensor read raises (a sensor that starts failing);
- ``{"stall": true}``: the sampler blocks in its read until the fault is lifted;
- ``{"gpu_temp_c": 95}``: GPU 0 reports this temperature.

The wall time a fault first took effect is written to ``<profile>/fault-began`` (the
tests measure from it). Run as ``python tests/integration/fault_agent.py run --profile-dir
DIR [--listen ...]``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from fakes.fake_pynvml import FakePynvml, load_recording  # noqa: E402
from heatshare.agent import cli  # noqa: E402
from heatshare.domain.readings import Snapshot  # noqa: E402
from heatshare.sensors import HostSensor, NvmlSensor, RaplSensor, SensorSuite  # noqa: E402
from heatshare.sensors import nvml as nv  # noqa: E402


class FaultySensors(SensorSuite):
    """The real suite (with a replayed GPU), and the faults the test writes."""

    def __init__(self, profile: Path, fake: FakePynvml) -> None:
        super().__init__(host=HostSensor(), nvml=NvmlSensor(fake), rapl=RaplSensor())
        self._fake = fake
        self._file = profile / "faults.json"
        self._began = profile / "fault-began"
        self._stamp: float | None = None
        self._faults: dict[str, Any] = {}
        self._active = False

    def _read_faults(self) -> dict[str, Any]:
        try:
            stamp = self._file.stat().st_mtime_ns
        except FileNotFoundError:
            self._stamp, self._faults = None, {}
            return {}
        if stamp != self._stamp:
            self._stamp = stamp
            # The tests write it whole (a rename), so a read never sees half of it.
            self._faults = json.loads(self._file.read_text() or "{}")
        return self._faults

    def _took_effect(self, on: bool) -> None:
        if on and not self._active:
            tmp = self._began.with_name("fault-began.tmp")
            tmp.write_text(repr(time.time()))
            tmp.replace(self._began)
        self._active = on

    def read(self) -> Snapshot:
        faults = self._read_faults()
        while faults.get("stall"):
            self._took_effect(True)
            time.sleep(0.05)
            faults = self._read_faults()
        temp = faults.get("gpu_temp_c")
        if temp is not None:
            self._fake.override(0, nv.TEMP.key, int(temp))
        else:
            self._fake.clear_override(0, nv.TEMP.key)
        if faults.get("fail"):
            self._took_effect(True)
            raise OSError(faults["fail"])
        snap = super().read()
        self._took_effect(temp is not None)
        return snap


def main(argv: list[str]) -> int:
    parser = cli.build_parser()
    args = parser.parse_args(argv)
    if args.command != "run":
        return cli.main(argv)
    profile = Path(args.profile_dir)
    profile.mkdir(parents=True, exist_ok=True)
    sensors = FaultySensors(profile, FakePynvml(load_recording()))
    return cli.run_agent(args, sensors=sensors)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

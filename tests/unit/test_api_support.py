"""What the API tests share: an agent service on a real temp store, served in-process.

The sensors are the one fake (the seam is ``SensorSuite.read``): they replay readings of a
machine with one GPU, advancing both clocks by one second per read, so the tests drive the
service tick by tick. Everything behind the seam is real: accountant, store, service, HTTP.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from heatshare.agent.api import ApiServer
from heatshare.agent.service import AgentService
from heatshare.domain.heat import EstimateModel, HeatAccountant
from heatshare.domain.readings import GpuReading, HostReading, Snapshot
from heatshare.store import Store

T0 = 1_800_000_000.0  # a whole hour, UTC
TOKEN = "test-token-0123456789"


@dataclass
class FakeSensors:
    """Replays one machine: a CPU at ``cpu_pct`` and, unless ``gpu`` is False, an RTX card."""

    wall: float = T0
    mono: float = 5_000.0
    cpu_pct: float = 10.0
    gpu_util_pct: float = 5.0
    gpu: bool = True
    closed: bool = False
    reads: int = 0
    fail: Exception | None = None

    def read(self) -> Snapshot:
        if self.fail is not None:
            raise self.fail
        self.reads += 1
        self.mono += 1.0
        self.wall += 1.0
        host = HostReading(
            cpu_pct=self.cpu_pct,
            per_core_pct=(self.cpu_pct, self.cpu_pct),
            mem_used_bytes=4 * 2**30,
            mem_total_bytes=16 * 2**30,
            mem_pct=25.0,
            cpu_temp_c=48.0,
            cpu_freq_mhz=3400.0,
            logical_cpus=2,
        )
        gpus = ()
        if self.gpu:
            # Energy counter advancing 180 J per second: 180 W measured.
            gpus = (
                GpuReading(
                    index=0,
                    name="NVIDIA GeForce RTX 3080",
                    uuid="GPU-0000",
                    power_w=180.0,
                    energy_mj=int(1_000_000 + self.reads * 180_000),
                    temp_c=66.0,
                    fan_pct=41.0,
                    util_gpu_pct=self.gpu_util_pct,
                    util_mem_pct=3.0,
                    clock_sm_mhz=1905.0,
                    clock_mem_mhz=9501.0,
                    mem_used_bytes=2 * 2**30,
                    mem_total_bytes=10 * 2**30,
                    power_limit_w=320.0,
                    power_limit_min_w=100.0,
                    power_limit_max_w=370.0,
                    temp_slowdown_c=93.0,
                    temp_shutdown_c=98.0,
                ),
            )
        return Snapshot(mono_s=self.mono, wall_ts=self.wall, host=host, gpus=gpus)

    def describe(self) -> list[str]:
        return ["fake sensors"]

    def close(self) -> None:
        self.closed = True


def make_service(db: Path, sensors: FakeSensors) -> AgentService:
    return AgentService(
        Store.open(db, now=sensors.wall),
        sensors,  # type: ignore[arg-type]  # the fake stands in for SensorSuite
        HeatAccountant(estimate=EstimateModel(cpu_idle_w=10.0, cpu_max_w=65.0)),
        wall_clock=lambda: sensors.wall,
        utc_offset=lambda ts: 0,
        hostname="testhost",
    )


@dataclass
class Agent:
    """A service and its API on a free loopback port, plus a few request helpers."""

    service: AgentService
    api: ApiServer
    sensors: FakeSensors
    db: Path
    shutdown: threading.Event = field(default_factory=threading.Event)
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.service.tick()

    def request(
        self, method: str, path: str, *, token: str | None = TOKEN, **kw: Any
    ) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return self.session.request(method, self.url + path, headers=headers, timeout=5, **kw)

    def close(self) -> None:
        self.session.close()
        self.api.stop()
        self.service.stop()


def start_agent(tmp_path: Path, sensors: FakeSensors | None = None) -> Agent:
    sensors = sensors or FakeSensors()
    db = tmp_path / "history.sqlite3"
    service = make_service(db, sensors)
    shutdown = threading.Event()
    api = ApiServer(service, TOKEN, host="127.0.0.1", port=0, on_shutdown=shutdown.set)
    api.start()
    agent = Agent(service, api, sensors, db, shutdown)
    agent.session.trust_env = False
    return agent


def error_of(resp: requests.Response) -> str:
    """The ``error`` sentence of an error response, checked for shape on the way."""
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error", "detail"}
    message = body["error"]
    assert isinstance(message, str)
    assert message[:1].isupper()
    assert message.endswith((".", "?"))
    assert "Traceback" not in resp.text
    return message

"""A fake agent at one seam: the client the bridge calls, replaying the agent's protocol models.

Everything above it is real: the bridge, its worker threads, the pages, the wizard. The
answers are the local API's own pydantic models, shaped as the demo network gives them; the
PNGs are real tiles from the demo's fractal job (``resources/jobs/fractal/render.py``).
The errors are ``AgentError``/``AgentUnreachable`` with the sentences the coordinator API
agreed on (see docs/architecture.md and the preamble of issue 3).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from fake_energy import EnergyFake

from heatshare.protocol.client import AgentClient, AgentError, AgentUnreachable
from heatshare.protocol.heating import (
    Actuation,
    HeatingSettings,
    HeatingStatus,
    HeatingSummary,
    HeatMode,
    HomeAssistantSource,
    RoomProbeRequest,
    RoomProbeResponse,
    RoomSourceKind,
    SafetyEvent,
    SafetyRule,
    SensorEntity,
    SetpointRequest,
)
from heatshare.protocol.local_api import (
    AgentStatus,
    EarningEntry,
    EarningsResponse,
    HistoryResponse,
    JobInfo,
    JobPhase,
    JobsResponse,
    NetworkStatus,
    Settings,
)

RENDER = (
    Path(__file__).parents[2] / "app" / "heatshare" / "resources" / "jobs" / "fractal" / "render.py"
)

# What the agent says when the coordinator refuses or cannot be reached (issue 3's design:
# 404 unknown code, 410 expired; the agent passes the sentence on with a 4xx of its own).
WRONG_CODE = AgentError(
    400, "This pairing code is not known to the network. Check it, or ask for a new one."
)
EXPIRED_CODE = AgentError(
    400, "This pairing code has expired. Ask the network's operator for a new one."
)
UNREACHABLE = AgentError(
    502,
    "The network at https://heat.example.org did not answer: connection refused. "
    "Check the address and this machine's internet connection.",
)
UNTRUSTED = AgentError(
    502,
    "The network at https://heat.example.org presented a certificate this machine does "
    "not trust (self-signed certificate). Check the address with the network's operator.",
)


@cache
def fractal_tile(tile: int, size: int = 96, max_iter: int = 100) -> bytes:
    """A real tile from the demo's job, rendered by the job itself (few iterations: quick)."""
    with tempfile.TemporaryDirectory() as tmp:
        out, ck = Path(tmp, "out"), Path(tmp, "ck")
        out.mkdir()
        ck.mkdir()
        env = {
            **os.environ,
            "HEATSHARE_OUTPUT": str(out),
            "HEATSHARE_CHECKPOINT": str(ck),
            "HEATSHARE_PROGRESS": str(Path(tmp, "progress")),
        }
        subprocess.run(
            [
                sys.executable,
                str(RENDER),
                "--tile",
                str(tile),
                "--size",
                str(size),
                "--max-iter",
                str(max_iter),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        return (out / "tile.png").read_bytes()


def agent_status(**kw: Any) -> AgentStatus:
    base: dict[str, Any] = {
        "protocol_version": 1,
        "agent_version": "0.1.0",
        "hostname": "study-pc",
        "state": "heating",
        "sample_time": datetime.now(UTC),
        "heat_w": 182.0,
        "heat_provenance": "energy_counter",
        "heat_today_kwh": 0.42,
        "currency": "GBP",
        "hottest_name": "cpu",
        "hottest_c": 64.0,
        "job_label": "fractal #14: frame 0, tile 15 of 16",
        "job_progress": 0.42,
        "earned_today_minor": 550,
        "earnings_currency": "CRD",
        "heating": heating_summary(demo_heating(datetime.now(UTC))),
    }
    return AgentStatus.model_validate(base | kw)


# -- heating (issue 4's agreed API: /v1/heating…) ------------------------------------------------

HA_URL = "http://homeassistant.local:8123"
STORED_TOKEN = "eyJhbGciOiJIUzI1NiJ9.stored"  # the agent keeps it; it never comes back
HA_ENTITIES = [
    SensorEntity(
        entity_id="sensor.study_temperature", name="Study temperature", state="20.4", unit="°C"
    ),
    SensorEntity(
        entity_id="sensor.living_room_temperature",
        name="Living room temperature",
        state="21.2",
        unit="°C",
    ),
    SensorEntity(
        entity_id="sensor.outdoor_temperature", name="Outdoor temperature", state="6.1", unit="°C"
    ),
    SensorEntity(entity_id="weather.forecast_home", name="Forecast Home", state="cloudy"),
]
# What the agent says when Home Assistant refuses a token (a probe answers ok=false, not a 4xx).
HA_REFUSED = (
    "Home Assistant at http://homeassistant.local:8123 refused the token (401 Unauthorized). "
    "Create a long-lived access token in your Home Assistant profile and paste it here."
)
# The agent's own sentence (agent/heating_control.py) for a source without a token.
HA_NO_TOKEN = (
    "The heating settings were not accepted: the Home Assistant room source "
    "needs a long-lived access token."
)
HA_UNREACHABLE = (  # as the agent says it (sensors/room.py)
    "Home Assistant at http://homeassistant.local:8123 cannot be reached (connection "
    "refused); check the address and that Home Assistant is running."
)


def demo_heating_settings(**kw: Any) -> HeatingSettings:
    base: dict[str, Any] = {
        "mode": HeatMode.HEAT_FIRST,
        "comfort_c": 21.0,
        "eco_c": 17.5,
        "room_source": RoomSourceKind.HOME_ASSISTANT,
        "home_assistant": HomeAssistantSource(
            url=HA_URL,
            entity_id="sensor.study_temperature",
            outdoor_entity_id="sensor.outdoor_temperature",
        ),
    }
    return HeatingSettings.model_validate(base | kw)


def gpu_hot_event(now: datetime) -> SafetyEvent:
    return SafetyEvent(
        rule=SafetyRule.GPU_HOT,
        message="GPU 0 is at 81 °C, above its 80 °C limit: computing stops unless it cools.",
        since=now - timedelta(seconds=3),
        stops_at=now + timedelta(seconds=7),
    )


def window_open_event(now: datetime) -> SafetyEvent:
    return SafetyEvent(
        rule=SafetyRule.OPEN_WINDOW,
        message="The room cooled by 1.4 °C in 5 minutes: a window is open, so heating "
        "pauses for 30 minutes.",
        since=now - timedelta(minutes=4),
        resumes_at=now + timedelta(minutes=26),
    )


def demo_heating(now: datetime, **kw: Any) -> HeatingStatus:
    base: dict[str, Any] = {
        "mode": HeatMode.HEAT_FIRST,
        "room_source": RoomSourceKind.HOME_ASSISTANT,
        "room_c": 20.4,
        "room_at": now - timedelta(seconds=12),
        "outdoor_c": 6.1,
        "setpoint_c": 21.0,
        "setpoint_source": "comfort",
        "next_change_at": now.replace(hour=22, minute=30, second=0, microsecond=0),
        "demand_pct": 64.0,
        "actuation": Actuation.POWER_CAP,
        "gpu_power_limit_w": 180.0,
        "computing": True,
        "reason": "Heating: the room is 0.6 °C below its 21.0 °C target.",
        "home_assistant": "connected",
    }
    return HeatingStatus.model_validate(base | kw)


def heating_summary(h: HeatingStatus) -> HeatingSummary:
    return HeatingSummary(
        mode=h.mode,
        boost_until=h.boost_until,
        room_c=h.room_c,
        setpoint_c=h.setpoint_c,
        computing=h.computing,
        reason=h.reason,
        safety_stop=h.safety_stop,
    )


def _without_secrets(settings: HeatingSettings) -> HeatingSettings:
    """As the agent answers: a stored token or password never comes back."""
    update: dict[str, Any] = {}
    if settings.home_assistant is not None:
        update["home_assistant"] = settings.home_assistant.model_copy(update={"token": None})
    if settings.mqtt is not None:
        update["mqtt"] = settings.mqtt.model_copy(update={"password": None})
    return settings.model_copy(update=update)


def demo_network(now: datetime, **kw: Any) -> NetworkStatus:
    base: dict[str, Any] = {
        "enrolled": True,
        "coordinator_url": "http://127.0.0.1:41873",
        "node_id": 1,
        "account_name": "demo",
        "currency": "CRD",
        "demo": True,
        "reachable": True,
        "last_contact": now - timedelta(seconds=4),
        "sandbox": "bubblewrap",
        "accepting_jobs": True,
        "outbox_pending": 0,
        "balance_minor": None,  # the network's figures come with the earnings
        "account_balance_minor": None,
    }
    return NetworkStatus.model_validate(base | kw)


def job(attempt: int, tile: int, phase: JobPhase, now: datetime, **kw: Any) -> JobInfo:
    finished = phase in (JobPhase.DONE, JobPhase.FAILED, JobPhase.OUTBOX)
    leased = now - timedelta(minutes=3 * (20 - attempt))
    base: dict[str, Any] = {
        "attempt_id": attempt,
        "job_id": attempt + 100,
        "label": f"fractal #{attempt - 1}: frame 0, tile {tile + 1} of 16",
        "phase": phase,
        "leased_at": leased,
        "started_at": leased + timedelta(seconds=1),
        "finished_at": leased + timedelta(seconds=38) if finished else None,
        "elapsed_s": 37.0 if finished else 12.5,
        "energy_j": 6_740.0 if finished else 2_275.0,
        "price_minor": 50,
        "currency": "CRD",
        "progress": 1.0 if finished else 0.42,
        "progress_message": "" if finished else "rows 104 of 256",
        "credited_minor": 50 if phase is JobPhase.DONE else None,
        "result_status": "accepted" if phase is JobPhase.DONE else None,
        "files": ["tile.json", "tile.png"] if finished and phase is not JobPhase.FAILED else [],
    }
    return JobInfo.model_validate(base | kw)


def demo_jobs(now: datetime) -> JobsResponse:
    history = [job(a, a - 1, JobPhase.DONE, now) for a in range(13, 6, -1)]
    history.insert(
        2,
        job(
            6,
            3,
            JobPhase.FAILED,
            now,
            label="matrix #5: 700x700 product, seed 6",
            error="Stopped: the job went over its memory limit (512 MiB).",
            energy_j=1_204.0,
            elapsed_s=9.2,
        ),
    )
    history.insert(0, job(14, 13, JobPhase.OUTBOX, now))
    return JobsResponse(current=[job(15, 14, JobPhase.RUNNING, now)], history=history)


def demo_earnings(now: datetime) -> EarningsResponse:
    entries = [
        EarningEntry(
            at=now - timedelta(minutes=7 * i + 2),
            amount_minor=50,
            kind="credit",
            job_id=113 - i,
            memo=f"Job {113 - i} (fractal #{12 - i}: frame 0, tile {13 - i} of 16): "
            "result accepted",
        )
        for i in range(7)
    ]
    entries += [
        EarningEntry(
            at=now - timedelta(hours=2, minutes=10 + 6 * i),
            amount_minor=40,
            kind="credit",
            job_id=90 + i,
            memo=f"Job {90 + i} (matrix #{i}: 700x700 product, seed {i + 1}): result accepted",
        )
        for i in range(5)
    ]
    entries.append(
        EarningEntry(
            at=now - timedelta(hours=1, minutes=30),
            amount_minor=-300,
            kind="payout",
            memo="Paid out",
        )
    )
    total = sum(e.amount_minor for e in entries)
    return EarningsResponse(
        currency="CRD",
        balance_minor=total,
        account_balance_minor=total,
        today_minor=sum(e.amount_minor for e in entries if e.kind == "credit"),
        entries=entries,
        as_of=now - timedelta(seconds=4),
    )


class FakeAgentClient(EnergyFake, AgentClient):
    """Answers as the agent would; a test sets what comes next and reads what was asked.

    Calls arrive on the bridge's worker threads; the record of them is guarded by a lock.
    """

    def __init__(self, now: datetime | None = None) -> None:
        super().__init__("http://127.0.0.1:1", None)
        self.now = now or datetime.now(UTC)
        self.status_model = agent_status()
        self.network_model = NetworkStatus(enrolled=False, sandbox="bubblewrap")
        self.jobs_model = demo_jobs(self.now)
        self.earnings_model = demo_earnings(self.now)
        self.enrol_outcome: BaseException | NetworkStatus = demo_network(self.now, demo=False)
        self.demo_outcome: BaseException | NetworkStatus = demo_network(self.now)
        self.enrol_gate: threading.Event | None = None  # set: enrol waits for it (busy state)
        self.heating_model = demo_heating(self.now)
        # Stored as the agent stores them, secrets included; answered without them.
        self.heating_settings_model = demo_heating_settings(
            home_assistant=HomeAssistantSource(
                url=HA_URL,
                token=STORED_TOKEN,
                entity_id="sensor.study_temperature",
                outdoor_entity_id="sensor.outdoor_temperature",
            )
        )
        self.heating_error: BaseException | None = None  # set: GET /v1/heating fails so
        self.settings_error: BaseException | None = None  # set: PUT …/settings fails so
        self.probe_outcome: BaseException | RoomProbeResponse | None = None  # None: as below
        self.probe_gate: threading.Event | None = None  # set: a probe waits for it (busy)
        self.history_model: HistoryResponse | None = None  # None: no history stored
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self._init_energy()  # the energy routes (fake_energy.py)

    def _record(self, name: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((name, args))

    def called(self, name: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return [args for n, args in self.calls if n == name]

    def status(self) -> AgentStatus:
        self._record("status")
        return self.status_model

    def settings(self) -> Settings:
        self._record("settings")
        return Settings(currency="GBP")

    def history(
        self, series: Sequence[str], start: float, end: float, *, max_points: int | None = None
    ) -> HistoryResponse:
        self._record("history")
        if self.history_model is not None:
            wanted = [d for d in self.history_model.series if d.name in series]
            return self.history_model.model_copy(
                update={"start": start, "end": end, "series": wanted}
            )
        return HistoryResponse(start=start, end=end, resolution_s=1, series=[])

    def network(self) -> NetworkStatus:
        self._record("network")
        return self.network_model

    def _outcome(self, outcome: BaseException | NetworkStatus) -> NetworkStatus:
        if self.enrol_gate is not None:
            self.enrol_gate.wait(10)
        if isinstance(outcome, BaseException):
            raise outcome
        self.network_model = outcome
        return outcome

    def enrol(self, url: str, code: str) -> NetworkStatus:
        self._record("enrol", url, code)
        return self._outcome(self.enrol_outcome)

    def start_demo(self) -> NetworkStatus:
        self._record("start_demo")
        return self._outcome(self.demo_outcome)

    def leave_network(self) -> NetworkStatus:
        self._record("leave_network")
        self.network_model = NetworkStatus(enrolled=False, sandbox="bubblewrap")
        return self.network_model

    def jobs(self, limit: int = 50) -> JobsResponse:
        self._record("jobs")
        return self.jobs_model

    def job_log(self, attempt_id: int) -> str:
        self._record("job_log", attempt_id)
        return (
            f"fractal: frame 0 tile {attempt_id - 1}/16, 256x256 px, 0 rows from a checkpoint\n"
            "rows 0-7 done\nrows 8-15 done\n"
        )

    def job_file(self, attempt_id: int, name: str) -> bytes:
        self._record("job_file", attempt_id, name)
        if name.endswith(".png"):
            # The top row's tiles: quick to render (the set's inside costs every iteration).
            return fractal_tile(attempt_id % 4)
        raise AgentError(404, f"This job has no output file named {name!r}.")

    def earnings(self) -> EarningsResponse:
        self._record("earnings")
        return self.earnings_model

    # -- heating ---------------------------------------------------------------------------

    def _heating_changed(self, **update: Any) -> HeatingStatus:
        self.heating_model = self.heating_model.model_copy(update=update)
        self.status_model = self.status_model.model_copy(
            update={"heating": heating_summary(self.heating_model)}
        )
        return self.heating_model

    def heating(self) -> HeatingStatus:
        self._record("heating")
        if self.heating_error is not None:
            raise self.heating_error
        return self.heating_model

    def heating_settings(self) -> HeatingSettings:
        self._record("heating_settings")
        return _without_secrets(self.heating_settings_model)

    def put_heating_settings(self, settings: HeatingSettings) -> HeatingSettings:
        self._record("put_heating_settings", settings)
        if self.settings_error is not None:
            raise self.settings_error
        stored = self.heating_settings_model
        update: dict[str, Any] = {}
        ha = settings.home_assistant
        if ha is not None and ha.token is None:
            kept = stored.home_assistant.token if stored.home_assistant is not None else None
            if kept is None and settings.room_source is RoomSourceKind.HOME_ASSISTANT:
                raise AgentError(422, HA_NO_TOKEN)
            update["home_assistant"] = ha.model_copy(update={"token": kept})
        mq = settings.mqtt
        if mq is not None and mq.password is None and stored.mqtt is not None:
            update["mqtt"] = mq.model_copy(update={"password": stored.mqtt.password})
        self.heating_settings_model = settings.model_copy(update=update)
        self._heating_changed(mode=settings.mode, room_source=settings.room_source)
        return _without_secrets(self.heating_settings_model)

    def set_mode(self, mode: HeatMode) -> HeatingStatus:
        self._record("set_mode", mode)
        self.heating_settings_model = self.heating_settings_model.model_copy(update={"mode": mode})
        reasons = {
            HeatMode.HEAT_FIRST: "Heating: the room is 0.6 °C below its 21.0 °C target.",
            HeatMode.EARN_FIRST: "Earn first: computing while there is work, within the limits.",
            HeatMode.QUIET: "Quiet: heating under a 50 % power cap.",
            HeatMode.OFF: "Off: Heatshare computes nothing.",
        }
        return self._heating_changed(
            mode=mode, reason=reasons[mode], computing=mode is not HeatMode.OFF
        )

    def boost(self, minutes: int = 60) -> HeatingStatus:
        self._record("boost", minutes)
        until = datetime.now(UTC) + timedelta(minutes=minutes) if minutes else None
        reason = (
            f"Boost: full heat until {until.astimezone():%H:%M}, within the limits."
            if until
            else self.heating_model.reason
        )
        return self._heating_changed(boost_until=until, reason=reason)

    def setpoint(self, request: SetpointRequest) -> HeatingStatus:
        self._record("setpoint", request)
        h = self.heating_model
        if request.clear:
            return self._heating_changed(
                setpoint_c=self.heating_settings_model.comfort_c,
                setpoint_source="comfort",
                override_until=None,
            )
        target = request.setpoint_c
        if request.delta_c is not None:
            target = (h.setpoint_c or self.heating_settings_model.comfort_c) + request.delta_c
        if target is None or not 5.0 <= target <= 30.0:
            raise AgentError(422, "A room can be asked for 5 °C to 30 °C.")
        return self._heating_changed(
            setpoint_c=round(target, 2),
            setpoint_source="override",
            override_until=h.next_change_at,
        )

    def room_probe(self, request: RoomProbeRequest) -> RoomProbeResponse:
        self._record("room_probe", request)
        if self.probe_gate is not None:
            self.probe_gate.wait(10)
        if isinstance(self.probe_outcome, BaseException):
            raise self.probe_outcome
        if self.probe_outcome is not None:
            return self.probe_outcome
        if request.room_source is RoomSourceKind.HOME_ASSISTANT:
            ha = request.home_assistant
            stored = self.heating_settings_model.home_assistant
            if ha is None:
                raise AgentError(422, "Give the Home Assistant address and token to test.")
            if ha.token is None and stored is None:
                return RoomProbeResponse(ok=False, error=HA_REFUSED)
            if ha.entity_id is None:
                return RoomProbeResponse(ok=True, entities=HA_ENTITIES)
            found = next((e for e in HA_ENTITIES if e.entity_id == ha.entity_id), None)
            if found is None:
                return RoomProbeResponse(
                    ok=False,
                    error=f"Home Assistant has no sensor {ha.entity_id}.",
                    entities=HA_ENTITIES,
                )
            return RoomProbeResponse(
                ok=True, room_c=float(found.state), outdoor_c=6.1, entities=HA_ENTITIES
            )
        if request.room_source is RoomSourceKind.MQTT:
            return RoomProbeResponse(ok=True, room_c=20.6)
        raise AgentError(422, "There is nothing to test without a room thermometer.")


__all__ = ["UNREACHABLE", "AgentUnreachable", "FakeAgentClient"]

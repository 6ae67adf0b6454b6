"""The agent's heating thread: the thermostat and the safety limits, carried out.

:class:`HeatingControl` owns the :class:`~heatshare.agent.heating.HeatingLoop` and runs it on
its own named thread (``heating``) at 4 Hz, apart from the 1 s sampler: a sampler that stalls
is seen by this thread (the sample grows old) and stops the computing within 2 s. Each step
builds the safety inputs from the latest sample (its age, its error, the GPUs, the CPU's
temperature, the heat output), the presence readings (battery, exclusive programs and games:
read every few seconds on the ``presence`` thread, not every step) and the room source, and
applies the decision at once:

- no computing: no new leases; a running job frozen in place (``freeze``: a safety stop, a
  duty cycle's off time) or stopped at its checkpoint the way a pause stops it (``stop``);
- the GPUs' power limits set or given back; CPU jobs limited to fewer cores.

The householder's pause still wins: the job engine stops jobs while paused whatever the
thermostat says. Safety events that begin are logged at WARNING by ``heatshare.agent.heating``.

Persisted in the agent's SQLite state: the heating settings (a damaged value falls back to its
default field by field, with a warning) and the runtime state (an override, a boost), so a
restart keeps them. The Home Assistant token and the MQTT password are never given back by
:meth:`HeatingControl.settings`; a settings change without one keeps the stored one.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from heatshare.agent.heating import Capability, HeatingDecision, HeatingInputs, HeatingLoop
from heatshare.agent.sampler import Sampler
from heatshare.agent.stored import load_stored
from heatshare.domain.readings import Snapshot
from heatshare.domain.safety import GpuFacts, SafetyInputs
from heatshare.domain.thermostat import RoomReading, TariffSlot
from heatshare.protocol.energy import PlanSlot, PriceAwareSettings
from heatshare.protocol.heating import (
    BoostRequest,
    HeatingSettings,
    HeatingStatus,
    HeatingSummary,
    HeatMode,
    ModeRequest,
    RoomProbeRequest,
    RoomProbeResponse,
    RoomSourceKind,
    SetpointRequest,
)

if typing.TYPE_CHECKING:
    from heatshare.agent.home_assistant import HaBridge, HaState
    from heatshare.sensors.room import RoomSource

log = logging.getLogger("heatshare.agent.heating")

SETTINGS_KEY = "agent.heating.settings"
RUNTIME_KEY = "agent.heating.runtime"
NODE_KEY_KEY = "agent.heating.node_key"
STEP_PERIOD_S = 0.25  # 4 Hz: a stalled sampler (1.5 s) is seen and stopped within 2 s
PRESENCE_PERIOD_S = 3.0
PUBLISH_EVERY_S = 5.0  # the state to Home Assistant, and at once on a change
DUST_EVERY_S = 3600.0  # the dust reminder looks at weeks of hourly history: once an hour
ROOM_PROBE_TIMEOUT_S = 8.0


class HeatingRequestError(Exception):
    """A heating request the agent will not carry out; ``str(exc)`` is a sentence."""

    def __init__(self, message: str, *, status: int = 422, detail: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.detail = detail or []


@dataclass(frozen=True)
class SampleFacts:
    """What the heating thread reads of the sampler's latest work (no I/O)."""

    snap: Snapshot | None
    heat_w: float | None
    sample_mono: float | None  # the heating thread's monotonic clock, at the last good sample
    sample_error: str | None
    heat_today_kwh: float | None = None


class JobHold(Protocol):
    """The job engine as the heating thread drives it (``work.NetworkWorker``)."""

    def hold(self, *, compute: bool, hold: str, cpu_cores: int | None) -> None: ...
    def job_running(self) -> bool: ...
    def job_frozen(self) -> bool: ...
    def checkpoint_eta_s(self) -> float | None: ...


class PriceFeed(Protocol):
    """The tariff's prices and the work's earnings, as the energy control gives them."""

    def heating_prices(self, wall: float) -> tuple[TariffSlot, ...]: ...
    def earnings_per_kwh(self) -> Decimal | None: ...


class PowerControl(Protocol):
    """The GPUs' power limits (``sensors.SensorSuite``)."""

    def gpu_power_limit_control(self) -> tuple[tuple[int, float, float], ...]: ...
    def set_gpu_power_limits(self, limits: dict[int, float]) -> dict[int, float]: ...


@dataclass(frozen=True)
class Presence:
    """What the presence thread last found."""

    on_battery: bool | None = None
    exclusive: tuple[str, ...] = ()


class PresenceReader(Protocol):
    def __call__(self, settings: HeatingSettings) -> Presence: ...


def read_presence(nvml: Any | None) -> PresenceReader:
    """The real presence reader: psutil's battery and processes, and games on the GPUs."""
    from heatshare.sensors import presence

    def read(settings: HeatingSettings) -> Presence:
        limits = settings.limits
        found = list(presence.running_exclusive(limits.exclusive_apps))
        if limits.exclusive_games and nvml is not None:
            found += presence.running_games(nvml)
        return Presence(on_battery=presence.on_battery(), exclusive=tuple(dict.fromkeys(found)))

    return read


def local_zone() -> tzinfo:
    """The household's time zone with its clock changes (not a fixed offset)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.info("TZ=%s is not a known time zone; using the system's", name)
    localtime = Path("/etc/localtime")
    try:
        target = os.path.realpath(localtime)
        if "zoneinfo/" in target:
            return ZoneInfo(target.split("zoneinfo/", 1)[1])
        with localtime.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    # Windows and other systems without the tz database files: today's offset, which misses
    # a clock change until the agent restarts.
    local = time.localtime()
    from datetime import timedelta, timezone

    return timezone(timedelta(seconds=local.tm_gmtoff), local.tm_zone)


# --- settings: stored, salvaged, secrets kept ------------------------------------------------


def public(settings: HeatingSettings) -> HeatingSettings:
    """The settings as the API shows them: the token and the password left out."""
    update: dict[str, Any] = {}
    if settings.home_assistant is not None and settings.home_assistant.token is not None:
        update["home_assistant"] = settings.home_assistant.model_copy(update={"token": None})
    if settings.mqtt is not None and settings.mqtt.password is not None:
        update["mqtt"] = settings.mqtt.model_copy(update={"password": None})
    return settings.model_copy(update=update) if update else settings


def with_stored_secrets(new: HeatingSettings, stored: HeatingSettings) -> HeatingSettings:
    """``new`` with the stored token and password where it leaves them out (None).

    Only for the same server (and user): a stored secret is never handed to a new address.
    """
    update: dict[str, Any] = {}
    ha, old_ha = new.home_assistant, stored.home_assistant
    if (
        ha is not None
        and ha.token is None
        and old_ha is not None
        and old_ha.token is not None
        and old_ha.url.rstrip("/") == ha.url.rstrip("/")
    ):
        update["home_assistant"] = ha.model_copy(update={"token": old_ha.token})
    mq, old_mq = new.mqtt, stored.mqtt
    if (
        mq is not None
        and mq.password is None
        and old_mq is not None
        and old_mq.password
        and (old_mq.host, old_mq.port, old_mq.username) == (mq.host, mq.port, mq.username)
    ):
        update["mqtt"] = mq.model_copy(update={"password": old_mq.password})
    return new.model_copy(update=update) if update else new


def _room_config(s: HeatingSettings) -> tuple[Any, ...]:
    return (s.room_source, s.home_assistant, s.mqtt)


def _bridge_config(s: HeatingSettings) -> Any:
    return s.mqtt if s.mqtt is not None and s.mqtt.ha_discovery else None


class StateStore(Protocol):
    def get_state(self, key: str) -> str | None: ...
    def set_state(self, key: str, value: str) -> None: ...


# --- the control ------------------------------------------------------------------------------


class HeatingControl:
    """See the module's description.

    Args:
        store: where the settings and the runtime state are kept (``Store.get/set_state``).
        facts: the sampler's latest work, read each step (no I/O).
        power: the GPUs' power limits; None where there are none to set.
        presence: reads the battery and the exclusive programs (every few seconds).
        hostname: the heater's name in Home Assistant.
        wall: UTC clock; mono: the monotonic clock ``facts().sample_mono`` is on.
        tz: the household's time zone.
        room_factory: opens the room source the settings name (None for none).
        bridge_factory: makes the Home Assistant bridge for a broker.
        probe: tries a room source.
        advice: sentences of advice from the history (the dust reminder), asked hourly.
        real_sources: the real room sources, bridge and probe where none is given.
    """

    def __init__(
        self,
        store: StateStore,
        *,
        facts: Callable[[], SampleFacts],
        power: PowerControl | None = None,
        presence: PresenceReader | None = None,
        hostname: str = "heatshare",
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        tz: tzinfo | None = None,
        room_factory: Callable[[HeatingSettings], RoomSource | None] | None = None,
        bridge_factory: Callable[..., HaBridge] | None = None,
        probe: Callable[[RoomProbeRequest, HeatingSettings, float], RoomProbeResponse]
        | None = None,
        real_sources: bool = True,
        period_s: float = STEP_PERIOD_S,
        presence_period_s: float = PRESENCE_PERIOD_S,
        advice: Callable[[], list[str]] | None = None,
    ) -> None:
        self._store = store
        self._facts = facts
        self._power = power
        self._presence_reader = presence
        self._hostname = hostname
        self._wall = wall
        self._mono = mono
        if real_sources:
            from heatshare.agent.home_assistant import HaBridge
            from heatshare.sensors import room as room_sensors

            room_factory = room_factory or room_sensors.open_room_source
            bridge_factory = bridge_factory or HaBridge
            probe = probe or room_sensors.probe
        self._room_factory = room_factory
        self._bridge_factory = bridge_factory
        self._probe = probe
        self._period_s = period_s
        self._presence_period_s = presence_period_s
        self._advice = advice
        self._alerts: list[str] = []
        self._advised_at = float("-inf")
        self._lock = threading.RLock()  # the loop is not thread-safe: every call under it
        self._write = threading.Lock()  # one settings writer at a time
        self.load_warnings: list[str] = []
        self._settings = self._load_settings()
        self._loop = HeatingLoop(
            self._settings,
            tz=tz if tz is not None else local_zone(),
            capability=Capability(gpu_power_limits=(), cores=os.cpu_count() or 1),
        )
        self._restore_runtime()
        self._network: JobHold | None = None
        self._prices: PriceFeed | None = None
        self._presence = Presence()
        self._room: RoomSource | None = None
        self._bridge: HaBridge | None = None
        self._last: HeatingDecision | None = None
        self._stepped = False
        self._caps: dict[int, float] = {}
        self._capability_known = False
        self._published_at = float("-inf")
        self._checked_at = float("-inf")
        self._published: HaState | None = None
        self._samplers: list[tuple[Sampler, threading.Thread]] = []
        self._started = False

    # -- life --------------------------------------------------------------------------------

    def attach_network(self, network: JobHold) -> None:
        self._network = network

    def attach_prices(self, prices: PriceFeed) -> None:
        """Where each step reads the tariff's prices and the earnings per kWh."""
        self._prices = prices

    def configure_prices(self, settings: PriceAwareSettings, currency: str | None = None) -> None:
        """Price-aware heating's settings (from the energy settings), and the tariff's currency."""
        with self._lock:
            self._loop.configure_prices(settings, currency)

    def plan(self, wall: float, hours: float = 24.0) -> list[PlanSlot]:
        """The plan for the hours ahead, for the chart (over the prices of the last step)."""
        with self._lock:
            return self._loop.plan(wall, hours)

    def start(self) -> None:
        """Open the room source and the bridge; start the ``heating`` and ``presence`` threads."""
        self._started = True
        self._apply_sources(None, self.settings_stored())
        steps = Sampler(self.step, period_s=self._period_s, name="heating")
        self._samplers.append((steps, steps.start()))
        if self._presence_reader is not None:
            looks = Sampler(self._look_around, period_s=self._presence_period_s, name="presence")
            self._samplers.append((looks, looks.start()))

    def stop(self) -> None:
        """Stop the threads, the room source and the bridge; give the GPUs their limits back."""
        for sampler, _ in self._samplers:
            sampler.stop()
        for _, thread in self._samplers:
            thread.join(timeout=3.0)
        self._samplers = []
        with self._lock:
            room, self._room = self._room, None
            bridge, self._bridge = self._bridge, None
        if room is not None:
            room.stop()
        if bridge is not None:
            bridge.stop()
        if self._power is not None and self._caps:
            try:
                self._power.set_gpu_power_limits({})
            except Exception:
                log.exception("The GPUs' power limits could not be given back")
            self._caps = {}

    # -- the step (the heating thread) --------------------------------------------------------

    def step(self) -> None:
        """One step: see, decide, act. A failure holds the jobs frozen (fails closed)."""
        try:
            decision = self._step()
        except Exception:
            network = self._network
            if network is not None:
                network.hold(compute=False, hold="freeze", cpu_cores=None)
            raise  # the sampler logs it
        self._act(decision)

    def _step(self) -> HeatingDecision:
        if not self._capability_known and self._power is not None:
            self._capability_known = True
            control = self._power.gpu_power_limit_control()
            with self._lock:
                self._loop.set_capability(
                    Capability(gpu_power_limits=control, cores=os.cpu_count() or 1)
                )
        facts = self._facts()
        wall, mono = self._wall(), self._mono()
        network = self._network
        running = network.job_running() if network is not None else False
        frozen = network.job_frozen() if network is not None else False
        eta = network.checkpoint_eta_s() if network is not None and running else None
        room_sample = self._room.latest() if self._room is not None else None
        room: RoomReading | None = None
        problem: str | None = None
        outdoor: float | None = None
        if room_sample is not None:
            if room_sample.temp_c is not None and room_sample.wall is not None:
                room = RoomReading(temp_c=room_sample.temp_c, wall=room_sample.wall)
            problem, outdoor = room_sample.error, room_sample.outdoor_c
        snap = facts.snap
        gpus: tuple[GpuFacts, ...] = ()
        if snap is not None:
            gpus = tuple(
                GpuFacts(
                    index=g.index,
                    temp_c=g.temp_c,
                    fan_pct=g.fan_pct,
                    power_w=g.power_w,
                    slowdown_c=g.temp_slowdown_c,
                    util_pct=g.util_gpu_pct,
                )
                for g in snap.gpus
            )
        presence = self._presence
        safety = SafetyInputs(
            wall=wall,
            mono=mono,
            sample_mono=facts.sample_mono,
            sample_error=facts.sample_error,
            gpus=gpus,
            cpu_temp_c=snap.host.cpu_temp_c if snap is not None else None,
            heat_w=facts.heat_w,
            on_battery=presence.on_battery,
            exclusive=presence.exclusive,
            room_c=room.temp_c if room is not None else None,
            room_wall=room.wall if room is not None else None,
            computing=running and not frozen,
        )
        feed = self._prices
        inputs = HeatingInputs(
            wall=wall,
            mono=mono,
            room=room,
            room_problem=problem,
            outdoor_c=outdoor,
            safety=safety,
            job_running=running,
            checkpoint_eta_s=eta,
            prices=feed.heating_prices(wall) if feed is not None else (),
            earnings_per_kwh=feed.earnings_per_kwh() if feed is not None else None,
        )
        with self._lock:
            decision = self._loop.step(inputs)
            started = self._loop.notifications()
            self._stepped = True
        for event in started:
            log.warning("%s", event.message)
        return decision

    def _act(self, decision: HeatingDecision) -> None:
        previous, self._last = self._last, decision
        network = self._network
        if network is not None:
            network.hold(compute=decision.compute, hold=decision.hold, cpu_cores=decision.cpu_cores)
        if self._power is not None and (decision.gpu_power_limit_w or self._caps):
            wanted = {i: round(w, 1) for i, w in decision.gpu_power_limit_w.items()}
            if wanted != self._caps:
                self._power.set_gpu_power_limits(wanted)
                self._caps = wanted
        if previous is None or (previous.compute, previous.safety_stop, previous.hold) != (
            decision.compute,
            decision.safety_stop,
            decision.hold,
        ):
            log.info("Heating: %s", decision.reason)
        self._maybe_publish(changed=previous is None or previous.compute != decision.compute)

    def _look_around(self) -> None:
        reader = self._presence_reader
        if reader is not None:
            self._presence = reader(self.settings_stored())
        now = self._mono()
        if self._advice is not None and now - self._advised_at >= DUST_EVERY_S:
            self._advised_at = now
            try:
                self._alerts = self._advice()
            except Exception:
                log.exception("The dust reminder could not look at the history")

    # -- what the API reads -------------------------------------------------------------------

    def status(self) -> HeatingStatus:
        with self._lock:
            status = self._loop.status()
            bridge = self._bridge
        if self._alerts:
            status = status.model_copy(update={"alerts": [*status.alerts, *self._alerts]})
        if bridge is not None:
            status = status.model_copy(
                update={
                    "home_assistant": "connected" if bridge.connected else "disconnected",
                    "home_assistant_error": bridge.error,
                }
            )
        return status

    def summary(self) -> HeatingSummary | None:
        """The heating line of ``/v1/status``; None until the loop has run once."""
        with self._lock:
            return self._loop.summary() if self._stepped else None

    def series_values(self) -> dict[str, float | None]:
        """The history series the sampler records each second."""
        with self._lock:
            if not self._stepped:
                return {}
            status = self._loop.status()
        return {
            "room_c": status.room_c,
            "setpoint_c": status.setpoint_c,
            "heat_demand_pct": status.demand_pct,
        }

    # -- settings -----------------------------------------------------------------------------

    def settings_stored(self) -> HeatingSettings:
        with self._lock:
            return self._settings

    def settings(self) -> HeatingSettings:
        """The settings, with the token and the password left out."""
        return public(self.settings_stored())

    def put_settings(self, new: HeatingSettings) -> HeatingSettings:
        """Store and apply new settings (the token and password kept where left out)."""
        with self._write:
            old = self.settings_stored()
            merged = with_stored_secrets(new, old)
            ha = merged.home_assistant
            uses_ha = merged.room_source is RoomSourceKind.HOME_ASSISTANT
            if uses_ha and ha is not None and not ha.token:
                raise HeatingRequestError(
                    "The heating settings were not accepted: the Home Assistant room source "
                    "needs a long-lived access token."
                )
            self._store.set_state(SETTINGS_KEY, merged.model_dump_json())
            with self._lock:
                self._settings = merged
                self._loop.configure(merged)
            self._save_runtime()
            if self._started:
                self._apply_sources(old, merged)
        log.info("Heating settings changed")
        self._maybe_publish(changed=True)
        return public(merged)

    def _load_settings(self) -> HeatingSettings:
        return load_stored(self._store.get_state(SETTINGS_KEY), HeatingSettings, self._damaged)

    def _damaged(self, what: str) -> None:
        msg = f"Some stored heating settings were not usable; {what}."
        log.warning("%s", msg)
        self.load_warnings.append(msg)

    # -- runtime state: mode, override, boost -------------------------------------------------

    def set_mode(self, req: ModeRequest) -> HeatingStatus:
        with self._write:
            with self._lock:
                self._loop.set_mode(req.mode, self._wall())
                self._settings = self._settings.model_copy(update={"mode": req.mode})
                stored = self._settings
            self._store.set_state(SETTINGS_KEY, stored.model_dump_json())
            self._save_runtime()
        log.info("Heating mode: %s", req.mode.value)
        self._maybe_publish(changed=True)
        return self.status()

    def boost(self, req: BoostRequest) -> HeatingStatus:
        with self._write:
            with self._lock:
                self._loop.boost(req.minutes, self._wall())
            self._save_runtime()
        log.info("Boost: %s", f"{req.minutes} minutes" if req.minutes else "ended")
        self._maybe_publish(changed=True)
        return self.status()

    def setpoint(self, req: SetpointRequest) -> HeatingStatus:
        with self._write:
            with self._lock:
                try:
                    self._loop.setpoint(req, self._wall())
                except ValueError as exc:
                    why = str(exc).rstrip(".")
                    raise HeatingRequestError(
                        f"The setpoint was not accepted: {why[:1].lower()}{why[1:]}."
                    ) from exc
            self._save_runtime()
        self._maybe_publish(changed=True)
        return self.status()

    def _save_runtime(self) -> None:
        with self._lock:
            state = self._loop.runtime_state()
        self._store.set_state(RUNTIME_KEY, json.dumps(state))

    def _restore_runtime(self) -> None:
        raw = self._store.get_state(RUNTIME_KEY)
        if not raw:
            return
        try:
            state = json.loads(raw)
        except ValueError:
            self._damaged("the override and boost in force were lost")
            return
        if isinstance(state, dict):
            self._loop.restore(state)

    # -- room source and Home Assistant -------------------------------------------------------

    def room_probe(self, req: RoomProbeRequest) -> RoomProbeResponse:
        if self._probe is None:
            return RoomProbeResponse(ok=False, error="This agent cannot try room sources.")
        try:
            return self._probe(req, self.settings_stored(), ROOM_PROBE_TIMEOUT_S)
        except Exception as exc:  # the probe's own trouble must not become a 500
            log.exception("Trying the room source failed")
            return RoomProbeResponse(ok=False, error=f"The room source could not be tried: {exc}")

    def _apply_sources(self, old: HeatingSettings | None, new: HeatingSettings) -> None:
        """(Re)start the room source and the bridge whose settings changed."""
        if old is None or _room_config(old) != _room_config(new):
            with self._lock:
                previous, self._room = self._room, None
            if previous is not None:
                previous.stop()
            if self._room_factory is not None:
                try:
                    room = self._room_factory(new)
                    if room is not None:
                        room.start()
                except Exception:
                    log.exception("The room source did not start")
                    room = None
                with self._lock:
                    self._room = room
        if old is None or _bridge_config(old) != _bridge_config(new):
            with self._lock:
                bridge, self._bridge = self._bridge, None
            if bridge is not None:
                bridge.stop()
            mqtt = _bridge_config(new)
            if mqtt is not None and self._bridge_factory is not None:
                try:
                    bridge = self._bridge_factory(
                        mqtt,
                        node_key=self._node_key(),
                        name=self._hostname,
                        on_mode=self._ha_mode,
                        on_setpoint=self._ha_setpoint,
                        on_boost=self._ha_boost,
                    )
                    bridge.start()
                except Exception:
                    log.exception("The Home Assistant bridge did not start")
                    bridge = None
                with self._lock:
                    self._bridge = bridge
                    self._published, self._published_at = None, float("-inf")

    def _node_key(self) -> str:
        key = self._store.get_state(NODE_KEY_KEY)
        if not key:
            key = f"heatshare_{secrets.token_hex(4)}"
            self._store.set_state(NODE_KEY_KEY, key)
        return key

    def _ha_state(self) -> HaState:
        from heatshare.agent.home_assistant import HaState

        facts = self._facts()
        return HaState.from_status(
            self.status(), heat_w=facts.heat_w, heat_today_kwh=facts.heat_today_kwh
        )

    def _ha_mode(self, mode: HeatMode) -> HaState:
        log.info("Home Assistant asks for the mode %s", mode.value)
        self.set_mode(ModeRequest(mode=mode))
        return self._ha_state()

    def _ha_setpoint(self, setpoint_c: float) -> HaState:
        log.info("Home Assistant asks for %.1f °C", setpoint_c)
        self.setpoint(SetpointRequest(setpoint_c=min(max(setpoint_c, 5.0), 30.0)))
        return self._ha_state()

    def _ha_boost(self, minutes: int) -> HaState:
        log.info("Home Assistant asks for a boost of %d minutes", minutes)
        self.boost(BoostRequest(minutes=min(max(minutes, 0), 240)))
        return self._ha_state()

    def _maybe_publish(self, *, changed: bool) -> None:
        with self._lock:
            bridge = self._bridge
        if bridge is None:
            return
        now = self._mono()
        # A change the thermostat makes by itself (the room, the setpoint at a schedule's
        # change) is looked for once a second; what a request changed goes out at once.
        if not changed and now - self._checked_at < 1.0:
            return
        self._checked_at = now
        try:
            state = self._ha_state()
            if changed or state != self._published or now - self._published_at >= PUBLISH_EVERY_S:
                bridge.publish(state)
                self._published, self._published_at = state, now
        except Exception:
            log.exception("Publishing to Home Assistant failed")


__all__ = [
    "HeatingControl",
    "HeatingRequestError",
    "JobHold",
    "Presence",
    "SampleFacts",
    "local_zone",
    "public",
    "read_presence",
    "with_stored_secrets",
]

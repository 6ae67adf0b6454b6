"""Models of the agent's heating routes (``/v1/heating…``), shared by the agent and the app.

The householder's words are the API's words: a mode (heat first, earn first, quiet, off, and
boost for an hour), a weekly schedule of comfort periods (eco the rest of the time), a room
thermometer, and safety limits each with a grace period. Temperatures are °C on the wire; the
app converts for display.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RoomC = Annotated[float, Field(ge=5.0, le=30.0)]  # a setpoint a room can be asked for
Minute = Annotated[int, Field(ge=0, le=1440)]  # minutes after local midnight; 1440 = midnight


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HeatMode(StrEnum):
    HEAT_FIRST = "heat_first"  # compute only as much as the room needs
    EARN_FIRST = "earn_first"  # compute whenever there is work, within the limits
    QUIET = "quiet"  # like heat first, under a lower power cap and fan ceiling
    OFF = "off"  # compute nothing


class ComfortPeriod(_Model):
    """A comfort period on one weekday, in local wall time; the rest of the week is eco."""

    day: Annotated[int, Field(ge=0, le=6)]  # 0 = Monday
    start_min: Minute
    end_min: Minute

    @model_validator(mode="after")
    def _ordered(self) -> ComfortPeriod:
        if self.end_min <= self.start_min:
            raise ValueError("a comfort period must end after it starts")
        return self


def default_periods() -> list[ComfortPeriod]:
    """Mornings 06:30–08:30 and evenings 17:00–22:30 every day."""
    out: list[ComfortPeriod] = []
    for day in range(7):
        out.append(ComfortPeriod(day=day, start_min=6 * 60 + 30, end_min=8 * 60 + 30))
        out.append(ComfortPeriod(day=day, start_min=17 * 60, end_min=22 * 60 + 30))
    return out


class RoomSourceKind(StrEnum):
    NONE = "none"  # no thermometer: heat follows the schedule's power levels
    HOME_ASSISTANT = "home_assistant"
    MQTT = "mqtt"


class HomeAssistantSource(_Model):
    """A Home Assistant sensor entity read through its REST API with a long-lived token."""

    url: Annotated[str, Field(min_length=8, max_length=500, pattern=r"^https?://")]
    # Write-only: the agent never sends a stored token back; None in a change keeps it.
    token: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    entity_id: Annotated[str, Field(pattern=r"^sensor\.[a-z0-9_]+$", max_length=255)] | None = None
    outdoor_entity_id: (
        Annotated[str, Field(pattern=r"^(sensor|weather)\.[a-z0-9_]+$", max_length=255)] | None
    ) = None
    verify_tls: bool = True


class MqttSource(_Model):
    """A thermometer publishing on an MQTT topic (Zigbee2MQTT and the like)."""

    host: Annotated[str, Field(min_length=1, max_length=255)]
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: Annotated[str, Field(max_length=255)] | None = None
    password: Annotated[str, Field(max_length=1000)] | None = None  # write-only, like a token
    tls: bool = False
    topic: Annotated[str, Field(min_length=1, max_length=255)]
    # A JSON payload's field holding the temperature ("temperature" for Zigbee2MQTT); None: the
    # payload is the number itself.
    json_field: Annotated[str, Field(min_length=1, max_length=100)] | None = "temperature"
    outdoor_topic: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    # Publish the heater to Home Assistant through this broker (MQTT discovery).
    ha_discovery: bool = True
    discovery_prefix: Annotated[str, Field(min_length=1, max_length=100)] = "homeassistant"


class SafetyLimits(_Model):
    """Limits that stop computing, each resumed below its own threshold after a dwell."""

    gpu_max_c: Annotated[float, Field(ge=40, le=100)] = 80.0  # never above NVML's slowdown - 3
    gpu_resume_c: Annotated[float, Field(ge=30, le=95)] = 72.0
    cpu_max_c: Annotated[float, Field(ge=40, le=105)] = 90.0
    cpu_resume_c: Annotated[float, Field(ge=30, le=100)] = 80.0
    room_max_c: Annotated[float, Field(ge=15, le=35)] = 26.0
    dwell_s: Annotated[int, Field(ge=0, le=3600)] = 120  # time below resume before resuming
    grace_s: Annotated[int, Field(ge=0, le=600)] = 10  # a trigger waits this long before a stop
    stop_on_battery: bool = True
    exclusive_apps: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    exclusive_games: bool = True  # a full-screen game on the GPU pauses the jobs
    open_window: bool = True  # the room cooling fast stops heating for a while
    open_window_drop_c: Annotated[float, Field(ge=0.3, le=5.0)] = 1.0  # within 5 minutes
    open_window_pause_min: Annotated[int, Field(ge=5, le=120)] = 30
    # A room reading older than this is not the room now (the thermostat falls back to the
    # floor). Zigbee thermometers report only on a change or about hourly in a steady room.
    stale_after_s: Annotated[int, Field(ge=60, le=3600)] = 3600
    floor_pct: Annotated[float, Field(ge=0, le=50)] = 0.0  # most heat while the room is unknown

    @model_validator(mode="after")
    def _resume_below_max(self) -> SafetyLimits:
        if self.gpu_resume_c >= self.gpu_max_c:
            raise ValueError("the GPU must resume below its limit")
        if self.cpu_resume_c >= self.cpu_max_c:
            raise ValueError("the CPU must resume below its limit")
        return self


class HeatingSettings(_Model):
    """``GET``/``PUT /v1/heating/settings``: how the heater decides when and how hard to run."""

    mode: HeatMode = HeatMode.EARN_FIRST
    comfort_c: RoomC = 20.5
    eco_c: RoomC = 17.0
    periods: list[ComfortPeriod] = Field(default_factory=default_periods, max_length=200)
    # Without a thermometer: how hard to run in comfort and in eco periods.
    comfort_power_pct: Annotated[float, Field(ge=0, le=100)] = 100.0
    eco_power_pct: Annotated[float, Field(ge=0, le=100)] = 0.0
    quiet_power_pct: Annotated[float, Field(ge=10, le=100)] = 50.0
    quiet_fan_pct: Annotated[float, Field(ge=20, le=100)] = 60.0
    # Summer: no heat is wanted when it is this warm outside, or outside the heating season.
    summer_outdoor_c: Annotated[float, Field(ge=5, le=30)] | None = 18.0
    season_start: Annotated[str, Field(pattern=r"^\d\d-\d\d$")] | None = "09-15"  # MM-DD
    season_end: Annotated[str, Field(pattern=r"^\d\d-\d\d$")] | None = "05-15"
    room_source: RoomSourceKind = RoomSourceKind.NONE
    home_assistant: HomeAssistantSource | None = None
    mqtt: MqttSource | None = None
    limits: SafetyLimits = Field(default_factory=SafetyLimits)

    @model_validator(mode="after")
    def _source_configured(self) -> HeatingSettings:
        if self.room_source is RoomSourceKind.HOME_ASSISTANT and self.home_assistant is None:
            raise ValueError("a Home Assistant room source needs its address and token")
        if self.room_source is RoomSourceKind.MQTT and self.mqtt is None:
            raise ValueError("an MQTT room source needs its broker and topic")
        if self.eco_c > self.comfort_c:
            raise ValueError("the eco temperature must not be above the comfort temperature")
        return self


class ModeRequest(_Model):
    """``POST /v1/heating/mode``."""

    mode: HeatMode


class BoostRequest(_Model):
    """``POST /v1/heating/boost``: full heat for a while (0 ends a boost)."""

    minutes: Annotated[int, Field(ge=0, le=240)] = 60


class SetpointRequest(_Model):
    """``POST /v1/heating/setpoint``: a temporary override, or a nudge of the current one.

    Exactly one of ``setpoint_c`` and ``delta_c``. The override lasts until ``until`` or, when
    that is None, until the schedule's next change.
    """

    setpoint_c: RoomC | None = None
    delta_c: Annotated[float, Field(ge=-5.0, le=5.0)] | None = None
    until: datetime | None = None
    clear: bool = False  # back to the schedule

    @model_validator(mode="after")
    def _one(self) -> SetpointRequest:
        given = (self.setpoint_c is not None) + (self.delta_c is not None) + self.clear
        if given != 1:
            raise ValueError("give exactly one of setpoint_c, delta_c and clear")
        return self


class RoomProbeRequest(_Model):
    """``POST /v1/heating/room-probe``: try a room source before saving it.

    A token or password left out is taken from the stored settings of the same kind.
    """

    room_source: RoomSourceKind
    home_assistant: HomeAssistantSource | None = None
    mqtt: MqttSource | None = None


class SensorEntity(_Model):
    entity_id: str
    name: str
    state: str
    unit: str | None = None


class RoomProbeResponse(_Model):
    ok: bool
    room_c: float | None = None
    outdoor_c: float | None = None
    error: str | None = None  # a sentence when not ok
    entities: list[SensorEntity] = Field(default_factory=list)  # Home Assistant: to pick from


class SafetyRule(StrEnum):
    GPU_HOT = "gpu_hot"
    CPU_HOT = "cpu_hot"
    ROOM_HOT = "room_hot"
    SENSOR_ERROR = "sensor_error"  # a sensor read failed, or the sampler stalled
    ON_BATTERY = "on_battery"
    EXCLUSIVE_APP = "exclusive_app"
    OPEN_WINDOW = "open_window"
    FAN_FAILURE = "fan_failure"


class SafetyEvent(_Model):
    rule: SafetyRule
    message: str  # a sentence for the householder: what, and what happens next
    since: datetime
    stops_at: datetime | None = None  # while in its grace period: when the stop comes
    resumes_at: datetime | None = None  # while stopped: the earliest resume (dwell)


class Actuation(StrEnum):
    NONE = "none"  # nothing to do: not computing
    POWER_CAP = "power_cap"  # the GPU's power limit set through NVML
    DUTY_CYCLE = "duty_cycle"  # jobs paused and resumed
    FULL = "full"  # computing without a cap


class HeatingSummary(_Model):
    """The heating line of ``GET /v1/status`` (for the tray and the dashboard)."""

    mode: HeatMode
    boost_until: datetime | None = None
    room_c: float | None = None
    setpoint_c: float | None = None
    computing: bool = False
    reason: str = ""  # a sentence: why it computes, or why it does not
    safety_stop: bool = False


class HeatingStatus(_Model):
    """``GET /v1/heating``: what the thermostat sees and decides."""

    mode: HeatMode
    boost_until: datetime | None = None
    room_source: RoomSourceKind
    room_c: float | None = None
    room_at: datetime | None = None  # when the reading was taken
    room_problem: str | None = None  # a sentence while the reading is missing or stale
    outdoor_c: float | None = None
    summer: bool = False  # no heat wanted now
    setpoint_c: float | None = None
    setpoint_source: Literal["comfort", "eco", "override", "none"] = "none"
    override_until: datetime | None = None
    next_change_at: datetime | None = None
    demand_pct: float = 0.0  # the controller's heat demand, 0..100
    actuation: Actuation = Actuation.NONE
    gpu_power_limit_w: float | None = None  # the cap the agent set, where it did
    computing: bool = False
    reason: str = ""
    safety_stop: bool = False
    events: list[SafetyEvent] = Field(default_factory=list)  # pending and active
    alerts: list[str] = Field(default_factory=list)  # advice, e.g. the dust reminder
    home_assistant: Literal["off", "connected", "disconnected"] = "off"
    home_assistant_error: str | None = None

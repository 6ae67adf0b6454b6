"""The heating's words and figures, as pure functions (no Qt): the page, the tray and the dashboard
say the same thing the same way, and plain tests cover it.

Temperatures arrive in °C and are shown in the user's unit (``Settings.temperature_unit``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from heatshare.domain.units import c_to_f
from heatshare.protocol.heating import (
    Actuation,
    HeatingStatus,
    HeatingSummary,
    HeatMode,
    RoomSourceKind,
    SafetyEvent,
    SafetyRule,
)

NOT_AVAILABLE = "not available"
NBSP = "\u00a0"
Unit = Literal["C", "F"]

MODE_WORDS = {
    HeatMode.HEAT_FIRST: "Heat first",
    HeatMode.EARN_FIRST: "Earn first",
    HeatMode.QUIET: "Quiet",
    HeatMode.OFF: "Off",
}
MODE_HINTS = {
    HeatMode.HEAT_FIRST: "Computes only as much as the room needs to reach its target.",
    HeatMode.EARN_FIRST: "Computes whenever the network has work, within the safety limits.",
    HeatMode.QUIET: "Like heat first, under a lower power cap and fan ceiling.",
    HeatMode.OFF: "Computes nothing: no heat, no earnings.",
}
SOURCE_WORDS = {
    RoomSourceKind.NONE: "No thermometer",
    RoomSourceKind.HOME_ASSISTANT: "Home Assistant",
    RoomSourceKind.MQTT: "MQTT",
}
RULE_TITLES = {
    SafetyRule.GPU_HOT: "GPU too hot",
    SafetyRule.CPU_HOT: "CPU too hot",
    SafetyRule.ROOM_HOT: "Room too warm",
    SafetyRule.SENSOR_ERROR: "Sensor failure",
    SafetyRule.ON_BATTERY: "On battery",
    SafetyRule.EXCLUSIVE_APP: "Program or game running",
    SafetyRule.OPEN_WINDOW: "Window open",
    SafetyRule.FAN_FAILURE: "Fan failure",
}
ACTUATION_WORDS = {
    Actuation.NONE: "not computing",
    Actuation.POWER_CAP: "GPU power capped",
    Actuation.DUTY_CYCLE: "jobs paused and resumed in turn",
    Actuation.FULL: "computing at full power",
}


def to_unit(celsius: float, unit: Unit) -> float:
    return c_to_f(celsius) if unit == "F" else celsius


def format_room(celsius: float | None, unit: Unit = "C") -> str:
    """A room or target temperature: one decimal (a thermostat's half degrees matter)."""
    if celsius is None:
        return NOT_AVAILABLE
    return f"{to_unit(celsius, unit):.1f} °{unit}"


def nudge_delta_c(unit: Unit) -> float:
    """One step of "warmer"/"cooler": 0.5 °C, or 1 °F where the user reads °F."""
    return 5.0 / 9.0 if unit == "F" else 0.5


def nudge_text(unit: Unit, sign: int) -> str:
    step = "1 °F" if unit == "F" else "0.5 °C"
    return f"{'+' if sign > 0 else '−'}{step}"


def countdown(seconds: float) -> str:
    """``"7 s"``, ``"1 min 40 s"``, ``"26 min"``, ``"2 h 05 min"``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 3600:
        return f"{round(s / 60)} min"
    h, m = divmod(round(s / 60), 60)
    return f"{h} h {m:02d} min"


def local_hhmm(at: datetime) -> str:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone().strftime("%H:%M")


def event_stopped(event: SafetyEvent, now: datetime) -> bool:
    """Past its grace period (or one without grace): the stop is in force."""
    return event.stops_at is None or event.stops_at <= now


def event_when(event: SafetyEvent, now: datetime) -> str:
    """What happens next and when: the grace countdown, or the earliest resume."""
    if not event_stopped(event, now):
        assert event.stops_at is not None
        return f"Stops in {countdown((event.stops_at - now).total_seconds())} unless it clears."
    if event.resumes_at is not None and event.resumes_at > now:
        left = countdown((event.resumes_at - now).total_seconds())
        return f"Stopped. Resumes at {local_hhmm(event.resumes_at)} at the earliest (in {left})."
    return "Stopped."  # until it clears: the agent's sentence says how


def target_detail(status: HeatingStatus) -> str:
    """Where the target comes from and until when."""
    until = ""
    if status.setpoint_source == "override" and status.override_until is not None:
        until = f" until {local_hhmm(status.override_until)}"
    elif status.next_change_at is not None:
        until = f" until {local_hhmm(status.next_change_at)}"
    words = {
        "comfort": "comfort",
        "eco": "eco",
        "override": "your change",
        "none": "no target",
    }[status.setpoint_source]
    if status.setpoint_source == "none":
        return "no target: the schedule's power levels apply"
    if status.setpoint_source == "override" and status.override_until is None:
        return "your change, until the schedule's next change"
    return words + until


def room_detail(status: HeatingStatus, now: datetime, unit: Unit = "C") -> str:
    parts = [SOURCE_WORDS[status.room_source]]
    if status.room_at is not None:
        parts.append(f"measured {countdown((now - status.room_at).total_seconds())} ago")
    if status.outdoor_c is not None:
        parts.append(f"outside {format_room(status.outdoor_c, unit)}")
    # Lines break between the parts, never inside one ("6.1 / °C").
    return " · ".join(p.replace(" ", NBSP) for p in parts)


def heat_detail(status: HeatingStatus) -> str:
    text = ACTUATION_WORDS[status.actuation]
    if status.actuation is Actuation.POWER_CAP and status.gpu_power_limit_w is not None:
        text = f"GPU capped at {status.gpu_power_limit_w:.0f} W"
    return text


def mode_line(mode: HeatMode, boost_until: datetime | None, now: datetime) -> str:
    if boost_until is not None and boost_until > now:
        return f"Boost until {local_hhmm(boost_until)}"
    return MODE_WORDS[mode]


def summary_line(summary: HeatingSummary, unit: Unit = "C", now: datetime | None = None) -> str:
    """``"Room 20.4 °C → 21.0 °C · Heat first"`` (the dashboard's heating line)."""
    now = now or datetime.now(UTC)
    room = format_room(summary.room_c, unit) if summary.room_c is not None else "no reading"
    target = f" → {format_room(summary.setpoint_c, unit)}" if summary.setpoint_c is not None else ""
    return f"Room {room}{target} · {mode_line(summary.mode, summary.boost_until, now)}"

"""What the tray shows, as pure functions of the agent's state (no Qt, so plain tests cover it).

The tray controller rebuilds its menu from :func:`tray_menu_entries` each time the menu opens,
so the menu is never stale (Vorta's ``tray_menu.py`` does the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from heatshare.domain.readings import Provenance
from heatshare.domain.units import c_to_f
from heatshare.gui.formatting import format_money_minor, format_progress, measured_share
from heatshare.gui.heating_text import (
    MODE_WORDS,
    Unit,
    format_room,
    local_hhmm,
    mode_line,
    nudge_text,
)
from heatshare.protocol.heating import HeatingSummary, HeatMode
from heatshare.protocol.local_api import AgentState, AgentStatus

# Menu entry keys: the tray controller maps each to a signal.
INFO = "info"
JOB = "job"
EARNED = "earned"
OPEN = "open"
PAUSE = "pause"
RESUME = "resume"
QUIT = "quit"
QUIT_AND_STOP = "quit_and_stop"
ROOM = "room"
MODE = "mode"  # the submenu; its entries' keys are MODE_PREFIX + the mode's value
MODE_PREFIX = "mode:"
BOOST = "boost"
END_BOOST = "end_boost"
WARMER = "warmer"
COOLER = "cooler"

BOOST_MINUTES = 60  # "Boost for 1 hour"

PAUSE_SECONDS = 3600  # "Pause for 1 hour"

UNREACHABLE_TEXT = "Agent unreachable — reconnecting…"
CONNECTING_TEXT = "Connecting to the agent…"
NOT_AVAILABLE = "not available"

# Windows cuts a tray tooltip at 127 characters (NOTIFYICONDATA.szTip holds 128).
TOOLTIP_MAX = 127
_NAME_MAX = 28
_NAME_MAX_WITH_JOB = 16

_STATE_LABEL = {
    AgentState.STARTING: "Starting",
    AgentState.HEATING: "Heating",
    AgentState.IDLE: "Idle",
    AgentState.PAUSED: "Paused",
}


@dataclass(frozen=True)
class MenuEntry:
    """One line of the tray menu.

    Attributes:
        key: What the entry does (``OPEN``, ``PAUSE``, ...); a separator's key only needs to be
            unique.
        text: The label shown; empty for a separator.
        enabled: False greys the entry out.
        separator: True for a separator line.
        checked: True or False for a checkable entry (a mode); None for a plain one.
        children: A submenu's entries (the mode switch); empty for a plain entry.
    """

    key: str
    text: str
    enabled: bool = True
    separator: bool = False
    checked: bool | None = None
    children: tuple[MenuEntry, ...] = field(default=())


def tray_state(status: AgentStatus | None, reachable: bool) -> str:
    """The tray icon's state: ``"heating"``, ``"idle"``, ``"paused"`` or ``"unreachable"``.

    Before the first status arrives, and while the agent starts, the icon shows idle: nothing
    is known to be wrong, and nothing is heating yet.
    """
    if not reachable:
        return "unreachable"
    if status is None:
        return "idle"
    if status.state is AgentState.HEATING:
        return "heating"
    if status.state is AgentState.PAUSED:
        return "paused"
    return "idle"


def _watts(status: AgentStatus) -> str | None:
    if status.heat_w is None:
        return None
    text = f"{status.heat_w:,.0f} W"
    if status.heat_provenance is Provenance.ESTIMATE:
        text += " (partly estimated)" if measured_share(status) is not None else " (estimated)"
    return text


def _info_line(status: AgentStatus | None, reachable: bool) -> str:
    if not reachable:
        return UNREACHABLE_TEXT
    if status is None:
        return CONNECTING_TEXT
    label = _STATE_LABEL[status.state]
    watts = _watts(status)
    return f"{label} · {watts}" if watts else label


def _job_line(status: AgentStatus, label_max: int = 60) -> str | None:
    """``"Job: Fractal tile 5 · 42 %"`` while a job runs; None otherwise."""
    if not status.job_label:
        return None
    progress = format_progress(status.job_progress)
    label = _shorten(status.job_label, label_max)
    return f"Job: {label} · {progress}" if progress else f"Job: {label}"


def _earned_line(status: AgentStatus) -> str | None:
    """``"Earned today: 1.20 credits"`` on a machine in a network; None otherwise."""
    if status.earned_today_minor is None or not status.earnings_currency:
        return None
    return (
        f"Earned today: {format_money_minor(status.earned_today_minor, status.earnings_currency)}"
    )


def _room_line(h: HeatingSummary, fahrenheit: bool) -> str:
    """``"Room 20.4 °C → 21.0 °C"``; ``"Stopped for safety: …"`` while a safety stop holds."""
    unit: Unit = "F" if fahrenheit else "C"
    if h.safety_stop:
        said = h.reason.lower().startswith("stopped")  # the agent's sentence may say it
        return _shorten(h.reason if said else f"Stopped for safety: {h.reason}", 70)
    room = format_room(h.room_c, unit) if h.room_c is not None else "no reading"
    target = f" → {format_room(h.setpoint_c, unit)}" if h.setpoint_c is not None else ""
    return f"Room {room}{target}"


def heating_entries(
    h: HeatingSummary, can_command: bool, *, fahrenheit: bool = False, now: datetime | None = None
) -> list[MenuEntry]:
    """The mode switch, Boost for 1 hour (or End boost) and the target's ±0.5 °C."""
    now = now or datetime.now(UTC)
    unit: Unit = "F" if fahrenheit else "C"
    modes = tuple(
        MenuEntry(MODE_PREFIX + m.value, MODE_WORDS[m], enabled=can_command, checked=m is h.mode)
        for m in HeatMode
    )
    boosting = h.boost_until is not None and h.boost_until > now
    boost = (
        MenuEntry(END_BOOST, f"End boost (until {local_hhmm(h.boost_until)})", enabled=can_command)
        if boosting and h.boost_until is not None
        else MenuEntry(BOOST, "Boost for 1 hour", enabled=can_command)
    )
    nudge = can_command and h.setpoint_c is not None
    return [
        MenuEntry(MODE, f"Mode: {mode_line(h.mode, h.boost_until, now)}", children=modes),
        boost,
        MenuEntry(WARMER, f"Warmer ({nudge_text(unit, 1)})", enabled=nudge),
        MenuEntry(COOLER, f"Cooler ({nudge_text(unit, -1)})", enabled=nudge),
    ]


def tray_menu_entries(
    status: AgentStatus | None, reachable: bool, *, fahrenheit: bool = False
) -> list[MenuEntry]:
    """The tray menu for this state, top to bottom.

    A disabled info line first (``"Heating · 182 W"``), the room and its target, the running
    job and today's earnings where the machine works for a network, then Open, Pause for 1
    hour or Resume; where the agent runs the thermostat, the mode switch, Boost and the
    target's ±0.5 °C; and the two ways to quit. What needs the agent is disabled while it
    does not answer.
    """
    can_command = reachable and status is not None
    if status is not None and status.state is AgentState.PAUSED:
        toggle = MenuEntry(RESUME, "Resume", enabled=can_command)
    else:
        toggle = MenuEntry(PAUSE, "Pause for 1 hour", enabled=can_command)
    info = [MenuEntry(INFO, _info_line(status, reachable), enabled=False)]
    heating: list[MenuEntry] = []
    if status is not None and status.heating is not None:
        heating = [
            MenuEntry("separator-heating", "", separator=True),
            *heating_entries(status.heating, can_command, fahrenheit=fahrenheit),
        ]
    if reachable and status is not None:
        if status.heating is not None:
            info.append(MenuEntry(ROOM, _room_line(status.heating, fahrenheit), enabled=False))
        job, earned = _job_line(status), _earned_line(status)
        if job is not None:
            info.append(MenuEntry(JOB, job, enabled=False))
        if earned is not None:
            info.append(MenuEntry(EARNED, earned, enabled=False))
    return [
        *info,
        MenuEntry("separator-1", "", separator=True),
        MenuEntry(OPEN, "Open Heatshare"),
        toggle,
        *heating,
        MenuEntry("separator-2", "", separator=True),
        MenuEntry(QUIT, "Quit Heatshare"),
        MenuEntry(QUIT_AND_STOP, "Quit and stop the agent", enabled=reachable),
    ]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def tray_tooltip(status: AgentStatus | None, reachable: bool, *, fahrenheit: bool = False) -> str:
    """The tray tooltip: the state, the heat output, the hottest component, the job, earnings.

    Args:
        status: The agent's last status, or None before the first one.
        reachable: False while the agent does not answer.
        fahrenheit: Show the temperature in °F (the user's setting).
    """
    if not reachable:
        return f"Heatshare\n{UNREACHABLE_TEXT}"
    if status is None:
        return f"Heatshare\n{CONNECTING_TEXT}"
    heat = _watts(status) or NOT_AVAILABLE
    if status.hottest_c is None:
        hottest = NOT_AVAILABLE
    else:
        value = c_to_f(status.hottest_c) if fahrenheit else status.hottest_c
        hottest = f"{value:.0f} °{'F' if fahrenheit else 'C'}"
        if status.hottest_name:
            # With a job line to fit as well, the component's name gives up some room.
            limit = _NAME_MAX_WITH_JOB if status.job_label else _NAME_MAX
            hottest += f" ({_shorten(status.hottest_name, limit)})"
    text = f"Heatshare · {_STATE_LABEL[status.state]}\nHeat: {heat}\nHottest: {hottest}"
    earned = _earned_line(status)
    tail = f"\n{earned}" if earned is not None else ""
    if status.heating is not None:
        # Before the job's line: the room is what a thermostat's tooltip is for.
        room = max(24, TOOLTIP_MAX - len(text) - len(tail) - 1)
        text += f"\n{_shorten(_room_line(status.heating, fahrenheit), room)}"
    if status.job_label:
        # The job's label gives way first: the other lines are the heater's own.
        room = TOOLTIP_MAX - len(text) - len(tail) - len("\nJob:  · 100 %")
        if room >= 8:
            text += f"\n{_job_line(status, room)}"
    text += tail
    return _shorten(text, TOOLTIP_MAX)

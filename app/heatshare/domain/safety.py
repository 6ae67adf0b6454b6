"""Heater-grade safety: when the machine must stop computing, and when it may resume.

Like a good electric heater, the policy fails closed. Each rule watches one thing (a GPU's or the
CPU's temperature, the room, the sensors themselves, the battery, programs that want the machine,
the room cooling fast, a fan standing still) and goes through the same steps:

* a *trigger* starts a pending event, shown with ``stops_at_wall``; it becomes a stop when its
  grace period runs out before the rule *clears* (sensor failure has no grace: it stops at once);
* a stop lasts until the rule has been clear for its dwell (``resumes_at_wall`` counts down);
  a trigger seen again during the dwell starts the dwell afresh.

Temperatures trigger above a limit and clear only at a lower resume threshold, so a reading
wavering around the limit cannot make the verdict waver with it. A GPU's limit is never above
its NVML slowdown temperature minus :data:`SLOWDOWN_MARGIN_C`.

Every event carries a sentence for the householder: what happened and what happens next.

Pure: no I/O and no clock reads; every time comes in :class:`SafetyInputs`. Durations are
measured on the monotonic clock (``mono``), and times shown are wall times (``wall``), so a
change of the wall clock neither shortens a dwell nor extends a grace period.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

# A sensor sample older than this is a stalled sampler: stop at once. The agent evaluates at
# 4 Hz or more, so a stall stops the computing within 2 s.
SAMPLE_MAX_AGE_S = 1.5
# Sensors must read well for this long after a failure before computing resumes.
SENSOR_RESUME_S = 5.0
# Before the first sample ever: a stop, but announced only if it lasts (the agent's start).
FIRST_SAMPLE_QUIET_S = 10.0
# The GPU's own slowdown (clock throttling) must never be what limits it: stay this far below.
SLOWDOWN_MARGIN_C = 3.0
# The room resumes this far below its limit.
ROOM_RESUME_BAND_C = 1.0
# Open-window detection: the drop is measured over this window.
OPEN_WINDOW_WINDOW_S = 300.0
# A fan at 0 % is normal on a cool card (zero-RPM mode) but not at this temperature.
FAN_HOT_C = 65.0
FAN_HOT_BELOW_LIMIT_C = 5.0  # nor within this of the GPU's own limit, if that is lower


# Stands for the time left (to a stop, to a resume) in a rule's sentences; filled in per event.
LEFT = "\x00left\x00"


class Rule(StrEnum):
    """The rules; the same values as ``heatshare.protocol.heating.SafetyRule``."""

    GPU_HOT = "gpu_hot"
    CPU_HOT = "cpu_hot"
    ROOM_HOT = "room_hot"
    SENSOR_ERROR = "sensor_error"  # a sensor read failed, or the sampler stalled
    ON_BATTERY = "on_battery"
    EXCLUSIVE_APP = "exclusive_app"
    OPEN_WINDOW = "open_window"
    FAN_FAILURE = "fan_failure"


@dataclass(frozen=True, slots=True)
class Limits:
    """The householder's limits; mirrors ``protocol.heating.SafetyLimits`` (the agent converts).

    Raises:
        ValueError: a resume threshold not below its limit, or a negative period.
    """

    gpu_max_c: float = 80.0
    gpu_resume_c: float = 72.0
    cpu_max_c: float = 90.0
    cpu_resume_c: float = 80.0
    room_max_c: float = 26.0
    dwell_s: float = 120.0
    grace_s: float = 10.0
    stop_on_battery: bool = True
    exclusive_apps: tuple[str, ...] = ()
    exclusive_games: bool = True
    open_window: bool = True
    open_window_drop_c: float = 1.0
    open_window_pause_min: float = 30.0
    stale_after_s: float = 3600.0
    floor_pct: float = 0.0

    def __post_init__(self) -> None:
        if self.gpu_resume_c >= self.gpu_max_c:
            raise ValueError("the GPU must resume below its limit")
        if self.cpu_resume_c >= self.cpu_max_c:
            raise ValueError("the CPU must resume below its limit")
        if min(self.dwell_s, self.grace_s, self.open_window_pause_min, self.stale_after_s) < 0:
            raise ValueError("a period cannot be negative")
        if self.open_window_drop_c <= 0:
            raise ValueError("the open-window drop must be above 0 °C")


@dataclass(frozen=True, slots=True)
class GpuFacts:
    """What safety needs to know about one GPU now; None where it is not read."""

    index: int
    temp_c: float | None = None
    fan_pct: float | None = None  # None on passively cooled cards
    power_w: float | None = None
    slowdown_c: float | None = None  # NVML's slowdown threshold
    util_pct: float | None = None


@dataclass(frozen=True, slots=True)
class SafetyInputs:
    """Everything one evaluation looks at, with the time it is evaluated."""

    wall: float  # UTC epoch seconds
    mono: float  # monotonic seconds, the clock ``sample_mono`` is on
    sample_mono: float | None  # when the last good sensor sample was taken; None: none yet
    sample_error: str | None  # the sampler's current error sentence
    gpus: tuple[GpuFacts, ...] = ()
    cpu_temp_c: float | None = None
    heat_w: float | None = None
    on_battery: bool | None = None  # None: unknown (a desktop)
    exclusive: tuple[str, ...] = ()  # exclusive programs and games running now (already found)
    room_c: float | None = None
    room_wall: float | None = None  # when the room reading was taken (UTC epoch seconds)
    computing: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """One rule that has triggered.

    Pending (``stops_at_wall`` set): computing goes on until then. Stopped (``stops_at_wall``
    None): computing is stopped; ``resumes_at_wall`` is the earliest resume once the rule has
    cleared (None while it has not, or when only the householder can clear it).
    """

    rule: Rule
    message: str  # a sentence for the householder: what happened, and what happens next
    since_wall: float
    stops_at_wall: float | None = None
    resumes_at_wall: float | None = None

    @property
    def pending(self) -> bool:
        """In its grace period: not stopping the computing yet."""
        return self.stops_at_wall is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one evaluation.

    ``stop``: computing must stop (held at once, not at a checkpoint). ``events``: pending and
    stopping events, stops first. ``started``: events reported once each, for the log and the
    tray: a rule that triggered in this evaluation, and again when its grace ran out and it
    stopped. ``ended``: rules that cleared and let computing resume in this evaluation (their
    last event), and pending events that cleared before they stopped anything.
    """

    stop: bool
    events: tuple[Event, ...] = ()
    started: tuple[Event, ...] = ()
    ended: tuple[Event, ...] = ()

    @property
    def reason(self) -> str | None:
        """The first stopping event's sentence, or None when nothing stops."""
        for e in self.events:
            if not e.pending:
                return e.message
        return None


def effective_gpu_limits(limits: Limits, slowdown_c: float | None) -> tuple[float, float]:
    """The GPU's limit and resume threshold: the householder's, kept below NVML's slowdown.

    A limit lowered to stay :data:`SLOWDOWN_MARGIN_C` below the slowdown temperature takes its
    resume threshold down with it, keeping the same distance between the two.
    """
    hi, lo = limits.gpu_max_c, limits.gpu_resume_c
    if slowdown_c is not None and math.isfinite(slowdown_c) and slowdown_c - SLOWDOWN_MARGIN_C < hi:
        band = hi - lo
        hi = slowdown_c - SLOWDOWN_MARGIN_C
        lo = min(lo, hi - band)
    return hi, lo


# -- the policy ---------------------------------------------------------------------------------


class _Phase(StrEnum):
    PENDING = "pending"
    STOPPED = "stopped"
    RESUMING = "resuming"


@dataclass(slots=True)
class _Track:
    """One triggered rule's state; durations on the monotonic clock."""

    rule: Rule
    since_wall: float
    since_mono: float
    phase: _Phase = _Phase.PENDING
    clear_mono: float | None = None  # RESUMING: clear since then
    announced: bool = False  # reported in ``started`` at least once
    announced_stop: bool = False
    quiet_until: float | None = None  # not reported before then (waiting for a first sample)
    look: _Look | None = None  # the last look, for when the rule's subject is not seen


@dataclass(frozen=True, slots=True)
class _Look:
    """What one rule sees now.

    ``trigger``: the fault is present. ``clear``: the rule may clear (a temperature at or below
    its resume threshold). Both False where nothing is known: a stop then holds, and a pending
    event runs out its grace. Then the sentences for each phase; ``LEFT`` in them stands for
    the time left.
    """

    trigger: bool
    clear: bool
    pending: str
    stopped: str
    resuming: str


class SafetyPolicy:
    """Decides, at each evaluation, whether computing must stop, and says why.

    Not thread-safe: one caller (the heating loop) evaluates it.

    Args:
        limits: the householder's limits (see :meth:`configure`).
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._tracks: dict[str, _Track] = {}
        self._room: deque[tuple[float, float]] = deque()  # (wall measured, °C), one per reading
        self._gpus_seen: set[int] = set()
        self._cpu_seen = False
        self._sample_seen = False
        self._first_mono: float | None = None

    @property
    def limits(self) -> Limits:
        return self._limits

    def configure(self, limits: Limits) -> None:
        """New limits, from the next evaluation on; events in progress keep their history.

        A grace period or dwell counts from when it began, so a change applies to it at once;
        a rule switched off drops its event at the next evaluation.
        """
        self._limits = limits

    def evaluate(self, inputs: SafetyInputs) -> Verdict:
        """The verdict now; call it often (≥ 4 Hz) with fresh inputs."""
        if self._first_mono is None:
            self._first_mono = inputs.mono
        self._note_room(inputs)
        looks = self._look(inputs)
        started: list[Event] = []
        ended = self._unseen(looks, inputs)
        events: list[Event] = []
        for key, look in looks.items():
            track = self._tracks.get(key)
            if track is None:
                if not look.trigger:
                    continue
                track = self._open(key, inputs)
            elif self._advance(track, look, inputs):
                track.look = look
                ended.extend(self._end(key, inputs))
                continue
            track.look = look
            event = self._event(track, inputs)
            if self._announce(track, inputs):
                stopping = track.phase is not _Phase.PENDING
                if not track.announced or (stopping and not track.announced_stop):
                    started.append(event)
                    track.announced = True
                    track.announced_stop = stopping
            events.append(event)
        events.sort(key=lambda e: (e.pending, e.since_wall))
        stop = any(not e.pending for e in events)
        return Verdict(stop=stop, events=tuple(events), started=tuple(started), ended=tuple(ended))

    # -- state ----------------------------------------------------------------------------------

    def _unseen(self, looks: dict[str, _Look], inputs: SafetyInputs) -> list[Event]:
        """Give events whose subject is not seen now an unknown look; end switched-off ones."""
        ended: list[Event] = []
        for key, track in list(self._tracks.items()):
            if key in looks or track.look is None:
                continue
            if _switched_off(key, self._limits):
                ended.extend(self._end(key, inputs))
            else:
                # A GPU not in this sample, say: nothing is known, so a stop holds and a grace
                # period runs out.
                looks[key] = _unknown(track.look)
        return ended

    def _open(self, key: str, inputs: SafetyInputs) -> _Track:
        rule = _rule_of(key)
        track = _Track(rule=rule, since_wall=inputs.wall, since_mono=inputs.mono)
        if rule is Rule.SENSOR_ERROR and not self._sample_seen:
            # The agent's first sample is on its way: no news unless it lasts.
            assert self._first_mono is not None
            track.quiet_until = self._first_mono + FIRST_SAMPLE_QUIET_S
        self._tracks[key] = track
        if self._grace(rule) <= 0:
            self._stop(track, inputs)
        return track

    def _grace(self, rule: Rule) -> float:
        return 0.0 if rule is Rule.SENSOR_ERROR else float(self._limits.grace_s)

    def _dwell(self, rule: Rule) -> float:
        if rule is Rule.SENSOR_ERROR:
            return SENSOR_RESUME_S
        if rule is Rule.OPEN_WINDOW:
            return self._limits.open_window_pause_min * 60.0
        return float(self._limits.dwell_s)

    def _stop(self, track: _Track, inputs: SafetyInputs) -> None:
        track.phase = _Phase.STOPPED
        if track.rule is Rule.OPEN_WINDOW:
            # The pause runs from the stop whatever the room does meanwhile.
            track.phase = _Phase.RESUMING
            track.clear_mono = inputs.mono

    def _advance(self, track: _Track, look: _Look, inputs: SafetyInputs) -> bool:
        """Move ``track`` on; True when it is over."""
        now = inputs.mono
        if track.phase is _Phase.PENDING:
            if look.clear:
                return True
            if now - track.since_mono >= self._grace(track.rule):
                self._stop(track, inputs)
            else:
                return False
        if track.rule is Rule.OPEN_WINDOW:
            assert track.clear_mono is not None
            return now - track.clear_mono >= self._dwell(track.rule)
        if track.phase is _Phase.STOPPED and look.clear:
            track.phase = _Phase.RESUMING
            track.clear_mono = now
        elif track.phase is _Phase.RESUMING and not look.clear:
            track.phase = _Phase.STOPPED
            track.clear_mono = None
        if track.phase is _Phase.RESUMING:
            assert track.clear_mono is not None
            return now - track.clear_mono >= self._dwell(track.rule)
        return False

    @staticmethod
    def _announce(track: _Track, inputs: SafetyInputs) -> bool:
        if track.quiet_until is None or track.announced:
            return True
        return inputs.mono >= track.quiet_until and track.phase is _Phase.STOPPED

    def _end(self, key: str, inputs: SafetyInputs) -> list[Event]:
        """Forget ``key``'s event; the event as it ended, if it was ever reported."""
        track = self._tracks.pop(key)
        return [self._event(track, inputs)] if track.announced else []

    def _event(self, track: _Track, inputs: SafetyInputs) -> Event:
        def wall(mono: float) -> float:
            return inputs.wall + (mono - inputs.mono)

        stops_at = resumes_at = None
        if track.phase is _Phase.PENDING:
            stops_at = wall(track.since_mono + self._grace(track.rule))
        elif track.phase is _Phase.RESUMING:
            assert track.clear_mono is not None
            resumes_at = wall(track.clear_mono + self._dwell(track.rule))
        look = track.look
        assert look is not None
        if track.phase is _Phase.PENDING:
            message, at = look.pending, stops_at
        elif track.phase is _Phase.STOPPED:
            message, at = look.stopped, None
        else:
            message, at = look.resuming, resumes_at
        if at is not None:
            message = message.replace(LEFT, _duration(max(0.0, at - inputs.wall)))
        return Event(
            rule=track.rule,
            message=message,
            since_wall=track.since_wall,
            stops_at_wall=stops_at,
            resumes_at_wall=resumes_at,
        )

    # -- what each rule sees --------------------------------------------------------------------

    def _note_room(self, inputs: SafetyInputs) -> None:
        if inputs.room_c is None or inputs.room_wall is None:
            return
        if not self._room or inputs.room_wall > self._room[-1][0]:
            self._room.append((inputs.room_wall, inputs.room_c))
        # Keep the reading in force at the window's start: a thermometer that reports only
        # changes may have said 21 °C eight minutes ago and nothing since, until it says
        # 19.9 °C. Not one that was stale by then: a room unknown for a while may have cooled
        # at any time.
        cutoff = inputs.room_wall - OPEN_WINDOW_WINDOW_S
        while len(self._room) > 1 and self._room[1][0] <= cutoff:
            self._room.popleft()
        if self._room and self._room[0][0] < cutoff - self._limits.stale_after_s:
            self._room.popleft()

    def _room_fresh(self, inputs: SafetyInputs) -> float | None:
        if inputs.room_c is None or inputs.room_wall is None:
            return None
        if inputs.wall - inputs.room_wall > self._limits.stale_after_s:
            return None
        return inputs.room_c

    def _look(self, inputs: SafetyInputs) -> dict[str, _Look]:
        lim = self._limits
        grace = f"in {LEFT}"
        dwell = _duration(lim.dwell_s)
        looks: dict[str, _Look] = {"sensor": self._look_sensors(inputs)}
        self._sample_seen = self._sample_seen or inputs.sample_mono is not None
        for g in inputs.gpus:
            self._gpus_seen.add(g.index)
            hi, lo = effective_gpu_limits(lim, g.slowdown_c)
            name = f"GPU {g.index}" if len(inputs.gpus) > 1 else "The GPU"
            looks[f"gpu:{g.index}"] = _temperature(
                g.temp_c, hi, lo, name=name, grace=grace, dwell=dwell
            )
            looks[f"fan:{g.index}"] = self._look_fan(g, hi, name, inputs.computing, grace)
        if inputs.cpu_temp_c is not None:
            self._cpu_seen = True
        # A CPU temperature never read (virtual machines, many laptops) is no rule at all: the
        # CPU throttles itself. One that vanishes is a sensor error, and its event, if any,
        # holds (see _unseen).
        if inputs.cpu_temp_c is not None:
            looks["cpu"] = _temperature(
                inputs.cpu_temp_c,
                lim.cpu_max_c,
                lim.cpu_resume_c,
                name="The processor",
                grace=grace,
                dwell=dwell,
            )
        room = self._room_fresh(inputs)
        if room is not None:
            looks["room"] = _room_hot(room, lim.room_max_c, grace=grace, dwell=dwell)
        if lim.open_window:
            looks["window"] = self._look_window(room, grace)
        if lim.stop_on_battery:
            on = inputs.on_battery
            looks["battery"] = _Look(
                trigger=on is True,
                clear=on is False,
                pending=(
                    f"The computer is running on its battery: computing stops {grace} "
                    "unless it is plugged in again."
                ),
                stopped=(
                    "The computer is running on its battery, so computing stopped to save it. "
                    "It resumes once the computer is plugged in."
                ),
                resuming=(
                    f"The computer is plugged in again: computing resumes in {LEFT} if it "
                    "stays plugged in."
                ),
            )
        names = ", ".join(dict.fromkeys(inputs.exclusive))
        looks["exclusive"] = _Look(
            trigger=bool(inputs.exclusive),
            clear=not inputs.exclusive,
            pending=f"Computing pauses {grace} to leave the machine to {names}.",
            stopped=(
                f"Computing is paused while {names} is running; it resumes {dwell} after it closes."
            ),
            resuming=f"The program has closed: computing resumes in {LEFT}.",
        )
        return looks

    def _look_sensors(self, inputs: SafetyInputs) -> _Look:
        problem: str | None = None
        if inputs.sample_error:
            problem = _sentence(inputs.sample_error)
        elif inputs.sample_mono is None:
            problem = "The sensors have not been read yet."
        elif (age := inputs.mono - inputs.sample_mono) > SAMPLE_MAX_AGE_S:
            problem = f"The sensors have not been read for {age:.1f} seconds."
        else:
            # A GPU whose temperature is unknown cannot be kept below its limit.
            now = {g.index for g in inputs.gpus if g.temp_c is not None}
            missing = sorted((self._gpus_seen | {g.index for g in inputs.gpus}) - now)
            if missing:
                which = ", ".join(str(i) for i in missing)
                gpus = "GPUs" if len(missing) > 1 else "GPU"
                problem = f"The temperature of {gpus} {which} cannot be read."
            elif self._cpu_seen and inputs.cpu_temp_c is None:
                problem = "The processor's temperature cannot be read."
        stopped = (
            f"{problem or 'The sensors failed.'} Computing stopped at once, as the temperatures "
            "cannot be watched; it resumes once the sensors read well again."
        )
        return _Look(
            trigger=problem is not None,
            clear=problem is None,
            pending=stopped,
            stopped=stopped,
            resuming=(
                f"The sensors read well again: computing resumes in {LEFT} if they keep doing so."
            ),
        )

    def _look_fan(
        self, g: GpuFacts, limit_c: float, name: str, computing: bool, grace: str
    ) -> _Look:
        hot = min(FAN_HOT_C, limit_c - FAN_HOT_BELOW_LIMIT_C)
        still = g.fan_pct is not None and g.fan_pct <= 0.0
        at = f"{g.temp_c:.0f} °C" if g.temp_c is not None else "an unknown temperature"
        fan = f"{name}'s fan"
        return _Look(
            trigger=computing and still and g.temp_c is not None and g.temp_c >= hot,
            clear=g.fan_pct is not None and g.fan_pct > 0.0,
            pending=(
                f"{fan} stands still at {at}: computing stops {grace} unless it starts turning."
            ),
            stopped=(
                f"{fan} stood still while the card was hot, so computing stopped. It stays "
                "stopped until the fan is seen turning: check that it is free and plugged "
                "in, then restart Heatshare."
            ),
            resuming=(f"{fan} turns again: computing resumes in {LEFT} if it keeps turning."),
        )

    def _look_window(self, room: float | None, grace: str) -> _Look:
        drop = 0.0
        if room is not None and self._room:
            drop = max(c for _, c in self._room) - room
        lim = self._limits
        pause = _duration(lim.open_window_pause_min * 60.0)
        return _Look(
            trigger=room is not None and drop >= lim.open_window_drop_c,
            clear=room is not None and drop < lim.open_window_drop_c,
            pending=(
                f"The room cooled by {drop:.1f} °C within five minutes, as when a window is "
                f"open: heating stops {grace} unless it warms again."
            ),
            stopped=(
                f"The room cooled fast, as when a window is open, so heating stopped for {pause}."
            ),
            resuming=(
                f"The room cooled fast, as when a window is open, so heating is paused for "
                f"{pause}; it resumes in {LEFT}."
            ),
        )


# -- helpers ------------------------------------------------------------------------------------


def _rule_of(key: str) -> Rule:
    return {
        "sensor": Rule.SENSOR_ERROR,
        "gpu": Rule.GPU_HOT,
        "fan": Rule.FAN_FAILURE,
        "cpu": Rule.CPU_HOT,
        "room": Rule.ROOM_HOT,
        "window": Rule.OPEN_WINDOW,
        "battery": Rule.ON_BATTERY,
        "exclusive": Rule.EXCLUSIVE_APP,
    }[key.split(":", 1)[0]]


def _switched_off(key: str, limits: Limits) -> bool:
    rule = _rule_of(key)
    return (rule is Rule.OPEN_WINDOW and not limits.open_window) or (
        rule is Rule.ON_BATTERY and not limits.stop_on_battery
    )


def _unknown(look: _Look) -> _Look:
    return _Look(False, False, look.pending, look.stopped, look.resuming)


def _temperature(
    temp_c: float | None, max_c: float, resume_c: float, *, name: str, grace: str, dwell: str
) -> _Look:
    at = f"{temp_c:.0f} °C" if temp_c is not None else "an unknown temperature"
    return _Look(
        trigger=temp_c is not None and temp_c > max_c,
        clear=temp_c is not None and temp_c <= resume_c,
        pending=(
            f"{name} went above its {max_c:.0f} °C limit ({at} now): computing stops {grace} "
            f"unless it cools to {resume_c:.0f} °C."
        ),
        stopped=(
            f"{name} went above its {max_c:.0f} °C limit ({at} now), so computing stopped. "
            f"It resumes once it has stayed at or below {resume_c:.0f} °C for {dwell}."
        ),
        resuming=(
            f"{name} has cooled to {at}: computing resumes in {LEFT} if it stays at or "
            f"below {resume_c:.0f} °C."
        ),
    )


def _room_hot(room_c: float | None, max_c: float, *, grace: str, dwell: str) -> _Look:
    resume = max_c - ROOM_RESUME_BAND_C
    at = f"{room_c:.1f} °C" if room_c is not None else "an unknown temperature"
    return _Look(
        trigger=room_c is not None and room_c > max_c,
        clear=room_c is not None and room_c <= resume,
        pending=(
            f"The room went above {max_c:.1f} °C ({at} now): heating stops {grace} "
            f"unless it cools to {resume:.1f} °C."
        ),
        stopped=(
            f"The room went above {max_c:.1f} °C ({at} now), so heating stopped. It resumes "
            f"once the room has stayed at or below {resume:.1f} °C for {dwell}."
        ),
        resuming=(
            f"The room has cooled to {at}: heating resumes in {LEFT} if it stays at or "
            f"below {resume:.1f} °C."
        ),
    )


def _duration(seconds: float) -> str:
    """``"10 seconds"``, ``"2 minutes"``, ``"2 hours 30 minutes"``.

    Seconds round up: a countdown shows "1 second" to its last moment, never "0 seconds".
    """
    s = math.ceil(seconds - 1e-6)
    if s < 120:
        return f"{s} second{'s' if s != 1 else ''}"
    m = round(s / 60)
    if m < 120:
        return f"{m} minutes"
    h, m = divmod(m, 60)
    return f"{h} hours" + (f" {m} minutes" if m else "")


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# -- the dust reminder --------------------------------------------------------------------------


class HourRow(NamedTuple):
    """One hour of a component's history; a plain 4-tuple in the same order works too."""

    wall: float  # the hour's start, UTC epoch seconds
    power_w: float | None  # the component's mean power that hour
    temp_c: float | None  # its mean temperature
    room_c: float | None  # the room's mean temperature (None: unknown; the hour is not used)


DUST_WEEK_S = 7 * 86400.0
DUST_MIN_SPAN_S = 14 * 86400.0  # a first and a last week that do not overlap
DUST_MIN_LOAD = 0.3  # of the highest power seen: idle hours say little about cooling
DUST_BIN_SHARE = 0.1  # power bins this share of the highest power wide (at least 5 W)
DUST_MIN_HOURS = 12  # matched hours needed in each of the two weeks
DUST_RISE_C = 5.0  # warmer than this at the same power: remind


def dust_trend(
    rows: Iterable[HourRow | tuple[float, float | None, float | None, float | None]],
    *,
    component: str = "GPU",
) -> str | None:
    """A reminder to clean the dust out when ``component`` now runs warmer at the same power.

    Compares the first week of ``rows`` (hourly means, any order) with the last: for hours at
    the same power (bins of a tenth of the highest power seen, loaded hours only), how far the
    component's temperature rose above the room's. Dust in a heatsink or fan shows as that rise
    creeping up over weeks at unchanged power.

    Returns:
        A sentence for the householder, or None when the rise has not grown by
        :data:`DUST_RISE_C` or there is too little history (two weeks, with twelve comparable
        hours in the first and in the last week).
    """
    good = sorted(
        HourRow(*r)
        for r in rows
        if r[1] is not None
        and r[2] is not None
        and r[3] is not None
        and all(math.isfinite(float(x)) for x in r if x is not None)
    )
    if len(good) < 2 or good[-1].wall - good[0].wall < DUST_MIN_SPAN_S:
        return None
    top = max(float(r.power_w or 0.0) for r in good)
    if top <= 0:
        return None
    width = max(5.0, top * DUST_BIN_SHARE)
    first_end = good[0].wall + DUST_WEEK_S
    last_start = good[-1].wall - DUST_WEEK_S
    early: dict[int, list[float]] = {}
    late: dict[int, list[float]] = {}
    for r in good:
        assert r.power_w is not None and r.temp_c is not None and r.room_c is not None
        if r.power_w < top * DUST_MIN_LOAD:
            continue
        rise = r.temp_c - r.room_c
        b = int(r.power_w // width)
        if r.wall < first_end:
            early.setdefault(b, []).append(rise)
        elif r.wall >= last_start:
            late.setdefault(b, []).append(rise)
    shared = early.keys() & late.keys()
    n_early = sum(len(early[b]) for b in shared)
    n_late = sum(len(late[b]) for b in shared)
    if n_early < DUST_MIN_HOURS or n_late < DUST_MIN_HOURS:
        return None
    # Each bin weighs by its fewer side, so a bin seen once in a week cannot dominate.
    total = weight = 0.0
    for b in shared:
        w = min(len(early[b]), len(late[b]))
        total += w * (_mean(late[b]) - _mean(early[b]))
        weight += w
    growth = total / weight
    if growth < DUST_RISE_C:
        return None
    weeks = round((good[-1].wall - good[0].wall) / DUST_WEEK_S)
    return (
        f"The {component} now runs {growth:.0f} °C warmer above the room than {weeks} weeks "
        "ago at the same power: dust may be building up in its fans and heatsink. With the "
        "computer switched off and unplugged, blow the dust out of its fans and vents."
    )


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)

"""Which safety stops to announce: once per new stop, with its reason (no Qt; the tray shows them).

A stop is new when a safety event is past its grace period and has not been announced; an event
is known by its rule and when it began, so the same rule tripping again later is announced
again. A stop is announced once it has held for ``NOTICE_AFTER_S``: the agent holds the work
for a few seconds at its own start, until the sensors have been read, and a blip like that
shows on the page and the dashboard without a notification on the desktop; a real stop lasts
longer (the shortest dwell or pause is a minute or more). Where the agent reports a safety stop
without events (a summary only), the stop is announced once by its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from heatshare.gui.heating_text import RULE_TITLES, event_stopped
from heatshare.protocol.heating import HeatingStatus, HeatingSummary, SafetyEvent

NOTICE_AFTER_S = 15.0


def in_force_since(event: SafetyEvent) -> datetime:
    """When the stop itself began: the end of its grace period, or the trigger without one."""
    return event.stops_at or event.since


@dataclass(frozen=True, slots=True)
class Notice:
    title: str
    message: str


class SafetyNotices:
    """Remembers what was announced; ``from_status`` and ``from_summary`` say what is new."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, datetime]] = set()
        self._episode = False  # a safety stop announced and still in force

    def from_status(self, status: HeatingStatus, now: datetime) -> list[Notice]:
        """New stops in a ``GET /v1/heating`` answer."""
        stopped = [e for e in status.events if event_stopped(e, now)]
        keys = {(e.rule.value, e.since) for e in status.events}
        self._seen &= keys  # an event gone: its rule tripping again is a new stop
        out: list[Notice] = []
        held = timedelta(seconds=NOTICE_AFTER_S)
        for e in stopped:
            key = (e.rule.value, e.since)
            if key not in self._seen and now - in_force_since(e) >= held:
                self._seen.add(key)
                out.append(Notice(f"Heating stopped: {RULE_TITLES[e.rule].lower()}", e.message))
        if out or stopped:
            self._episode = self._episode or bool(out)
        elif status.safety_stop and not self._episode:
            self._episode = True
            out.append(Notice("Heating stopped for safety", status.reason))
        if not status.safety_stop:
            self._episode = False
        return out

    def recheck_in(self, status: HeatingStatus, now: datetime) -> float | None:
        """Seconds until a stop not yet announced has held long enough; None when none waits."""
        waits = [
            (in_force_since(e) - now).total_seconds() + NOTICE_AFTER_S
            for e in status.events
            if event_stopped(e, now) and (e.rule.value, e.since) not in self._seen
        ]
        return max(0.0, min(waits)) if waits else None

    def from_summary(self, summary: HeatingSummary | None) -> Notice | None:
        """A stop seen in ``GET /v1/status`` before its events are known (said only once)."""
        if summary is None or not summary.safety_stop:
            self._episode = False
            return None
        if self._episode:
            return None
        self._episode = True
        return Notice("Heating stopped for safety", summary.reason)

    def wants_details(
        self, summary: HeatingSummary | None, previous: HeatingSummary | None
    ) -> bool:
        """Whether a status poll should fetch the heating's events: a stop began or changed."""
        if summary is None or not summary.safety_stop:
            return False
        return previous is None or not previous.safety_stop or previous.reason != summary.reason

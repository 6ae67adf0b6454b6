"""A drift-free periodic sampler (nvitop's collector: ``next_snapshot += interval``).

Deadlines are fixed on a monotonic clock: deadline *k* is ``anchor + k × period`` however long
each tick takes, so a 1 s sampler takes 3600 samples an hour, not 3590. A tick that runs past
later deadlines skips them (no burst of catch-up ticks) and keeps the phase. A jump of the
clock far beyond the schedule (the machine slept) re-anchors the schedule at the present.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# A lateness above this many periods is not a slow tick but a gap: sleep and resume, a VM
# paused, a debugger stop.
GAP_PERIODS = 3
# Identical consecutive tick failures log their traceback once, then once per this many.
_REPEAT_EVERY = 60


class Sampler:
    """Calls ``tick`` every ``period_s`` on fixed deadlines until :meth:`stop`.

    Args:
        tick: the work of one sample; an exception is logged and sampling goes on.
        period_s: seconds between deadlines.
        mono: the monotonic clock the deadlines are on.
        wait: ``wait(seconds) -> stopped``, returning early with True once stopped; by default
            the wait of the sampler's own stop event (tests pass a fake clock's).
        name: the name logs (and :meth:`start`'s thread) carry.

    Attributes:
        ticks: ticks run, failed ones included.
        overruns: ticks that ended past the next deadline, making the sampler skip it.
        skipped: deadlines skipped by overruns.
        failures: ticks that raised.
        gaps: clock gaps that re-anchored the schedule.
    """

    def __init__(
        self,
        tick: Callable[[], None],
        *,
        period_s: float = 1.0,
        mono: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
        name: str = "sampler",
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period must be > 0 s, not {period_s}")
        self._tick = tick
        self.period_s = period_s
        self._mono = mono
        self._stopped = threading.Event()
        self._wait = wait if wait is not None else self._stopped.wait
        self.name = name
        self.ticks = 0
        self.overruns = 0
        self.skipped = 0
        self.failures = 0
        self.gaps = 0
        self._last_error: tuple[type[BaseException], str] | None = None
        self._repeats = 0

    def run(self) -> None:
        """Sample until :meth:`stop`; the first tick runs at once."""
        period = self.period_s
        deadline = self._mono()
        while not self._stopped.is_set():
            now = self._mono()
            if now < deadline:
                if self._wait(deadline - now):
                    break
                continue  # a wait may end early: look at the clock again
            late = now - deadline
            if late > GAP_PERIODS * period:
                self.gaps += 1
                log.info(
                    "%s: the clock jumped %.1f s past the schedule (sleep and resume?); "
                    "re-anchoring",
                    self.name,
                    late,
                )
                deadline = now
            self._run_tick()
            deadline += period
            after = self._mono()
            if after > deadline:
                # Past the next deadline (a slow tick, or a late wake-up): skip the deadlines
                # missed rather than burst through them, and keep the phase.
                missed = int((after - deadline) // period) + 1
                self.overruns += 1
                self.skipped += missed
                deadline += missed * period
                log.debug("%s: tick took %.3f s, skipping %d", self.name, after - now, missed)

    def _run_tick(self) -> None:
        self.ticks += 1
        try:
            self._tick()
        except Exception as exc:
            self.failures += 1
            key = (type(exc), str(exc))
            if key == self._last_error:
                self._repeats += 1
            else:
                self._last_error, self._repeats = key, 0
            if self._repeats % _REPEAT_EVERY == 0:
                again = f" (again: {self._repeats} times in a row)" if self._repeats else ""
                log.exception("%s: tick failed%s; sampling goes on", self.name, again)
            else:
                log.debug("%s: tick failed again: %r", self.name, exc)
        else:
            self._last_error, self._repeats = None, 0

    def stop(self) -> None:
        """Ask :meth:`run` to return; it does after the tick in progress, if any."""
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def start(self) -> threading.Thread:
        """Run on a new daemon thread named after the sampler, and return the thread."""
        thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        thread.start()
        return thread

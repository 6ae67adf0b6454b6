"""The sampler: fixed deadlines, no drift, skipping on overruns, gaps, failing ticks, stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from heatshare.agent.sampler import Sampler


class Clock:
    """A fake monotonic clock; waiting moves it on (plus whatever a test adds)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.waits: list[float] = []
        self.extra: Callable[[int], float] = lambda n: 0.0  # added to the n-th wait

    def mono(self) -> float:
        return self.t

    def wait(self, seconds: float) -> bool:
        assert seconds > 0
        self.waits.append(seconds)
        self.t += seconds + self.extra(len(self.waits))
        return False


def run(
    clock: Clock,
    n: int,
    work: Callable[[int], float] = lambda k: 0.0,
    *,
    period: float = 1.0,
    fail: Callable[[int], Exception | None] = lambda k: None,
) -> tuple[Sampler, list[float]]:
    """Run a sampler on ``clock`` for ``n`` ticks; tick k takes ``work(k)`` seconds."""
    starts: list[float] = []

    def tick() -> None:
        k = len(starts)
        starts.append(clock.t)
        clock.t += work(k)
        if len(starts) == n:
            sampler.stop()
        exc = fail(k)
        if exc is not None:
            raise exc

    sampler = Sampler(tick, period_s=period, mono=clock.mono, wait=clock.wait, name="test-sampler")
    sampler.run()
    return sampler, starts


def offsets(starts: list[float], t0: float = 1000.0, period: float = 1.0) -> list[float]:
    return [round(s - t0, 9) for s in starts]


def test_ticks_on_fixed_deadlines_whatever_each_tick_takes() -> None:
    clock = Clock()
    work = [0.3, 0.05, 0.9, 0.0, 0.5] * 20
    s, starts = run(clock, 100, lambda k: work[k])
    # Tick k starts at exactly k periods: the work time never shifts the schedule.
    assert offsets(starts) == [float(k) for k in range(100)]
    assert s.ticks == 100
    assert s.overruns == 0
    assert s.skipped == 0


def test_a_drifting_schedule_would_be_caught() -> None:
    """The check above is not vacuous: sleeping a period after each tick drifts."""
    t, starts = 0.0, []
    for _ in range(100):
        starts.append(t)
        t += 0.3  # the tick
        t += 1.0  # sleep(period)
    assert offsets(starts, t0=0.0) != [float(k) for k in range(100)]


def test_late_wake_ups_do_not_accumulate() -> None:
    clock = Clock()
    late = [0.0, 0.02, 0.07, 0.01, 0.0, 0.09, 0.03]
    clock.extra = lambda n: late[n % len(late)]  # every wait overshoots a little
    _, starts = run(clock, 50, lambda k: 0.2)
    for k, off in enumerate(offsets(starts)):
        assert k <= off < k + 0.1


def test_a_wait_that_returns_early_waits_again() -> None:
    clock = Clock()
    clock.extra = lambda n: -0.6 if n % 2 else 0.0  # every other wait ends 0.6 s early
    _, starts = run(clock, 10, lambda k: 0.1)
    assert offsets(starts) == [float(k) for k in range(10)]


def test_a_slow_tick_skips_missed_deadlines_rather_than_bursting() -> None:
    clock = Clock()
    s, starts = run(clock, 8, lambda k: 2.5 if k == 3 else 0.1)
    # Tick 3 runs from 3.0 to 5.5: deadlines 4 and 5 are skipped, and the phase is kept.
    assert offsets(starts) == [0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0]
    assert s.overruns == 1
    assert s.skipped == 2


def test_a_tick_ending_exactly_on_the_next_deadline_is_on_time() -> None:
    clock = Clock()
    s, starts = run(clock, 4, lambda k: 1.0)
    assert offsets(starts) == [0.0, 1.0, 2.0, 3.0]
    assert s.overruns == 0


def test_a_late_wake_up_below_the_gap_keeps_the_phase() -> None:
    clock = Clock()
    clock.extra = lambda n: 2.4 if n == 2 else 0.0  # 2.4 periods late: slow, not a gap
    s, starts = run(clock, 5, lambda k: 0.0)
    assert offsets(starts) == [0.0, 1.0, 4.4, 5.0, 6.0]
    assert s.gaps == 0


def test_a_clock_gap_re_anchors_the_schedule(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="heatshare.agent.sampler")
    clock = Clock()
    clock.extra = lambda n: 100.25 if n == 2 else 0.0  # asleep for 100 s during a wait
    s, starts = run(clock, 6, lambda k: 0.1)
    assert offsets(starts) == [0.0, 1.0, 102.25, 103.25, 104.25, 105.25]
    assert s.gaps == 1
    gap = [r for r in caplog.records if "re-anchoring" in r.getMessage()]
    assert len(gap) == 1
    assert gap[0].levelno == logging.INFO
    assert "test-sampler" in gap[0].getMessage()


def test_a_failing_tick_is_logged_with_its_traceback_and_sampling_goes_on(
    caplog: pytest.LogCaptureFixture, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"test-sampler: tick failed")
    clock = Clock()
    s, starts = run(clock, 6, fail=lambda k: RuntimeError("sensor broke") if k == 2 else None)
    assert offsets(starts) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert s.ticks == 6
    assert s.failures == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert "sensor broke" in caplog.text
    assert "Traceback" in caplog.text


def test_the_same_failure_every_tick_does_not_flood_the_log(
    caplog: pytest.LogCaptureFixture, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"test-sampler: tick failed")
    clock = Clock()
    s, _ = run(clock, 130, fail=lambda k: OSError("NVML gone"))
    assert s.failures == 130
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    # The first, then one each 60 in a row (at 60 and 120 repeats), each with a traceback.
    assert len(errors) == 3
    assert "again: 60 times in a row" in errors[1].getMessage()
    assert all(r.exc_info for r in errors)


def test_a_different_failure_is_logged_at_once(
    caplog: pytest.LogCaptureFixture, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"tick failed")
    clock = Clock()
    excs = [ValueError("a"), ValueError("a"), KeyError("b"), None, ValueError("a")]
    s, _ = run(clock, 5, fail=lambda k: excs[k])
    # a (logged), a again (a repeat: DEBUG), b (new: logged), a success, a (new again: logged)
    assert [r.exc_info[1] for r in caplog.records if r.levelno == logging.ERROR and r.exc_info] == [
        excs[0],
        excs[2],
        excs[4],
    ]
    assert s.failures == 4


def test_rejects_a_non_positive_period() -> None:
    with pytest.raises(ValueError, match="period"):
        Sampler(lambda: None, period_s=0.0)


def test_stop_wakes_a_real_wait_at_once() -> None:
    ticked = threading.Event()
    s = Sampler(ticked.set, period_s=30.0, name="stopper")
    thread = s.start()
    assert thread.name == "stopper"
    assert thread.daemon
    assert ticked.wait(5.0)  # the first tick runs at once
    t0 = time.monotonic()
    s.stop()
    thread.join(timeout=5.0)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 1.0  # not the 30 s period
    assert s.ticks == 1
    assert s.stopped


def test_real_clock_does_not_drift() -> None:
    period, n = 0.05, 20
    starts: list[float] = []
    done = threading.Event()

    def tick() -> None:
        starts.append(time.monotonic())
        time.sleep(0.02)  # a drifting sampler would add this to every period
        if len(starts) == n:
            done.set()

    s = Sampler(tick, period_s=period, name="real")
    thread = s.start()
    assert done.wait(10.0)
    s.stop()
    thread.join(timeout=5.0)
    elapsed = starts[n - 1] - starts[0]
    # On deadlines: 19 periods (0.95 s), never less; sleeping after each tick would take at
    # least 19 × 0.07 = 1.33 s. The margin allows a late wake-up or a skipped deadline.
    assert (n - 1) * period - 1e-3 <= elapsed < (n - 1) * period + 0.15

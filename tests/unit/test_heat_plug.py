"""Heat from a smart plug at the wall: the fallback order (plug, energy counters, estimate),
each interval booked once, counter deltas, resets, gaps, and a plug that goes away and comes back.
"""

from __future__ import annotations

import pytest

from heatshare.domain.heat import (
    IMPLAUSIBLE_FACTOR,
    PLUG_COUNTER_STEP_J,
    PLUG_MAX_POWER_W,
    EstimateModel,
    HeatAccountant,
    HeatTick,
    PlugReading,
)
from heatshare.domain.readings import GpuReading, HostReading, Provenance, RaplReading, Snapshot

MODEL = EstimateModel(cpu_idle_w=10.0, cpu_max_w=65.0)
WH = 3600.0  # joules
GONE = "The plug at 192.168.1.50 cannot be reached (connection refused)."


def snap(t: float, *, gpu_mj: int | None = None, cpu_pct: float = 50.0) -> Snapshot:
    """A machine with one GPU (energy counter) and a CPU read by the utilisation model."""
    gpus = ()
    if gpu_mj is not None:
        gpus = (
            GpuReading(
                index=0,
                name="Test GPU",
                uuid="GPU-0",
                power_w=200.0,
                energy_mj=gpu_mj,
                power_limit_max_w=350.0,
            ),
        )
    return Snapshot(
        mono_s=t, wall_ts=1_800_000_000.0 + t, host=HostReading(cpu_pct=cpu_pct), gpus=gpus
    )


def plug(power_w: float | None, total_wh: float | None) -> PlugReading:
    return PlugReading(power_w=power_w, energy_total_j=None if total_wh is None else total_wh * WH)


def acc() -> HeatAccountant:
    return HeatAccountant(estimate=MODEL)


def parts_energy(tick: HeatTick) -> float:
    return sum(c.energy_j for c in tick.components)


# -- no plug: nothing changes ------------------------------------------------------------------


def test_without_a_plug_the_tick_is_the_parts_and_says_nothing_of_a_plug() -> None:
    with_none, without = acc(), acc()
    for t, mj in [(0.0, 0), (1.0, 200_000), (2.0, 400_000)]:
        a = with_none.update(snap(t, gpu_mj=mj), None)
        b = without.update(snap(t, gpu_mj=mj))
        assert a == b
        assert a.plug is None
        assert a.plug_error is None
    assert b.provenance is Provenance.ESTIMATE  # the CPU model: the weakest part
    assert b.energy_j == pytest.approx(200.0 + 37.5)


# -- the plug measures -------------------------------------------------------------------------


def test_first_tick_shows_the_plug_power_and_books_nothing() -> None:
    t = acc().update(snap(0.0, gpu_mj=0), plug(250.0, 1000.0))
    assert t.provenance is Provenance.PLUG
    assert t.heat_w == 250.0
    assert t.energy_j == 0.0
    assert t.plug is not None
    assert t.plug.energy_j == 0.0


def test_energy_is_the_counter_delta_and_power_the_reading() -> None:
    a = acc()
    a.update(snap(0.0, gpu_mj=0), plug(250.0, 1000.0))
    t = a.update(snap(1.0, gpu_mj=200_000), plug(260.0, 1000.07))
    assert t.provenance is Provenance.PLUG
    assert t.energy_j == pytest.approx(0.07 * WH)  # 252 J: the counter, not 255 J of readings
    assert t.heat_w == 260.0
    # The parts are still accounted and shown: GPU counter 200 J, CPU model 37.5 J.
    assert parts_energy(t) == pytest.approx(237.5)
    assert t.component("gpu0") is not None
    assert t.plug_error is None


def test_a_coarse_counter_books_its_steps_and_the_total_is_exact() -> None:
    """Tasmota's total moves by 1 Wh: most ticks book nothing, the tick of a step books 3600 J,
    and the sum over the run is the counter's own difference."""
    a = acc()
    totals_kwh = [1.234] * 12 + [1.235] * 12 + [1.236]
    booked = 0.0
    for i, kwh in enumerate(totals_kwh):
        t = a.update(snap(float(i)), plug(300.0, kwh * 1000.0))
        assert t.provenance is Provenance.PLUG
        assert t.heat_w == 300.0
        assert t.energy_j >= 0.0
        booked += t.energy_j
    assert booked == pytest.approx(2 * WH)


def test_a_counter_step_within_a_short_interval_is_not_taken_for_a_reset() -> None:
    a = acc()
    a.update(snap(0.0), plug(40.0, 10.0))
    t = a.update(snap(0.25), plug(40.0, 11.0))  # one 1 Wh step after a quarter of a second
    assert t.energy_j == pytest.approx(WH)


def test_a_plug_without_a_counter_is_integrated_from_its_readings() -> None:
    a = acc()
    a.update(snap(0.0), plug(100.0, None))
    t = a.update(snap(2.0), plug(200.0, None))
    assert t.provenance is Provenance.PLUG
    assert t.energy_j == pytest.approx(300.0)  # trapezoid: (100 + 200) / 2 × 2 s


def test_a_counter_without_power_gives_the_counter_mean() -> None:
    a = acc()
    first = a.update(snap(0.0), plug(None, 50.0))
    # No power and no baseline: the parts carry the first tick.
    assert first.plug is None
    assert first.provenance is Provenance.ESTIMATE
    t = a.update(snap(2.0), plug(None, 50.2))
    assert t.provenance is Provenance.PLUG
    assert t.energy_j == pytest.approx(0.2 * WH)
    assert t.heat_w == pytest.approx(0.2 * WH / 2.0)


# -- resets --------------------------------------------------------------------------------------


def test_a_counter_that_goes_backwards_is_a_reset_never_negative_energy() -> None:
    a = acc()
    a.update(snap(0.0), plug(300.0, 5000.0))
    a.update(snap(1.0), plug(300.0, 5000.1))
    t = a.update(snap(2.0), plug(320.0, 0.002))  # the plug restarted: Shelly counts from zero
    assert t.provenance is Provenance.PLUG
    assert t.energy_j == pytest.approx(310.0)  # the readings over that second, not -5000 Wh
    after = a.update(snap(3.0), plug(320.0, 0.09))
    assert after.energy_j == pytest.approx((0.09 - 0.002) * WH)  # the new value is the baseline


def test_a_counter_that_leaps_is_a_reset() -> None:
    a = acc()
    a.update(snap(0.0), plug(300.0, 10.0))
    ceiling = PLUG_MAX_POWER_W * IMPLAUSIBLE_FACTOR + PLUG_COUNTER_STEP_J
    leap_wh = 10.0 + (ceiling + 1.0) / WH
    t = a.update(snap(1.0), plug(300.0, leap_wh))  # another plug's total, or a replaced counter
    assert t.energy_j == pytest.approx(300.0)
    t = a.update(snap(2.0), plug(300.0, leap_wh + 0.08))
    assert t.energy_j == pytest.approx(0.08 * WH)


def test_forget_plug_drops_the_baseline() -> None:
    a = acc()
    a.update(snap(0.0), plug(300.0, 100.0))
    a.forget_plug()  # another plug set up, its counter a little above the old one's
    t = a.update(snap(1.0), plug(280.0, 100.5))
    assert t.energy_j == pytest.approx(280.0)  # its reading held over the interval, not 0.5 Wh


# -- the fallback order --------------------------------------------------------------------------


def test_plug_then_counters_then_estimate_and_back() -> None:
    a = acc()
    a.update(snap(0.0, gpu_mj=0), plug(300.0, 100.0))
    t = a.update(snap(1.0, gpu_mj=200_000), plug(300.0, 100.08))
    assert t.provenance is Provenance.PLUG

    # The plug goes away: the parts book at once, with their own baselines unbroken.
    t = a.update(snap(2.0, gpu_mj=400_000), PlugReading(error=GONE))
    assert t.plug is None
    assert t.plug_error == GONE
    assert t.provenance is Provenance.ESTIMATE  # GPU by its counter, CPU by the model
    assert t.energy_j == pytest.approx(200.0 + 37.5)
    assert t.heat_w == pytest.approx(200.0 + 37.5)

    # The GPU's counter goes too: the estimate is all there is for the CPU, nothing for the GPU.
    t = a.update(snap(3.0), PlugReading(error=GONE))
    assert t.provenance is Provenance.ESTIMATE
    assert t.energy_j == pytest.approx(37.5)

    # The plug comes back, its counter moved on meanwhile: that spell is not booked twice. Its
    # first interval holds its reading; the next is its counter's delta.
    t = a.update(snap(4.0), plug(310.0, 100.5))
    assert t.provenance is Provenance.PLUG
    assert t.energy_j == pytest.approx(310.0)
    t = a.update(snap(5.0), plug(300.0, 100.58))
    assert t.energy_j == pytest.approx(0.08 * WH)


def test_counters_rank_before_the_estimate_when_the_plug_is_gone() -> None:
    a = acc()
    rapl = (RaplReading("package-0", 1_000_000, 262_143_328_850),)
    s0 = Snapshot(mono_s=0.0, wall_ts=0.0, host=HostReading(cpu_pct=50.0), rapl=rapl)
    rapl1 = (RaplReading("package-0", 66_000_000, 262_143_328_850),)
    s1 = Snapshot(mono_s=1.0, wall_ts=1.0, host=HostReading(cpu_pct=50.0), rapl=rapl1)
    a.update(s0, plug(100.0, 1.0))
    t = a.update(s1, PlugReading(error=GONE))
    assert t.provenance is Provenance.ENERGY_COUNTER
    assert t.energy_j == pytest.approx(65.0)


def test_a_reading_with_nothing_in_it_is_no_source() -> None:
    a = acc()
    a.update(snap(0.0), plug(100.0, 1.0))
    t = a.update(snap(1.0), PlugReading())
    assert t.plug is None
    assert t.provenance is Provenance.ESTIMATE
    assert t.plug_error == "The plug gave neither a power nor an energy reading."


def test_each_interval_is_booked_once_across_outages() -> None:
    """Over a run with the plug coming and going, the energy booked is the plug's counter
    difference over its spells plus the parts' energy over the rest, interval by interval."""
    a = acc()
    script: list[tuple[float, float | None]] = [
        (100.0, 300.0),
        (100.1, 300.0),
        (None, 0.0),  # gone
        (None, 0.0),
        (100.5, 300.0),  # back: its reading held over the interval
        (100.6, 300.0),
        (100.7, 300.0),
    ]
    expected = [0.0, 0.1 * WH, 37.5, 37.5, 300.0, 0.1 * WH, 0.1 * WH]
    for i, ((total, power), want) in enumerate(zip(script, expected, strict=True)):
        reading = PlugReading(error=GONE) if total is None else plug(power, total)
        t = a.update(snap(float(i)), reading)
        assert t.energy_j == pytest.approx(want), f"tick {i}"


# -- gaps ----------------------------------------------------------------------------------------


def test_a_gap_books_nothing_and_restarts_the_baseline() -> None:
    a = acc()
    a.update(snap(0.0), plug(300.0, 100.0))
    # A minute asleep or stalled: the tick has no interval, so what the plug counted meanwhile
    # is not booked (as for every source), and its counter is the new baseline.
    t = a.update(snap(60.0), plug(300.0, 105.0))
    assert t.dt_s == 0.0
    assert t.energy_j == 0.0
    assert t.heat_w == 300.0
    t = a.update(snap(61.0), plug(300.0, 105.08))
    assert t.energy_j == pytest.approx(0.08 * WH)

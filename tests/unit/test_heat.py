"""Heat accounting: counters, resets, wrap-around, gaps, missing fields, provenance."""

from __future__ import annotations

import math

import pytest

from heatshare.domain.heat import (
    IMPLAUSIBLE_FACTOR,
    UNKNOWN_MAX_POWER_W,
    ComponentPower,
    EstimateModel,
    HeatAccountant,
    HeatTick,
)
from heatshare.domain.readings import GpuReading, HostReading, Provenance, RaplReading, Snapshot

MODEL = EstimateModel(cpu_idle_w=10.0, cpu_max_w=65.0)


def gpu(
    index: int = 0,
    *,
    power_w: float | None = None,
    energy_mj: int | None = None,
    limit_max_w: float | None = 350.0,
    uuid: str | None = None,
) -> GpuReading:
    return GpuReading(
        index=index,
        name="Test GPU",
        uuid=uuid if uuid is not None else f"GPU-{index}",
        power_w=power_w,
        energy_mj=energy_mj,
        power_limit_max_w=limit_max_w,
    )


def snap(
    t: float,
    *gpus: GpuReading,
    cpu_pct: float | None = None,
    rapl: tuple[RaplReading, ...] = (),
) -> Snapshot:
    return Snapshot(
        mono_s=t,
        wall_ts=1_800_000_000.0 + t,
        host=HostReading(cpu_pct=cpu_pct),
        gpus=gpus,
        rapl=rapl,
    )


def acc(**kw: float) -> HeatAccountant:
    return HeatAccountant(estimate=MODEL, **kw)


def comp(tick: HeatTick, name: str) -> ComponentPower:
    c = tick.component(name)
    assert c is not None, f"no component {name} in {tick.components}"
    return c


def assert_consistent(tick: HeatTick) -> None:
    """Invariants every tick keeps: energy adds up, and power × dt is energy."""
    assert tick.energy_j == pytest.approx(sum(c.energy_j for c in tick.components))
    known = [c for c in tick.components if c.power_w is not None]
    if known:
        assert tick.heat_w == pytest.approx(sum(c.power_w for c in known if c.power_w is not None))
        assert tick.provenance is max(
            (c.provenance for c in known if c.provenance is not None), key=lambda p: p.rank
        )
    else:
        assert tick.heat_w is None
        assert tick.provenance is None
    for c in tick.components:
        assert (c.power_w is None) == (c.provenance is None)
        if tick.dt_s > 0 and c.power_w is not None:
            assert c.energy_j == pytest.approx(c.power_w * tick.dt_s)
        if tick.dt_s == 0:
            assert c.energy_j == 0.0


# -- the estimate model -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pct", "watts"), [(0.0, 10.0), (50.0, 37.5), (100.0, 65.0), (-5.0, 10.0), (140.0, 65.0)]
)
def test_estimate_model_is_linear_and_clamped(pct: float, watts: float) -> None:
    assert MODEL.cpu_power_w(pct) == pytest.approx(watts)


# -- GPU: the energy counter ------------------------------------------------------------------


def test_first_tick_reports_power_but_integrates_nothing() -> None:
    a = acc()
    t = a.update(snap(100.0, gpu(power_w=120.0, energy_mj=5_000_000)))
    assert t.dt_s == 0.0
    assert t.energy_j == 0.0
    g = comp(t, "gpu0")
    # No interval yet, so the counter cannot give a power: the instantaneous reading does.
    assert g.power_w == 120.0
    assert g.provenance is Provenance.POWER_READING
    assert_consistent(t)


def test_counter_delta_gives_energy_and_average_power() -> None:
    a = acc()
    a.update(snap(0.0, gpu(power_w=100.0, energy_mj=1_000_000)))
    t = a.update(snap(1.0, gpu(power_w=300.0, energy_mj=1_250_000)))
    g = comp(t, "gpu0")
    assert g.provenance is Provenance.ENERGY_COUNTER
    assert g.energy_j == pytest.approx(250.0)  # 250 000 mJ
    assert g.power_w == pytest.approx(250.0)  # the counter wins over the readings (100, 300)
    assert t.dt_s == 1.0
    assert t.energy_j == pytest.approx(250.0)
    assert t.provenance is Provenance.ENERGY_COUNTER
    assert_consistent(t)


def test_counter_over_uneven_intervals() -> None:
    a = acc()
    a.update(snap(10.0, gpu(energy_mj=0)))
    t = a.update(snap(10.5, gpu(energy_mj=100_000)))
    assert comp(t, "gpu0").power_w == pytest.approx(200.0)
    t = a.update(snap(12.5, gpu(energy_mj=300_000)))
    assert comp(t, "gpu0").power_w == pytest.approx(100.0)
    assert t.energy_j == pytest.approx(200.0)
    assert_consistent(t)


def test_counter_standing_still_is_zero_power_not_missing() -> None:
    a = acc()
    a.update(snap(0.0, gpu(power_w=20.0, energy_mj=7_000)))
    t = a.update(snap(1.0, gpu(power_w=20.0, energy_mj=7_000)))
    g = comp(t, "gpu0")
    assert g.provenance is Provenance.ENERGY_COUNTER
    assert g.power_w == 0.0


def test_counter_going_backwards_is_a_reset_and_falls_back_to_power_readings() -> None:
    a = acc()
    a.update(snap(0.0, gpu(power_w=100.0, energy_mj=9_000_000)))
    # The driver reloaded: the counter starts again near zero.
    t = a.update(snap(1.0, gpu(power_w=140.0, energy_mj=50)))
    g = comp(t, "gpu0")
    assert g.provenance is Provenance.POWER_READING
    assert g.energy_j == pytest.approx((100.0 + 140.0) / 2 * 1.0)  # trapezoid
    assert_consistent(t)
    # The counter re-baselined at 50 mJ: the next interval is counted again.
    t = a.update(snap(2.0, gpu(power_w=150.0, energy_mj=50 + 145_000)))
    g = comp(t, "gpu0")
    assert g.provenance is Provenance.ENERGY_COUNTER
    assert g.energy_j == pytest.approx(145.0)


def test_implausible_jump_uses_the_cards_maximum_power_limit() -> None:
    limit = 350.0
    ceiling_mj = int(limit * 2.0 * IMPLAUSIBLE_FACTOR * 1000)  # over a 2 s interval
    a = acc()
    a.update(snap(0.0, gpu(power_w=300.0, energy_mj=0, limit_max_w=limit)))
    t = a.update(snap(2.0, gpu(power_w=320.0, energy_mj=ceiling_mj, limit_max_w=limit)))
    assert comp(t, "gpu0").provenance is Provenance.ENERGY_COUNTER  # at the ceiling: allowed
    t = a.update(snap(4.0, gpu(power_w=320.0, energy_mj=2 * ceiling_mj + 1, limit_max_w=limit)))
    g = comp(t, "gpu0")
    assert g.provenance is Provenance.POWER_READING  # a hair above: a reset
    assert g.power_w == pytest.approx(320.0)
    t = a.update(snap(5.0, gpu(power_w=300.0, energy_mj=2 * ceiling_mj + 1 + 310_000)))
    assert comp(t, "gpu0").provenance is Provenance.ENERGY_COUNTER
    assert comp(t, "gpu0").power_w == pytest.approx(310.0)


def test_implausible_jump_without_a_known_limit_uses_1500_w() -> None:
    assert UNKNOWN_MAX_POWER_W == 1500.0
    a = acc()
    a.update(snap(0.0, gpu(power_w=500.0, energy_mj=0, limit_max_w=None)))
    # 2000 W over 1 s is within 1500 W × 1.5 (a card the sensor knows no limit of)...
    t = a.update(snap(1.0, gpu(power_w=500.0, energy_mj=2_000_000, limit_max_w=None)))
    assert comp(t, "gpu0").provenance is Provenance.ENERGY_COUNTER
    # ...2300 W is not.
    t = a.update(snap(2.0, gpu(power_w=500.0, energy_mj=4_300_000, limit_max_w=None)))
    assert comp(t, "gpu0").provenance is Provenance.POWER_READING


def test_counter_reset_with_no_power_readings_is_unknown() -> None:
    a = acc()
    a.update(snap(0.0, gpu(energy_mj=5_000_000)))
    t = a.update(snap(1.0, gpu(energy_mj=10)))
    g = comp(t, "gpu0")
    assert g.power_w is None
    assert g.provenance is None
    assert g.energy_j == 0.0
    assert t.heat_w is None  # nothing else is known either
    assert_consistent(t)


def test_a_counter_read_every_few_ticks_books_the_whole_span_when_read() -> None:
    """The sensor reads the (slow) counter every 5 ticks: totals stay exactly the counter's."""
    a = acc()
    a.update(snap(0.0, gpu(power_w=80.0, energy_mj=1_000)))
    booked = []
    for second in range(1, 5):  # not read: nothing booked, the power reading shown
        t = a.update(snap(float(second), gpu(power_w=300.0 + second)))
        g = comp(t, "gpu0")
        assert g.provenance is Provenance.ENERGY_COUNTER
        assert g.power_w == 300.0 + second
        booked.append(g.energy_j)
    t = a.update(snap(5.0, gpu(power_w=310.0, energy_mj=1_000 + 1_500_000)))
    g = comp(t, "gpu0")
    booked.append(g.energy_j)
    assert g.provenance is Provenance.ENERGY_COUNTER
    assert g.power_w == pytest.approx(300.0)  # the counter's mean over its 5 s span
    assert booked == [0.0, 0.0, 0.0, 0.0, pytest.approx(1500.0)]


def test_a_span_without_power_readings_shows_the_counters_last_mean() -> None:
    a = acc()
    a.update(snap(0.0, gpu(energy_mj=0)))
    a.update(snap(1.0, gpu(energy_mj=250_000)))
    t = a.update(snap(2.0, gpu()))  # neither read this tick
    assert comp(t, "gpu0").power_w == pytest.approx(250.0)
    assert comp(t, "gpu0").energy_j == 0.0


def test_a_reset_within_a_span_books_the_spans_power_readings() -> None:
    a = acc()
    a.update(snap(0.0, gpu(power_w=100.0, energy_mj=900_000)))
    a.update(snap(1.0, gpu(power_w=200.0)))
    t = a.update(snap(2.0, gpu(power_w=200.0, energy_mj=5_000)))  # driver reload: went back
    g = comp(t, "gpu0")
    assert g.provenance is Provenance.POWER_READING
    assert g.energy_j == pytest.approx(150.0 + 200.0)  # trapezoids over both seconds
    t = a.update(snap(3.0, gpu(power_w=200.0, energy_mj=205_000)))  # the new baseline holds
    assert comp(t, "gpu0").provenance is Provenance.ENERGY_COUNTER
    assert comp(t, "gpu0").energy_j == pytest.approx(200.0)


def test_a_gap_within_a_span_restarts_the_baseline() -> None:
    a = acc()
    a.update(snap(0.0, gpu(power_w=100.0, energy_mj=0)))
    a.update(snap(1.0, gpu(power_w=100.0)))
    t = a.update(snap(60.0, gpu(power_w=100.0)))  # asleep for a minute
    assert comp(t, "gpu0").energy_j == 0.0
    # No counter read since the gap: power readings until one is.
    t = a.update(snap(61.0, gpu(power_w=100.0, energy_mj=7_000_000)))
    assert comp(t, "gpu0").provenance is Provenance.POWER_READING
    assert comp(t, "gpu0").energy_j == pytest.approx(100.0)
    t = a.update(snap(62.0, gpu(power_w=100.0, energy_mj=7_100_000)))
    assert comp(t, "gpu0").provenance is Provenance.ENERGY_COUNTER
    assert comp(t, "gpu0").energy_j == pytest.approx(100.0)


# -- GPU: power readings only -----------------------------------------------------------------


def test_no_counter_integrates_power_readings_with_the_trapezoid_rule() -> None:
    a = acc()
    a.update(snap(0.0, gpu(power_w=100.0)))
    t = a.update(snap(2.0, gpu(power_w=200.0)))
    g = comp(t, "gpu0")
    assert g.provenance is Provenance.POWER_READING
    assert g.energy_j == pytest.approx(300.0)  # (100 + 200) / 2 × 2 s
    assert g.power_w == pytest.approx(150.0)  # the interval's mean, so power × dt = energy
    assert_consistent(t)


def test_one_missing_power_reading_holds_the_other_over_the_interval() -> None:
    a = acc()
    a.update(snap(0.0, gpu()))
    t = a.update(snap(1.0, gpu(power_w=60.0)))
    assert comp(t, "gpu0").energy_j == pytest.approx(60.0)
    t = a.update(snap(2.0, gpu()))
    assert comp(t, "gpu0").energy_j == pytest.approx(60.0)
    assert comp(t, "gpu0").provenance is Provenance.POWER_READING


def test_gpu_without_power_or_counter_is_none_never_estimated() -> None:
    a = acc()
    a.update(snap(0.0, gpu(), cpu_pct=50.0))
    a.update(snap(1.0, gpu(), cpu_pct=50.0))
    t = a.update(snap(2.0, gpu(), cpu_pct=50.0))
    g = comp(t, "gpu0")
    assert g.power_w is None
    assert g.provenance is None
    # The total counts what is known (the CPU's estimate) and says so.
    assert t.heat_w == pytest.approx(37.5)
    assert t.provenance is Provenance.ESTIMATE
    assert_consistent(t)


# -- gaps -------------------------------------------------------------------------------------


def test_gap_longer_than_max_gap_integrates_nothing_and_rebaselines() -> None:
    a = acc(max_gap_s=5.0)
    a.update(snap(0.0, gpu(power_w=100.0, energy_mj=0), cpu_pct=100.0))
    t = a.update(snap(5.0, gpu(power_w=100.0, energy_mj=500_000), cpu_pct=100.0))
    assert t.dt_s == 5.0  # exactly the limit still counts
    assert t.energy_j == pytest.approx(500.0 + 65.0 * 5)
    # Asleep for an hour: the counter moved, but the interval is not integrated.
    t = a.update(snap(3605.0, gpu(power_w=110.0, energy_mj=900_000), cpu_pct=100.0))
    assert t.dt_s == 0.0
    assert t.energy_j == 0.0
    assert comp(t, "gpu0").power_w == 110.0  # power is still reported
    assert comp(t, "gpu0").provenance is Provenance.POWER_READING
    assert comp(t, "cpu").power_w == pytest.approx(65.0)
    assert_consistent(t)
    # The next tick integrates from the new baseline.
    t = a.update(snap(3606.0, gpu(power_w=110.0, energy_mj=1_010_000), cpu_pct=100.0))
    assert comp(t, "gpu0").energy_j == pytest.approx(110.0)
    assert comp(t, "gpu0").provenance is Provenance.ENERGY_COUNTER


@pytest.mark.parametrize("t1", [100.0, 99.0])
def test_clock_standing_still_or_going_back_integrates_nothing(t1: float) -> None:
    a = acc()
    a.update(snap(100.0, gpu(power_w=100.0, energy_mj=0)))
    t = a.update(snap(t1, gpu(power_w=100.0, energy_mj=100_000)))
    assert t.dt_s == 0.0
    assert t.energy_j == 0.0
    assert not any(math.isinf(c.power_w or 0.0) for c in t.components)


# -- CPU --------------------------------------------------------------------------------------


def rapl(name: str, uj: int, max_uj: int = 262_143_328_850) -> RaplReading:
    return RaplReading(name, uj, max_uj)


def test_cpu_estimate_from_utilisation_is_labelled_an_estimate() -> None:
    a = acc()
    t = a.update(snap(0.0, cpu_pct=50.0))
    c = comp(t, "cpu")
    assert c.power_w == pytest.approx(37.5)
    assert c.provenance is Provenance.ESTIMATE
    assert c.energy_j == 0.0
    t = a.update(snap(2.0, cpu_pct=0.0))
    assert comp(t, "cpu").energy_j == pytest.approx(20.0)  # idle 10 W × 2 s
    assert_consistent(t)


def test_cpu_without_utilisation_or_rapl_is_unknown() -> None:
    t = acc().update(snap(0.0))
    assert comp(t, "cpu").power_w is None
    assert t.heat_w is None
    assert t.provenance is None
    assert t.energy_j == 0.0


def test_rapl_packages_are_summed() -> None:
    a = acc()
    a.update(snap(0.0, cpu_pct=5.0, rapl=(rapl("package-0", 1_000_000), rapl("package-1", 0))))
    t = a.update(
        snap(2.0, cpu_pct=5.0, rapl=(rapl("package-0", 61_000_000), rapl("package-1", 40_000_000)))
    )
    c = comp(t, "cpu")
    assert c.provenance is Provenance.ENERGY_COUNTER
    assert c.energy_j == pytest.approx(100.0)  # 60 J + 40 J
    assert c.power_w == pytest.approx(50.0)
    assert_consistent(t)


def test_rapl_first_tick_falls_back_to_the_estimate() -> None:
    t = acc().update(snap(0.0, cpu_pct=100.0, rapl=(rapl("package-0", 5),)))
    assert comp(t, "cpu").provenance is Provenance.ESTIMATE
    assert comp(t, "cpu").power_w == pytest.approx(65.0)


def test_rapl_wrap_around_is_taken_modulo_the_range() -> None:
    max_uj = 262_143_328_850
    a = acc()
    a.update(snap(0.0, rapl=(rapl("package-0", max_uj - 10_000_000, max_uj),)))
    # Wrapped: 10 J up to the top, 1 µJ to pass it (the range is inclusive), then 15 J.
    t = a.update(snap(1.0, rapl=(rapl("package-0", 14_999_999, max_uj),)))
    c = comp(t, "cpu")
    assert c.provenance is Provenance.ENERGY_COUNTER
    assert c.energy_j == pytest.approx(25.0)


def test_rapl_counter_rebased_is_a_reset_not_a_wrap() -> None:
    a = acc()
    a.update(snap(0.0, cpu_pct=0.0, rapl=(rapl("package-0", 200_000_000_000),)))
    t = a.update(snap(1.0, cpu_pct=0.0, rapl=(rapl("package-0", 3_000_000),)))
    c = comp(t, "cpu")
    # Modulo the range this would be ~65 kJ in a second: a re-based counter, not energy.
    assert c.provenance is Provenance.ESTIMATE
    assert c.power_w == pytest.approx(10.0)
    t = a.update(snap(2.0, cpu_pct=0.0, rapl=(rapl("package-0", 23_000_000),)))
    assert comp(t, "cpu").provenance is Provenance.ENERGY_COUNTER
    assert comp(t, "cpu").energy_j == pytest.approx(20.0)


def test_rapl_with_a_package_missing_its_baseline_falls_back() -> None:
    a = acc()
    a.update(snap(0.0, cpu_pct=0.0, rapl=(rapl("package-0", 0),)))
    t = a.update(snap(1.0, cpu_pct=0.0, rapl=(rapl("package-0", 1_000_000), rapl("package-1", 0))))
    assert comp(t, "cpu").provenance is Provenance.ESTIMATE  # package-1 is new: no full sum
    t = a.update(
        snap(2.0, cpu_pct=0.0, rapl=(rapl("package-0", 2_000_000), rapl("package-1", 3_000_000)))
    )
    assert comp(t, "cpu").energy_j == pytest.approx(4.0)


def test_rapl_that_stops_answering_falls_back_to_the_estimate() -> None:
    a = acc()
    a.update(snap(0.0, cpu_pct=100.0, rapl=(rapl("package-0", 0),)))
    t = a.update(snap(1.0, cpu_pct=100.0))
    assert comp(t, "cpu").provenance is Provenance.ESTIMATE
    assert comp(t, "cpu").energy_j == pytest.approx(65.0)


# -- rest of system, totals, provenance ------------------------------------------------------


def test_rest_of_system_is_added_only_when_above_zero() -> None:
    t = acc(rest_of_system_w=0.0).update(snap(0.0, cpu_pct=0.0))
    assert [c.name for c in t.components] == ["cpu"]
    a = acc(rest_of_system_w=30.0)
    a.update(snap(0.0, cpu_pct=0.0))
    t = a.update(snap(1.0, cpu_pct=0.0))
    rest = comp(t, "rest")
    assert rest.power_w == 30.0
    assert rest.provenance is Provenance.ESTIMATE  # a configured figure, not a measurement
    assert rest.energy_j == pytest.approx(30.0)
    assert t.heat_w == pytest.approx(40.0)
    assert_consistent(t)


def test_configure_changes_figures_and_keeps_baselines() -> None:
    a = acc()
    a.update(snap(0.0, gpu(energy_mj=0), cpu_pct=100.0))
    a.configure(estimate=EstimateModel(cpu_idle_w=5.0, cpu_max_w=95.0), rest_of_system_w=12.0)
    t = a.update(snap(1.0, gpu(energy_mj=200_000), cpu_pct=100.0))
    assert comp(t, "gpu0").provenance is Provenance.ENERGY_COUNTER  # baseline kept
    assert comp(t, "cpu").power_w == pytest.approx(95.0)
    assert comp(t, "rest").power_w == 12.0
    assert t.heat_w == pytest.approx(200.0 + 95.0 + 12.0)


def test_total_provenance_is_the_worst_contributor() -> None:
    a = acc()
    r0 = (rapl("package-0", 0),)
    r1 = (rapl("package-0", 30_000_000),)
    a.update(snap(0.0, gpu(0, energy_mj=0), rapl=r0))
    t = a.update(snap(1.0, gpu(0, energy_mj=100_000), rapl=r1))
    assert t.provenance is Provenance.ENERGY_COUNTER  # counters throughout
    assert t.heat_w == pytest.approx(130.0)

    a = acc()
    a.update(snap(0.0, gpu(0, energy_mj=0), gpu(1, power_w=50.0), rapl=r0))
    t = a.update(snap(1.0, gpu(0, energy_mj=100_000), gpu(1, power_w=70.0), rapl=r1))
    assert t.provenance is Provenance.POWER_READING  # gpu1 has readings only
    assert_consistent(t)

    a = acc()
    a.update(snap(0.0, gpu(0, energy_mj=0), gpu(1, power_w=50.0), cpu_pct=0.0))
    t = a.update(snap(1.0, gpu(0, energy_mj=100_000), gpu(1, power_w=70.0), cpu_pct=0.0))
    assert t.provenance is Provenance.ESTIMATE  # the CPU is estimated
    assert t.heat_w == pytest.approx(100.0 + 60.0 + 10.0)
    assert_consistent(t)


def test_an_unknown_component_does_not_worsen_the_total_provenance() -> None:
    a = acc()
    a.update(snap(0.0, gpu(0, energy_mj=0), gpu(1), rapl=(rapl("package-0", 0),)))
    t = a.update(snap(1.0, gpu(0, energy_mj=50_000), gpu(1), rapl=(rapl("package-0", 10_000_000),)))
    assert comp(t, "gpu1").power_w is None
    assert t.provenance is Provenance.ENERGY_COUNTER
    assert t.heat_w == pytest.approx(60.0)


# -- several GPUs ------------------------------------------------------------------------------


def test_multi_gpu_each_card_has_its_own_baseline_and_name() -> None:
    a = acc()
    a.update(snap(0.0, gpu(0, energy_mj=1_000_000), gpu(1, energy_mj=9_000_000), cpu_pct=0.0))
    t = a.update(snap(1.0, gpu(0, energy_mj=1_300_000), gpu(1, energy_mj=9_100_000), cpu_pct=0.0))
    assert [c.name for c in t.components] == ["gpu0", "gpu1", "cpu"]
    assert comp(t, "gpu0").power_w == pytest.approx(300.0)
    assert comp(t, "gpu1").power_w == pytest.approx(100.0)
    assert t.energy_j == pytest.approx(410.0)
    assert_consistent(t)


def test_gpus_are_followed_by_uuid_when_the_driver_renumbers_them() -> None:
    a = acc()
    a.update(
        snap(0.0, gpu(0, energy_mj=1_000_000, uuid="A"), gpu(1, energy_mj=5_000_000, uuid="B"))
    )
    # After a driver change the same cards come back in the other order.
    t = a.update(
        snap(1.0, gpu(0, energy_mj=5_200_000, uuid="B"), gpu(1, energy_mj=1_100_000, uuid="A"))
    )
    assert comp(t, "gpu0").provenance is Provenance.ENERGY_COUNTER
    assert comp(t, "gpu0").power_w == pytest.approx(200.0)
    assert comp(t, "gpu1").power_w == pytest.approx(100.0)


def test_a_gpu_that_goes_away_and_returns_starts_from_no_baseline() -> None:
    a = acc()
    a.update(snap(0.0, gpu(0, power_w=50.0, energy_mj=0), gpu(1, power_w=60.0, energy_mj=0)))
    t = a.update(snap(1.0, gpu(0, power_w=50.0, energy_mj=50_000)))
    assert [c.name for c in t.components] == ["gpu0", "cpu"]
    t = a.update(snap(2.0, gpu(0, power_w=50.0, energy_mj=100_000), gpu(1, energy_mj=999_999)))
    g1 = comp(t, "gpu1")
    assert g1.power_w is None  # no baseline and no power reading: unknown, not 999 J
    assert g1.energy_j == 0.0


def test_energy_accumulates_over_many_ticks_like_the_counter() -> None:
    a = acc()
    total = 0.0
    energy = 10**9
    for k in range(100):
        energy += 1000 * (100 + k)  # 100 W rising by 1 W a second
        total += a.update(snap(float(k), gpu(energy_mj=energy))).energy_j
    assert total == pytest.approx(sum(100 + k for k in range(1, 100)))  # first tick: nothing

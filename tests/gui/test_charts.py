"""Charts fed with the agent's real answer shapes: raw seconds, rollups with min/max, live."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from heatshare.domain import series as S  # noqa: N812 (reads like the constants it holds)
from heatshare.gui.bridge import HistoryResult
from heatshare.gui.charts import RANGES, ChartPanel, break_gaps, lines_for
from heatshare.protocol.local_api import AgentStatus, HistoryResponse, SeriesData

NOW = 1_767_614_400.0  # 2026-01-05 12:00 UTC


class Requests:
    """Stands in for AgentBridge.request_history: records each request, hands out ids."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], float, float]] = []

    def __call__(self, series: Sequence[str], start: float, end: float) -> int:
        self.calls.append((list(series), start, end))
        return len(self.calls)


def raw_history(
    names: Sequence[str], seconds: int, *, missing: str | None = None
) -> HistoryResponse:
    t = [NOW - seconds + i for i in range(seconds)]
    out = []
    for n in names:
        if n == S.HEAT_ENERGY:
            mean: list[float | None] = [100.0 + i * 0.0001 for i in range(seconds)]
        elif n == missing:
            mean = [None] * seconds
        else:
            mean = [50.0 + (i % 7) for i in range(seconds)]
        out.append(SeriesData(name=n, unit="", t=t, mean=mean))
    return HistoryResponse(start=NOW - seconds, end=NOW, resolution_s=1, series=out)


def rollup_history(names: Sequence[str], points: int, step: int) -> HistoryResponse:
    t = [NOW - (points - i) * step for i in range(points)]
    out = []
    for n in names:
        mean: list[float | None] = [60.0] * points
        mean[3] = None  # a gap, as the agent sends for a minute with no samples
        out.append(
            SeriesData(
                name=n,
                unit="",
                t=t,
                mean=mean,
                min=[None if m is None else m - 5 for m in mean],
                max=[None if m is None else m + 5 for m in mean],
            )
        )
    return HistoryResponse(start=t[0], end=NOW, resolution_s=step, series=out)


def status_at(t: float, **kw: Any) -> AgentStatus:
    base: dict[str, Any] = {
        "protocol_version": 1,
        "agent_version": "0.1.0",
        "hostname": "h",
        "state": "heating",
        "sample_time": datetime.fromtimestamp(t, UTC),
        "heat_w": 120.0,
        "heat_today_kwh": 1.0,
        "gpus": [{"index": 0, "name": "RTX", "power_w": 80.0, "temp_c": 60.0}],
        "host": {"cpu_power_w": 40.0, "cpu_temp_c": 50.0},
    }
    return AgentStatus.model_validate(base | kw)


@pytest.fixture
def panel(qtbot: QtBot) -> tuple[ChartPanel, Requests]:
    requests = Requests()
    clock = [NOW]
    p = ChartPanel(requests, clock=lambda: clock[0])
    p.clock = clock  # type: ignore[attr-defined]  # the test's hand on the clock
    qtbot.addWidget(p)
    p.resize(900, 700)
    p.show()
    p.set_active(True)
    yield p, requests
    p.stop()


def test_curves_for_each_gpu_and_the_cpu() -> None:
    names = [ln.series for ln in lines_for([0, 1])]
    assert names == [
        "heat.power_w",
        "cpu.power_w",
        "gpu0.power_w",
        "gpu1.power_w",
        "cpu.temp_c",
        "gpu0.temp_c",
        "gpu1.temp_c",
        "room_c",
        "setpoint_c",
        "heat.energy_kwh",
    ]


def test_raw_history_loads_finite_float64_and_cumulative_heat_from_zero(
    panel: tuple[ChartPanel, Requests],
) -> None:
    p, req = panel
    p.set_gpus([0])
    names, start, end = req.calls[-1]
    assert end - start == 3600  # the default range: 1 h
    p.load_history(HistoryResult(1, raw_history(names, 600, missing="gpu0.temp_c")))
    assert p.live
    heat = p.buffers[S.HEAT_POWER]
    assert len(heat) == 600
    assert heat.t.dtype == np.float64
    assert len(p.buffers["gpu0.temp_c"]) == 0  # all None: nothing stored, nothing invented
    _x, y = p.curves[S.HEAT_ENERGY].getData()
    assert y[0] == 0.0
    assert y[-1] == pytest.approx(599 * 0.0001 * 1000)  # in Wh while under 1 kWh
    assert p.energy_unit == "Wh"


def test_rollups_get_a_min_max_band_and_no_live_appends(
    panel: tuple[ChartPanel, Requests],
) -> None:
    p, req = panel
    p.set_gpus([0])
    p.set_range(30 * 86_400)
    names, start, end = req.calls[-1]
    assert end - start == 30 * 86_400
    p.load_history(HistoryResult(len(req.calls), rollup_history(names, 720, 3600)))
    assert not p.live
    assert p._band is not None
    assert len(p.buffers[S.HEAT_POWER]) == 719  # the gap is left out
    before = len(p.buffers[S.HEAT_POWER])
    p.append_status(status_at(NOW + 1))
    assert len(p.buffers[S.HEAT_POWER]) == before
    assert "hour" in p.note.text()


def test_switching_range_drops_the_answer_to_the_old_one(
    panel: tuple[ChartPanel, Requests],
) -> None:
    p, req = panel
    p.set_gpus([0])
    first = len(req.calls)
    p.range_buttons[300].click()
    assert p.range_s == 300
    names, start, end = req.calls[-1]
    assert end - start == 300
    stale = raw_history(names, 3600)
    p.load_history(HistoryResult(first, stale))  # the 1 h answer arrives late
    assert len(p.buffers[S.HEAT_POWER]) == 0
    p.load_history(HistoryResult(len(req.calls), raw_history(names, 300)))
    assert len(p.buffers[S.HEAT_POWER]) == 300


def test_every_range_asks_for_its_span(panel: tuple[ChartPanel, Requests]) -> None:
    p, req = panel
    p.set_gpus([])
    for _text, seconds in RANGES:
        p.set_range(seconds)
        _, start, end = req.calls[-1]
        assert end - start == seconds


def test_live_appends_grow_the_buffers_and_repaint_on_the_timer(
    qtbot: QtBot, panel: tuple[ChartPanel, Requests]
) -> None:
    p, req = panel
    p.set_gpus([0])
    names, _, _ = req.calls[-1]
    p.load_history(HistoryResult(len(req.calls), raw_history(names, 60)))
    count = p.repaint_count
    p.append_status(status_at(NOW + 1, heat_today_kwh=1.0))
    p.append_status(status_at(NOW + 1, heat_today_kwh=1.0))  # the same sample again
    p.append_status(status_at(NOW + 2, heat_today_kwh=1.5))
    assert len(p.buffers[S.HEAT_POWER]) == 62
    assert p.buffers[S.HEAT_ENERGY].last_v() == pytest.approx(100.0059 - 100.0 + 0.5)
    with qtbot.waitSignal(p.repainted, timeout=2000):
        pass
    assert p.repaint_count == count + 1  # two appends, one coalesced repaint


def test_hidden_means_no_repaint_at_all(qtbot: QtBot, panel: tuple[ChartPanel, Requests]) -> None:
    p, req = panel
    p.set_gpus([0])
    names, _, _ = req.calls[-1]
    p.load_history(HistoryResult(len(req.calls), raw_history(names, 60)))
    p.set_active(False)
    count = p.repaint_count
    x_before = p.curves[S.HEAT_POWER].xData  # all the data the curve holds, unclipped
    for i in range(5):
        p.append_status(status_at(NOW + 1 + i))
    qtbot.wait(1200)  # more than two repaint periods
    assert p.repaint_count == count
    x_after = p.curves[S.HEAT_POWER].xData
    assert len(x_after) == len(x_before)  # the curve was not touched
    with qtbot.waitSignal(p.repainted, timeout=1000):
        p.set_active(True)  # shown again: one repaint catches up
    x_shown = p.curves[S.HEAT_POWER].xData
    assert len(x_shown) == len(x_before) + 5


def test_fahrenheit_converts_the_temperature_curves(panel: tuple[ChartPanel, Requests]) -> None:
    p, req = panel
    p.set_gpus([0])
    names, _, _ = req.calls[-1]
    p.load_history(HistoryResult(len(req.calls), raw_history(names, 10)))
    p.set_temperature_unit("F")
    _, y = p.curves[S.CPU_TEMP].getData()
    assert y[0] == pytest.approx(50.0 * 9 / 5 + 32)


def test_a_machine_without_temperature_sensors_folds_the_plot(
    panel: tuple[ChartPanel, Requests],
) -> None:
    p, req = panel
    p.set_gpus([])
    names, _, _ = req.calls[-1]
    p.load_history(HistoryResult(len(req.calls), raw_history(names, 10, missing=S.CPU_TEMP)))
    assert not p._temp_shown
    assert "no sensor" in p.plots["temp"].titleLabel.text


def test_a_history_younger_than_the_range_fills_the_width(
    panel: tuple[ChartPanel, Requests],
) -> None:
    """A new install with 10 minutes of history: the 1 h view starts where the data does."""
    p, req = panel
    p.set_gpus([0])
    names, _start, _end = req.calls[-1]
    p.load_history(HistoryResult(1, raw_history(names, 600)))
    p.clock[0] = NOW + 1  # type: ignore[attr-defined]
    p.append_status(status_at(NOW + 1))
    p._repaint_if_dirty()
    (x0, x1), _ = p.plots["power"].getViewBox().viewRange()
    assert x0 == pytest.approx(NOW - 600, abs=2)
    assert x1 == pytest.approx(NOW + 1, abs=2)

    # Once the history is older than the range, the view is the whole range.
    p.reload()
    p.load_history(HistoryResult(len(req.calls), raw_history(names, 5000)))
    p.clock[0] = NOW + 2  # type: ignore[attr-defined]
    p.append_status(status_at(NOW + 2))
    p._repaint_if_dirty()
    (x0, _x1), _ = p.plots["power"].getViewBox().viewRange()
    assert x0 == pytest.approx(NOW + 2 - 3600, abs=2)


def test_y_range_follows_the_data_with_hysteresis(panel: tuple[ChartPanel, Requests]) -> None:
    p, req = panel
    p.set_gpus([0])
    names, _start, _end = req.calls[-1]
    p.load_history(HistoryResult(1, raw_history(names, 600)))  # power 50–56 W
    box = p.plots["power"].getViewBox()
    y0, y1 = box.viewRange()[1]
    assert y0 <= 50.0 and y1 >= 56.0
    assert y1 - y0 < 4 * 6.0  # fitted, not left at a default range

    p.clock[0] = NOW + 1  # type: ignore[attr-defined]
    inside = {
        "gpus": [{"index": 0, "name": "RTX", "power_w": 52.0, "temp_c": 52.0}],
        "host": {"cpu_power_w": 51.0, "cpu_temp_c": 53.0},
    }
    p.append_status(status_at(NOW + 1, heat_w=53.0, **inside))
    p._repaint_if_dirty()
    assert box.viewRange()[1] == [y0, y1]  # inside: the axis stays still

    p.clock[0] = NOW + 60  # type: ignore[attr-defined]  # the view moves on by pixels
    p.append_status(status_at(NOW + 60, heat_w=400.0, **inside))
    p._repaint_if_dirty()
    assert box.viewRange()[1][1] >= 400.0  # outside: the range grows to show it


def test_time_nobody_sampled_is_a_gap_in_the_line(panel: tuple[ChartPanel, Requests]) -> None:
    """The agent was stopped for four minutes: no straight line across that time."""
    p, req = panel
    p.set_gpus([0])
    names, _start, _end = req.calls[-1]
    hist = raw_history(names, 600)
    cut = [
        SeriesData(
            name=s.name, unit=s.unit, t=s.t[:300] + s.t[540:], mean=s.mean[:300] + s.mean[540:]
        )
        for s in hist.series
    ]
    p.load_history(
        HistoryResult(
            1, HistoryResponse(start=hist.start, end=hist.end, resolution_s=1, series=cut)
        )
    )
    x, y = p.curves[S.HEAT_POWER].getData()
    gaps = np.flatnonzero(np.isnan(y))
    assert len(gaps) == 1
    assert x[gaps[0] - 1] < x[gaps[0]] < x[gaps[0] + 1]
    assert x[gaps[0] + 1] - x[gaps[0] - 1] == pytest.approx(241.0)
    assert p.curves[S.HEAT_POWER].opts["connect"] == "finite"


def test_break_gaps_leaves_steady_data_alone() -> None:
    x = np.arange(10.0)
    y = np.ones(10)
    bx, by, connect = break_gaps(x, y, 5.0)
    assert bx is x and by is y and connect == "all"
    bx, by, connect = break_gaps(np.array([0.0, 1.0, 20.0]), np.array([1.0, 2.0, 3.0]), 5.0)
    assert list(bx) == [0.0, 1.0, 10.5, 20.0]
    assert np.isnan(by[2]) and connect == "finite"


def test_the_min_max_band_has_the_same_gaps(panel: tuple[ChartPanel, Requests]) -> None:
    p, req = panel
    p.set_gpus([0])
    p.set_range(86_400)
    names, _start, _end = req.calls[-1]
    hist = rollup_history(names, 60, 60)
    cut = [
        SeriesData(
            name=s.name,
            unit=s.unit,
            t=s.t[:20] + s.t[30:],
            mean=s.mean[:20] + s.mean[30:],
            min=(s.min or [])[:20] + (s.min or [])[30:],
            max=(s.max or [])[:20] + (s.max or [])[30:],
        )
        for s in hist.series
    ]
    resp = HistoryResponse(start=hist.start, end=hist.end, resolution_s=60, series=cut)
    p.load_history(HistoryResult(len(req.calls), resp))
    assert p._band_curves is not None
    for curve in p._band_curves:
        _x, y = curve.getData()
        assert int(np.isnan(y).sum()) == 1  # one break, where ten minutes are missing

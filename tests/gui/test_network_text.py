"""The network figures as text and numbers: money in credits, tray lines, earnings sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from heatshare.gui.earnings_chart import EarningsChart, earnings_series
from heatshare.gui.formatting import (
    format_duration,
    format_energy_j,
    format_money,
    format_money_minor,
    format_progress,
)
from heatshare.gui.jobs_page import earned_text, result_text
from heatshare.gui.main import parse_args
from heatshare.gui.tray_menu import (
    EARNED,
    INFO,
    JOB,
    OPEN,
    TOOLTIP_MAX,
    tray_menu_entries,
    tray_tooltip,
)
from heatshare.protocol.local_api import (
    AgentStatus,
    EarningEntry,
    EarningsResponse,
    JobInfo,
    JobPhase,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def status(**kw: Any) -> AgentStatus:
    base: dict[str, Any] = {
        "protocol_version": 1,
        "agent_version": "0.1.0",
        "hostname": "study-pc",
        "state": "heating",
        "heat_w": 182.0,
        "heat_provenance": "energy_counter",
        "hottest_name": "GPU 0",
        "hottest_c": 71.0,
    }
    return AgentStatus.model_validate(base | kw)


# -- money and figures -----------------------------------------------------------------------


def test_demo_credits_read_as_credits_not_money() -> None:
    assert format_money_minor(1234, "CRD") == "12.34 credits"
    assert format_money_minor(-500, "CRD") == "-5.00 credits"
    assert format_money_minor(1234, "EUR") == "€12.34"
    assert format_money_minor(1234, "JPY") == "¥1,234"
    assert format_money(None, "CRD") == "not available"
    assert format_money(5, None) == "not available"


@pytest.mark.parametrize(
    ("joules", "text"),
    [
        (2_275.0, "0.6 Wh"),
        (360_000.0, "100 Wh"),
        (7_200_000.0, "2.00 kWh"),
        (None, "not available"),
    ],
)
def test_job_energy(joules: float | None, text: str) -> None:
    assert format_energy_j(joules) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0 s"), (37, "37 s"), (75, "1 min 15 s"), (3725, "1 h 02 min")]
)
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_progress_is_clamped() -> None:
    assert format_progress(0.424) == "42 %"
    assert format_progress(1.3) == "100 %"
    assert format_progress(None) == ""


def _job(**kw: Any) -> JobInfo:
    base: dict[str, Any] = {
        "attempt_id": 1,
        "job_id": 1,
        "phase": "done",
        "leased_at": T0,
        "price_minor": 120,
        "currency": "CRD",
    }
    return JobInfo.model_validate(base | kw)


def test_what_a_job_earned() -> None:
    assert earned_text(_job(credited_minor=120, result_status="accepted")) == "1.20 credits"
    assert earned_text(_job(phase=JobPhase.OUTBOX)) == "1.20 credits when accepted"
    assert earned_text(_job(phase=JobPhase.FAILED, error="Killed")) == "nothing"
    assert earned_text(_job(result_status="rejected")) == "nothing"
    assert result_text(_job(result_status="pending_validation")) == "Being checked"
    assert result_text(_job(phase=JobPhase.RUNNING)) == ""


# -- the tray --------------------------------------------------------------------------------


def test_tray_menu_shows_the_job_and_todays_earnings() -> None:
    s = status(
        job_label="Fractal zoom · frame 0 · tile 6",
        job_progress=0.42,
        earned_today_minor=840,
        earnings_currency="CRD",
    )
    entries = tray_menu_entries(s, reachable=True)
    keys = [e.key for e in entries if not e.separator]
    assert keys[:4] == [INFO, JOB, EARNED, OPEN]
    by_key = {e.key: e for e in entries}
    assert by_key[JOB].text == "Job: Fractal zoom · frame 0 · tile 6 · 42 %"
    assert by_key[EARNED].text == "Earned today: 8.40 credits"
    assert not by_key[JOB].enabled and not by_key[EARNED].enabled
    assert tray_tooltip(s, reachable=True) == (
        "Heatshare · Heating\nHeat: 182 W\nHottest: 71 °C (GPU 0)\n"
        "Job: Fractal zoom · frame 0 · tile 6 · 42 %\nEarned today: 8.40 credits"
    )


def test_tray_without_a_job_or_a_network_says_nothing_of_them() -> None:
    entries = tray_menu_entries(status(), reachable=True)
    assert JOB not in {e.key for e in entries}
    assert EARNED not in {e.key for e in entries}
    # Enrolled, no job now: today's earnings still show; a job without a figure, no per cent.
    s = status(earned_today_minor=0, earnings_currency="EUR", job_label="Matrix check")
    assert tray_tooltip(s, reachable=True).endswith("\nJob: Matrix check\nEarned today: €0.00")
    # Unreachable: the last job is not claimed to run.
    assert JOB not in {e.key for e in tray_menu_entries(s, reachable=False)}


def test_tray_tooltip_with_a_long_job_label_fits_and_keeps_the_earnings() -> None:
    s = status(
        hottest_name="NVIDIA GeForce RTX 4090 Laptop GPU",
        job_label="A requester's very long job label that goes on and on " * 3,
        job_progress=0.5,
        earned_today_minor=123456,
        earnings_currency="CRD",
    )
    text = tray_tooltip(s, reachable=True)
    assert len(text) <= TOOLTIP_MAX
    assert text.endswith("\nEarned today: 1,234.56 credits")
    assert "… · 50 %" in text


# -- the earnings chart's data ---------------------------------------------------------------


def _entry(minutes: float, amount: int, kind: str = "credit") -> EarningEntry:
    return EarningEntry(at=T0 + timedelta(minutes=minutes), amount_minor=amount, kind=kind)


def test_earnings_sums_are_exact_in_minor_units() -> None:
    entries = [
        _entry(130, 95),  # out of order on purpose: the ledger's order is not the time order
        _entry(5, 120),
        _entry(59.99, 120),
        _entry(60, 1),  # the first second of the next hour
        _entry(61, 7, "adjustment"),
        _entry(62, -500, "payout"),  # money out, not earned
        _entry(150, 3),
    ]
    s = earnings_series(entries)
    assert s.cumulative_minor.dtype == np.int64
    assert s.t.dtype == np.float64
    assert s.cumulative_minor.tolist() == [120, 240, 241, 248, 343, 346]
    assert s.hour_start.tolist() == [T0.timestamp(), T0.timestamp() + 3600, T0.timestamp() + 7200]
    assert s.hour_minor.tolist() == [240, 8, 98]
    assert int(s.hour_minor.sum()) == int(s.cumulative_minor[-1])
    assert np.all(np.diff(s.t) >= 0)


def test_no_earnings_is_empty_not_zero() -> None:
    s = earnings_series([])
    assert len(s.t) == 0 and len(s.hour_minor) == 0


def test_the_chart_draws_only_while_active(qtbot: QtBot) -> None:
    chart = EarningsChart()
    qtbot.addWidget(chart)
    earnings = EarningsResponse(
        currency="CRD",
        balance_minor=240,
        account_balance_minor=240,
        today_minor=240,
        entries=[_entry(5, 120), _entry(70, 120)],
    )
    chart.set_earnings(earnings)
    assert chart.repaint_count == 0  # hidden: stored, not drawn
    chart.set_active(True)
    assert chart.repaint_count == 1
    x, y = chart.total_curve.getData()
    assert x is not None and y is not None
    assert x.dtype == np.float64
    # Corner points of the steps, in credits for the axis only.
    assert y.tolist() == [1.2, 1.2, 2.4, 2.4]
    t0, t1 = (T0 + timedelta(minutes=5)).timestamp(), (T0 + timedelta(minutes=70)).timestamp()
    assert x.tolist()[:3] == [t0, t1, t1]
    chart.set_earnings(earnings)  # the same ledger again: nothing to redraw
    assert chart.repaint_count == 1
    assert chart.total_plot.getViewBox().state["autoRange"] is not None


# -- the command line ------------------------------------------------------------------------


def test_demo_option() -> None:
    assert parse_args(["--demo"]).demo is True
    assert parse_args([]).demo is False


def test_help_mentions_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    out = capsys.readouterr().out
    assert "--demo" in out
    assert "demo credits" in out

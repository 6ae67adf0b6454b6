"""The dashboard widget: figures, banners, status line."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from heatshare.gui.bridge import ConnectionState
from heatshare.gui.dashboard import BENCH_FIRST_PAINT_ENV, Dashboard, status_line
from heatshare.gui.formatting import NOT_AVAILABLE
from heatshare.protocol.local_api import AgentStatus


def status(**kw: Any) -> AgentStatus:
    base: dict[str, Any] = {
        "protocol_version": 1,
        "agent_version": "0.1.0",
        "hostname": "shed-server",
        "state": "heating",
        "sample_time": datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
        "heat_w": 250.0,
        "heat_provenance": "estimate",
        "heat_today_kwh": 1.25,
        "cost_today_minor": 31,
        "currency": "GBP",
        "hottest_name": "cpu",
        "hottest_c": 70.0,
    }
    return AgentStatus.model_validate(base | kw)


def test_cards_show_the_figures(qtbot: QtBot) -> None:
    d = Dashboard()
    qtbot.addWidget(d)
    d.set_status(status())
    d.set_preferences("F", Decimal("0.245"))
    assert d.heat.value.text() == "250 W"
    assert d.heat.detail.text() == "853 BTU/h"
    assert d.heat.note.text() == "Estimated from utilisation"
    assert d.today.value.text() == "1.25 kWh"
    assert d.hottest.value.text() == "158 °F"
    assert d.hottest.detail.text() == "CPU"
    assert d.cost.value.text() == "£0.31"
    assert d.cost.detail.text() == "at £0.245 per kWh"


def test_missing_readings_say_not_available(qtbot: QtBot) -> None:
    d = Dashboard()
    qtbot.addWidget(d)
    assert d.heat.value.text() == NOT_AVAILABLE  # before any status
    d.set_status(status(heat_w=None, heat_provenance=None, hottest_name=None, hottest_c=None))
    assert d.heat.value.text() == NOT_AVAILABLE
    assert d.hottest.value.text() == NOT_AVAILABLE
    assert d.hottest.detail.text() == "no temperature sensor readable"
    assert d.heat.value.property("missing") is True


def test_banners(qtbot: QtBot) -> None:
    d = Dashboard()
    qtbot.addWidget(d)
    d.show()
    d.set_status(status(warnings=["The database was damaged and set aside."]))
    assert d.warning_banner.isVisible()
    assert "damaged" in d.warning_banner.label.text()
    d.set_connection(ConnectionState.UNREACHABLE, "No answer from the local agent.")
    assert d.unreachable_banner.isVisible()
    assert "Agent unreachable — reconnecting…" in d.unreachable_banner.label.text()
    d.set_connection(ConnectionState.CONNECTED, "")
    assert not d.unreachable_banner.isVisible()
    d.set_status(status(warnings=[]))
    assert not d.warning_banner.isVisible()


def test_status_line() -> None:
    assert status_line(status(), ConnectionState.CONNECTED) == (
        "Heating · on shed-server · agent 0.1.0"
    )
    assert status_line(None, ConnectionState.CONNECTING) == "Connecting"
    assert status_line(status(), ConnectionState.UNREACHABLE).startswith("Agent unreachable")


def test_first_real_paint_is_signalled_and_timed(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "paint.txt"
    monkeypatch.setenv(BENCH_FIRST_PAINT_ENV, str(target))
    d = Dashboard()
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    assert not target.exists()  # painted, but without the agent's figures
    with qtbot.waitSignal(d.first_real_paint, timeout=2000):
        d.set_status(status())
        d.repaint()
    assert float(target.read_text()) > 0


def test_a_dashboard_deleted_right_after_its_first_paint_is_quiet(
    qtbot: QtBot, capfd: pytest.CaptureFixture[str]
) -> None:
    """The first-paint signal is queued; a page closed before it runs takes it along."""
    from PySide6.QtCore import QCoreApplication, QEvent

    d = Dashboard()
    d.show()
    qtbot.waitExposed(d)
    qtbot.wait(200)  # the first frames, without the agent's figures
    emitted: list[bool] = []
    d.first_real_paint.connect(lambda: emitted.append(True))
    d.set_status(status())
    d.repaint()
    assert d._painted_real and not emitted  # painted, and the emit queued
    d.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()  # a queued emit of a deleted page would run now
    # PySide6 prints the error of such an emit instead of raising it.
    assert "has been deleted" not in capfd.readouterr().err

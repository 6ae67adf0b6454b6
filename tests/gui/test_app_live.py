"""The whole app (composition root) against a real agent process, in this test's QApplication."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from agentproc import RealAgent
from appfactory import AppFactory
from pytestqt.qtbot import QtBot

from heatshare.gui.app import HeatshareApp
from heatshare.gui.bridge import ConnectionState
from heatshare.gui.formatting import NOT_AVAILABLE


@pytest.fixture
def app(real_agent: RealAgent, make_app: AppFactory) -> HeatshareApp:
    return make_app(agent=real_agent, wizard=True)


def test_live_figures_from_the_real_agent(qtbot: QtBot, app: HeatshareApp) -> None:
    dash = app.window.dashboard
    qtbot.waitUntil(lambda: app.bridge.state is ConnectionState.CONNECTED, timeout=5000)
    qtbot.waitUntil(lambda: dash.status is not None, timeout=5000)
    status = dash.status
    assert status is not None
    if status.heat_w is not None:
        assert dash.heat.value.text().endswith(" W")
        assert dash.heat.detail.text().endswith(" BTU/h")
        assert dash.heat.note.text()  # the provenance, in words
    else:
        assert dash.heat.value.text() == NOT_AVAILABLE
    assert dash.today.value.text().endswith(" kWh")
    assert status.hostname in app.window.status_label.text()
    # The charts come after the first painted figures, then fill from history and polls.
    qtbot.waitUntil(lambda: app.charts is not None, timeout=5000)
    charts = app.charts
    assert charts is not None
    qtbot.waitUntil(lambda: len(charts.buffers.get("heat.power_w", [])) >= 2, timeout=8000)
    # A new poll moves the figures on: live, not a snapshot.
    first = status.sample_time
    qtbot.waitUntil(
        lambda: dash.status is not None and dash.status.sample_time != first, timeout=5000
    )


def test_agent_killed_shows_unreachable_then_reconnects(
    qtbot: QtBot, app: HeatshareApp, real_agent: RealAgent, expect_log: Callable[[str], None]
) -> None:
    expect_log(r"The agent stopped answering")
    dash = app.window.dashboard
    qtbot.waitUntil(lambda: app.bridge.state is ConnectionState.CONNECTED, timeout=5000)
    real_agent.kill()
    qtbot.waitUntil(dash.unreachable_banner.isVisible, timeout=6000)
    assert "Agent unreachable — reconnecting…" in dash.unreachable_banner.label.text()
    assert app.window.status_label.text().startswith("Agent unreachable")
    assert not app.window.pause_button.isEnabled()
    real_agent.start()
    qtbot.waitUntil(lambda: not dash.unreachable_banner.isVisible(), timeout=10_000)
    assert app.bridge.state is ConnectionState.CONNECTED
    assert app.window.pause_button.isEnabled()


def test_hiding_the_window_slows_polling_and_stops_chart_repaints(
    qtbot: QtBot, app: HeatshareApp
) -> None:
    qtbot.waitUntil(lambda: app.charts is not None, timeout=5000)
    charts = app.charts
    assert charts is not None
    app.window.hide()
    assert not charts._timer.isActive()
    count = charts.repaint_count
    qtbot.wait(2500)
    assert charts.repaint_count == count
    assert app.bridge._timer.interval() >= 5000 or not app.bridge._timer.isActive()
    app.window.show()
    assert charts._timer.isActive()


def test_settings_saved_through_the_agent_with_its_message_on_error(
    qtbot: QtBot, app: HeatshareApp
) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QDialogButtonBox

    qtbot.waitUntil(lambda: app.bridge.settings is not None, timeout=5000)
    seen: dict[str, str] = {}

    def interact() -> None:
        dialog = app.settings_dialog
        assert dialog is not None
        save = dialog.buttons.button(QDialogButtonBox.StandardButton.Save)
        dialog.tariff.setText("500")  # the agent allows at most 100 per kWh
        save.click()
        qtbot.waitUntil(dialog.error.isVisible, timeout=5000)
        seen["error"] = dialog.error.text()
        dialog.tariff.setText("0,30")  # a comma works as well
        dialog.unit.setCurrentIndex(1)
        save.click()

    QTimer.singleShot(0, interact)
    app.open_settings()  # modal until the agent accepts
    assert "tariff" in seen["error"].lower()
    assert app.bridge.settings is not None
    assert str(app.bridge.settings.tariff_per_kwh) == "0.30"
    assert app.bridge.settings.temperature_unit == "F"
    qtbot.waitUntil(
        lambda: app.window.dashboard.cost.detail.text() == "at £0.30 per kWh", timeout=3000
    )

"""The cost of heat against the real agent: its figures, its refusals, its statement; no fake.

A real agent process on a temp profile (tests/gui/agentproc.py); the smart plug asked for is a
closed port on loopback, so Find shows the agent's own sentence about a plug that does not
answer.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from agentproc import RealAgent
from appfactory import AppFactory
from pytestqt.qtbot import QtBot

from heatshare.gui.app import HeatshareApp
from heatshare.gui.formatting import format_money_minor
from heatshare.protocol.client import AgentClient
from heatshare.protocol.discovery import read_runtime, read_token
from heatshare.protocol.energy import TariffKind, UsualHeatingKind


@pytest.fixture
def root(real_agent: RealAgent, make_app: AppFactory) -> HeatshareApp:
    return make_app(agent=real_agent)


@pytest.fixture
def client(real_agent: RealAgent) -> Iterator[AgentClient]:
    info = read_runtime(real_agent.paths)
    assert info is not None
    c = AgentClient(info.base_url, read_token(real_agent.paths))
    yield c
    c.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_cost_of_heat_with_the_real_agent(
    qtbot: QtBot, root: HeatshareApp, client: AgentClient, tmp_path: Path
) -> None:
    panel = root.energy.panel
    qtbot.waitUntil(lambda: panel.costs is not None, timeout=10_000)
    assert not panel.error_banner.isVisible()
    costs = client.costs()
    rows = {a.text(): b.text() for a, b in zip(panel.month.labels, panel.month.values, strict=True)}
    # The agent's own month, shown as it said it (a minute's records may be booked between).
    assert rows["Electricity"] in {
        format_money_minor(costs.month.electricity_cost_minor + d, costs.currency)
        for d in (-1, 0, 1)
    }

    # Energy settings: the plug at a closed port, a price list with a bad row, then a good one.
    root.energy.panel.settings_button.click()
    qtbot.waitUntil(lambda: root.energy.settings_dialog is not None, timeout=10_000)
    dialog = root.energy.settings_dialog
    assert dialog is not None
    dialog.plug_enabled.setChecked(True)
    dialog.plug_address.setText(f"127.0.0.1:{closed_port()}")
    dialog.find_button.click()
    qtbot.waitUntil(dialog.find_button.isEnabled, timeout=20_000)
    assert "#c62828" in dialog.probe_result.styleSheet()
    assert "127.0.0.1" in dialog.probe_result.text()
    assert dialog.probe_result.text().endswith(".")  # a sentence, not a traceback

    dialog.tariff_kind.setCurrentIndex(dialog.tariff_kind.findData(TariffKind.DYNAMIC.value))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"valid_from,valid_to,value_inc_vat\n{start:%Y-%m-%dT%H:%MZ},"
        f"{start + timedelta(minutes=30):%Y-%m-%dT%H:%MZ},twelve\n",
        "utf-8",
    )
    dialog.import_file(bad)
    qtbot.waitUntil(lambda: "#c62828" in dialog.price_list_info.styleSheet(), timeout=10_000)
    assert "line 2" in dialog.price_list_info.text()  # the agent's sentence names the row
    good = tmp_path / "agile.csv"
    lines = ["valid_from,valid_to,value_inc_vat"]
    for i in range(48):
        a = start + timedelta(minutes=30 * i)
        lines.append(
            f"{a:%Y-%m-%dT%H:%MZ},{a + timedelta(minutes=30):%Y-%m-%dT%H:%MZ},{12 + i % 7}.5"
        )
    good.write_text("\n".join(lines) + "\n", "utf-8")
    dialog.import_file(good)
    qtbot.waitUntil(lambda: dialog.price_list_info.text().startswith("48 prices"), timeout=10_000)
    assert client.price_list().count == 48

    dialog.plug_enabled.setChecked(False)  # no plug answers here
    dialog.usual_kind.setCurrentIndex(dialog.usual_kind.findData(UsualHeatingKind.GAS_BOILER.value))
    dialog.fuel_price.setText("0.0635")
    with qtbot.waitSignal(dialog.finished, timeout=10_000):
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    stored = client.energy_settings()
    assert stored.tariff.kind is TariffKind.DYNAMIC
    assert stored.usual_heating.kind is UsualHeatingKind.GAS_BOILER
    qtbot.waitUntil(lambda: panel.usual is UsualHeatingKind.GAS_BOILER, timeout=10_000)

    # The statement: the CSV is the agent's, the PDF a real one.
    statement = root.energy.open_statement()
    month = statement.chosen_month
    target = tmp_path / "statement.csv"
    before = client.statement_csv(month)
    statement.export("csv", target)
    qtbot.waitUntil(lambda: statement.outcome.text().startswith("Saved"), timeout=10_000)
    # The agent books a record a minute: the app's copy is the one of before or of after.
    assert target.read_text("utf-8") in {before, client.statement_csv(month)}
    pdf = tmp_path / "statement.pdf"
    statement.export("pdf", pdf)
    qtbot.waitUntil(lambda: statement.outcome.text().startswith("Saved"), timeout=10_000)
    assert pdf.read_bytes().startswith(b"%PDF-1.")
    statement.reject()


def test_the_agents_refusal_keeps_the_dialog_open(
    qtbot: QtBot, root: HeatshareApp, client: AgentClient
) -> None:
    """Overlapping time-of-use periods: the agent's 422 sentence under the fields."""
    root.energy.open_settings()
    qtbot.waitUntil(lambda: root.energy.settings_dialog is not None, timeout=10_000)
    dialog = root.energy.settings_dialog
    assert dialog is not None
    dialog.tariff_kind.setCurrentIndex(dialog.tariff_kind.findData(TariffKind.TIME_OF_USE.value))
    dialog._add_period(None)  # a second cheap night, over the first
    dialog.periods.item(1, 1).setText("01:00")
    dialog.periods.item(1, 2).setText("06:00")
    dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    qtbot.waitUntil(dialog.error.isVisible, timeout=10_000)
    assert dialog.error.text() == (
        "The tariff was not accepted: two time-of-use periods overlap on weekday 0 at 01:00."
    )
    assert dialog.isVisible()
    assert dialog.buttons.isEnabled()  # the householder can correct and save again
    assert client.energy_settings().tariff.kind is TariffKind.FLAT  # nothing was stored
    dialog.periods.removeRow(1)
    with qtbot.waitSignal(dialog.finished, timeout=10_000):
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    assert client.energy_settings().tariff.kind is TariffKind.TIME_OF_USE

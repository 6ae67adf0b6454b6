"""The cost of heat in the app: the dashboard's panel, the energy settings, the statement.

The whole app runs (composition root, bridge, worker threads, dialogs); the agent is the fake
at the client seam (fake_agent.py, fake_energy.py), whose figures come from records costed by
the domain's own functions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from appfactory import AppFactory
from fake_agent import FakeAgentClient
from fake_energy import SHELLY_ADDRESS, SHELLY_PASSWORD, TASMOTA_ADDRESS
from PySide6.QtCore import QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from heatshare.domain.readings import Provenance
from heatshare.gui.app import HeatshareApp
from heatshare.gui.energy_settings import EnergySettingsDialog
from heatshare.gui.formatting import NOT_AVAILABLE, format_money_minor
from heatshare.gui.statement_export import StatementDialog, render_statement_pdf
from heatshare.gui.window import HEATING
from heatshare.protocol.client import AgentError
from heatshare.protocol.energy import (
    PlugKind,
    TariffKind,
    UsualHeatingKind,
    UsualHeatingSettings,
)


def card_rows(card: object) -> dict[str, str]:
    labels = card.labels  # type: ignore[attr-defined]
    values = card.values  # type: ignore[attr-defined]
    return {a.text(): b.text() for a, b in zip(labels, values, strict=True) if not a.isHidden()}


# -- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_shows_the_agents_figures_to_the_penny(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    panel = app.energy.panel
    qtbot.waitUntil(lambda: panel.costs is not None, timeout=5000)
    qtbot.waitUntil(lambda: panel.usual is UsualHeatingKind.GAS_BOILER, timeout=5000)
    costs = fake.costs()
    for card, figures in (
        (panel.today, costs.today),
        (panel.month, costs.month),
        (panel.season, costs.season),
    ):
        rows = card_rows(card)
        assert rows["Electricity"] == format_money_minor(figures.electricity_cost_minor, "GBP")
        assert rows["Earnings"] == format_money_minor(-figures.earnings_minor, "GBP")
        assert rows["Net cost"] == format_money_minor(figures.net_cost_minor, "GBP")
        assert rows["Gas boiler would have cost"] == format_money_minor(
            figures.usual_cost_minor, "GBP"
        )
        assert figures.saving_minor is not None
        label = "Saving" if figures.saving_minor >= 0 else "Extra cost"
        assert rows[label] == format_money_minor(abs(figures.saving_minor), "GBP")
        assert card.headline.text().endswith(" per kWh of heat")
    # The month by hand: net cost over heat, to a tenth of a penny.
    month = costs.month
    per_kwh = Decimal(month.net_cost_minor) / 100 / month.heat_kwh
    assert panel.month.headline.text() == f"£{per_kwh:.3f} per kWh of heat"
    assert panel.source.text().startswith("Heat measured by the smart plug · Electricity now £")
    assert panel.plan.plan == costs.plan
    # Today's cost card agrees with the panel, and names the price now (a dynamic tariff).
    dash = app.window.dashboard
    qtbot.waitUntil(lambda: dash.cost.detail.text().startswith("now £"), timeout=5000)
    assert dash.cost.value.text() == card_rows(panel.today)["Electricity"]
    assert dash.cost.detail.text() == f"now £{costs.price_now_per_kwh} per kWh"
    assert panel.plan_caption.text().startswith("Next 24 hours · cheapest from ")


def test_a_plug_gone_and_a_figure_missing(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.heat_source = Provenance.ENERGY_COUNTER
    fake.plug_error = "The plug at http://192.168.1.40 did not answer within 3 s."
    fake.records = []  # nothing booked yet: no heat, so no cost per kWh
    fake.energy_model = fake.energy_model.model_copy(
        update={"usual_heating": UsualHeatingSettings()}  # not set
    )
    app = make_app()
    panel = app.energy.panel
    qtbot.waitUntil(lambda: panel.costs is not None, timeout=5000)
    assert panel.source.text().startswith("Heat measured by the energy counters")
    assert panel.plug_banner.isVisible()
    assert "did not answer within 3 s" in panel.plug_banner.label.text()
    assert panel.today.headline.text() == NOT_AVAILABLE
    assert panel.today.headline_detail.text().startswith("No heat was delivered in this period")
    assert card_rows(panel.today)["Heat delivered"] == "0.000 kWh"
    assert card_rows(panel.today)["Usual heating would have cost"] == NOT_AVAILABLE
    assert not panel.today.note.isVisibleTo(panel)  # said once, under the cards:
    assert panel.usual_hint.text() == (
        "The usual heating is not set, so there is nothing to compare with. "
        "Set your usual heating in Energy settings to see the saving."
    )


def test_figures_that_fail_say_so_and_the_poll_stops_off_the_dashboard(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.energy_error = AgentError(503, "The energy records are being moved to a new schema.")
    app = make_app()
    panel = app.energy.panel
    qtbot.waitUntil(panel.error_banner.isVisible, timeout=5000)
    assert "new schema" in panel.error_banner.label.text()
    assert panel.today.headline.text() == NOT_AVAILABLE
    assert app.energy.timer.isActive()
    app.window.show_page(HEATING)
    assert not app.energy.timer.isActive()


# -- energy settings -------------------------------------------------------------------------


def open_settings(qtbot: QtBot, app: HeatshareApp) -> EnergySettingsDialog:
    app.energy.panel.settings_button.click()
    qtbot.waitUntil(lambda: app.energy.settings_dialog is not None, timeout=5000)
    dialog = app.energy.settings_dialog
    assert dialog is not None
    return dialog


def test_the_settings_dialog_leads_to_the_energy_settings(
    qtbot: QtBot, make_app: AppFactory
) -> None:
    app = make_app()
    qtbot.waitUntil(lambda: app.bridge.settings is not None, timeout=5000)

    def interact() -> None:
        assert app.settings_dialog is not None
        app.settings_dialog.energy_button.click()

    QTimer.singleShot(0, interact)
    app.open_settings()  # modal: the button closes it, then the energy settings open
    assert app.settings_dialog is None
    qtbot.waitUntil(lambda: app.energy.settings_dialog is not None, timeout=5000)
    dialog = app.energy.settings_dialog
    assert dialog is not None
    assert dialog.isVisible()
    dialog.reject()
    qtbot.waitUntil(lambda: app.energy.settings_dialog is None, timeout=2000)


def test_find_the_plug_and_save_keeps_its_password(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    dialog = open_settings(qtbot, app)
    assert dialog.plug_enabled.isChecked()
    assert dialog.plug_address.text() == SHELLY_ADDRESS
    assert dialog.plug_password.text() == ""  # never returned
    assert dialog.plug_password.placeholderText() == "stored; leave empty to keep it"
    qtbot.waitUntil(
        lambda: dialog.price_list_info.text() == "No price list held yet.", timeout=5000
    )

    dialog.find_button.click()
    qtbot.waitUntil(lambda: dialog.probe_result.text().startswith("Found"), timeout=5000)
    assert dialog.probe_result.text() == (
        "Found Shelly PlugSPlusG3 (S3PL-00112EU) “Study heater”, drawing 187 W now."
    )
    dialog.plug_password.setText("wrong")
    dialog.find_button.click()
    qtbot.waitUntil(lambda: "refused" in dialog.probe_result.text(), timeout=5000)
    assert dialog.probe_result.text() == "The Shelly at http://192.168.1.40 refused the password."

    dialog.plug_address.setText(TASMOTA_ADDRESS)
    dialog.plug_password.clear()
    dialog.find_button.click()
    qtbot.waitUntil(lambda: "Tasmota" in dialog.probe_result.text(), timeout=5000)
    assert dialog.plug_kind.currentData() == PlugKind.TASMOTA.value
    dialog.plug_address.setText(SHELLY_ADDRESS)  # back to the stored plug
    dialog.plug_kind.setCurrentIndex(dialog.plug_kind.findData(PlugKind.SHELLY.value))

    with qtbot.waitSignal(dialog.finished, timeout=5000):
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    sent = fake.called("put_energy_settings")[-1][0]
    assert sent.plug.password is None  # kept by the agent
    assert fake.energy_model.plug is not None
    assert fake.energy_model.plug.password == SHELLY_PASSWORD
    qtbot.waitUntil(lambda: app.energy.settings_dialog is None, timeout=2000)


def test_time_of_use_periods_are_checked_then_saved(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    dialog = open_settings(qtbot, app)
    dialog.tariff_kind.setCurrentIndex(dialog.tariff_kind.findData(TariffKind.TIME_OF_USE.value))
    assert not dialog.tou_box.isHidden()
    assert dialog.dynamic_box.isHidden()
    assert dialog.periods.rowCount() == 1  # a cheap night to start from
    dialog.periods.item(0, 2).setText("4.30pm")
    save = dialog.buttons.button(dialog.buttons.StandardButton.Save)
    save.click()
    assert dialog.error.text() == "Period 1: “4.30pm” is not a time. Write it like 07:30."
    assert not fake.called("put_energy_settings")
    dialog.periods.item(0, 0).setText("Mon-Fri")
    dialog.periods.item(0, 2).setText("07:30")
    dialog.price.setText("0,28")
    with qtbot.waitSignal(dialog.finished, timeout=5000):
        save.click()
    tariff = fake.energy_model.tariff
    assert tariff.kind is TariffKind.TIME_OF_USE
    assert tariff.price_per_kwh == Decimal("0.28")
    assert [(p.days, p.start_min, p.end_min, p.price_per_kwh) for p in tariff.periods] == [
        ([0, 1, 2, 3, 4], 30, 450, Decimal("0.085"))
    ]


def test_usual_heating_shows_the_default_co2_factors(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    dialog = open_settings(qtbot, app)
    assert dialog.co2_gas.text() == ""
    assert dialog.co2_gas.placeholderText() == "0.183 (default)"
    assert dialog.co2_grid.placeholderText() == "0.207 (default)"
    dialog.usual_kind.setCurrentIndex(dialog.usual_kind.findData(UsualHeatingKind.HEAT_PUMP.value))
    assert not dialog.cop.isHidden()
    assert dialog.efficiency.isHidden()
    assert dialog.fuel_price.placeholderText() == "empty: the tariff's (£0.245)"
    dialog.fuel_price.clear()
    dialog.cop.setValue(3.4)
    dialog.co2_grid.setText("0.05")
    with qtbot.waitSignal(dialog.finished, timeout=5000):
        dialog.buttons.button(dialog.buttons.StandardButton.Save).click()
    usual = fake.energy_model.usual_heating
    assert usual.kind is UsualHeatingKind.HEAT_PUMP
    assert usual.fuel_price is None
    assert usual.cop == pytest.approx(3.4)
    assert usual.co2_grid_kg_per_kwh == Decimal("0.05")
    assert usual.co2_gas_kg_per_kwh is None
    # The dashboard names the new usual heating.
    qtbot.waitUntil(lambda: app.energy.panel.usual is UsualHeatingKind.HEAT_PUMP, timeout=5000)
    qtbot.waitUntil(
        lambda: "Heat pump would have cost" in card_rows(app.energy.panel.month), timeout=5000
    )


def test_a_price_list_file_is_imported_or_its_bad_row_named(
    qtbot: QtBot, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app()
    dialog = open_settings(qtbot, app)
    good = tmp_path / "agile.csv"
    good.write_text(
        "valid_from,valid_to,value_inc_vat\n"
        + "".join(
            f"2026-11-27T{h:02d}:{m:02d}Z,2026-11-27T{h + (m + 30) // 60:02d}:{(m + 30) % 60:02d}Z,"
            f"{12.4 + h:.2f}\n"
            for h in range(23)
            for m in (0, 30)
        ),
        "utf-8",
    )
    dialog.import_file(good)
    qtbot.waitUntil(lambda: dialog.price_list_info.text().startswith("46 prices"), timeout=5000)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "valid_from,valid_to,value_inc_vat\n2026-11-27T00:00Z,2026-11-27T00:30Z,12.4\n"
        "2026-11-27T00:30Z,2026-11-27T01:00Z,cheap\n",
        "utf-8",
    )
    dialog.import_file(bad)
    qtbot.waitUntil(lambda: "#c62828" in dialog.price_list_info.styleSheet(), timeout=5000)
    assert dialog.price_list_info.text().startswith("The price list was not imported: line 3")
    dialog.import_file(tmp_path / "missing.csv")
    assert dialog.price_list_info.text() == (
        "missing.csv could not be read: No such file or directory."
    )


def test_a_slow_plug_keeps_find_busy(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.plug_probe_gate = threading.Event()
    app = make_app()
    dialog = open_settings(qtbot, app)
    dialog.plug_address.setText("192.168.1.77")
    dialog.find_button.click()
    assert not dialog.find_button.isEnabled()
    assert dialog.probe_result.text() == "Asking the plug at 192.168.1.77…"
    fake.plug_probe_gate.set()
    qtbot.waitUntil(dialog.find_button.isEnabled, timeout=5000)
    assert dialog.probe_result.text().startswith(
        "The plug at http://192.168.1.77 cannot be reached (connection refused)"
    )


# -- the statement ---------------------------------------------------------------------------


def open_statement(qtbot: QtBot, app: HeatshareApp) -> StatementDialog:
    app.energy.panel.statement_button.click()
    dialog = app.energy.statement_dialog
    assert dialog is not None
    return dialog


def test_the_statement_saves_the_agents_csv(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient, tmp_path: Path
) -> None:
    app = make_app()
    dialog = open_statement(qtbot, app)
    month = dialog.chosen_month
    target = tmp_path / "statement.csv"
    dialog.export("csv", target)
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith("Saved"), timeout=5000)
    assert target.read_text("utf-8") == fake.statement_csv(month)
    assert target.read_text("utf-8").splitlines()[-1].startswith("total,")
    # A folder that is not there: the sentence says so, nothing is left behind.
    dialog.export("csv", tmp_path / "gone" / "statement.csv")
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith("Not saved"), timeout=5000)
    assert "No such file or directory" in dialog.outcome.text()


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", data))


def test_the_statement_saves_a_pdf_with_its_chart(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient, tmp_path: Path
) -> None:
    app = make_app()
    dialog = open_statement(qtbot, app)
    target = tmp_path / "statement.pdf"
    dialog.export("pdf", target)
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith("Saved"), timeout=10_000)
    data = target.read_bytes()
    assert data.startswith(b"%PDF-1.")
    assert data.rstrip().endswith(b"%%EOF")
    assert pdf_pages(data) == 2  # totals and chart; the day-by-day table
    assert re.search(rb"/Count\s+2\b", data)
    assert "(2 pages)" in dialog.outcome.text()


def test_an_unknown_month_is_refused_with_the_agents_sentence(
    qtbot: QtBot, make_app: AppFactory, tmp_path: Path
) -> None:
    app = make_app()
    dialog = open_statement(qtbot, app)
    dialog.month.addItem("Nonsense", "2026-13")
    dialog.month.setCurrentIndex(dialog.month.count() - 1)
    dialog.export("pdf", tmp_path / "x.pdf")
    qtbot.waitUntil(lambda: dialog.outcome.text().startswith("Not saved"), timeout=5000)
    assert dialog.outcome.text() == "Not saved: “2026-13” is not a month; give it as YYYY-MM."
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler's pdftoppm not installed")
def test_the_pdf_renders_to_a_page_with_a_chart(
    qapp: QApplication, fake: FakeAgentClient, tmp_path: Path
) -> None:
    """Poppler draws the first page: the chart's bars are there in both colours."""
    pdf = tmp_path / "s.pdf"
    month = f"{fake.now:%Y-%m}"
    assert render_statement_pdf(fake.statement(month), pdf) == 2
    subprocess.run(
        ["pdftoppm", "-r", "40", "-f", "1", "-l", "1", "-png", str(pdf), str(tmp_path / "p")],
        check=True,
        timeout=60,
    )
    page = QImage(str(next(tmp_path.glob("p*.png"))))
    assert page.width() > 300
    colours = {
        page.pixelColor(x, y).name()
        for x in range(0, page.width(), 2)
        for y in range(page.height() // 2, page.height(), 2)
    }
    # The heat bars' orange and the cost bars' blue (poppler may round a step).
    assert any(_near(c, (230, 110, 20)) for c in colours)
    assert any(_near(c, (40, 110, 190)) for c in colours)


def _near(hex_colour: str, rgb: tuple[int, int, int]) -> bool:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return abs(r - rgb[0]) + abs(g - rgb[1]) + abs(b - rgb[2]) < 12

"""The app's side of the cost of heat: the dashboard's cost panel, its poll, and its dialogs.

Built by the composition root, which hands it the window and the bridge. The cost figures are
asked for every 30 s while the dashboard shows (the agent books a record a minute, so no
figure is older than that); the energy settings once per connection, for the name of the
usual heating, and again when the settings dialog opens. Dialogs open beside the window,
without a nested event loop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QMessageBox

from heatshare.gui.bridge import AgentBridge
from heatshare.gui.cost_cards import CostPanel
from heatshare.gui.energy_text import format_price
from heatshare.gui.window import DASHBOARD, MainWindow
from heatshare.protocol.energy import (
    CostsResponse,
    EnergySettings,
    PlugProbeResponse,
    PriceListInfo,
    StatementResponse,
    TariffKind,
)

if TYPE_CHECKING:  # built when first opened: not part of the app's start
    from heatshare.gui.energy_settings import EnergySettingsDialog
    from heatshare.gui.statement_export import StatementDialog

log = logging.getLogger(__name__)

COSTS_POLL_MS = 30_000


class EnergyController(QObject):
    """Keeps the cost panel fed and opens the energy settings and statement dialogs."""

    def __init__(
        self, window: MainWindow, bridge: AgentBridge, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("energy-controller")
        self.window = window
        self.bridge = bridge
        self.panel = CostPanel()
        window.set_cost_panel(self.panel)
        self.settings_dialog: EnergySettingsDialog | None = None
        self.statement_dialog: StatementDialog | None = None
        self.energy_settings: EnergySettings | None = None
        self.costs_in_flight = False
        self._open_when_loaded = False
        self._stopped = False
        self._settings_asked = False  # this connection
        self.timer = QTimer(self)
        self.timer.setObjectName("costs-poll")
        self.timer.setInterval(COSTS_POLL_MS)
        self.timer.timeout.connect(self.poll)

        b = bridge
        b.costs_received.connect(self._on_costs)
        b.costs_failed.connect(self._on_costs_failed)
        b.energy_settings_received.connect(self._on_settings)
        b.energy_settings_failed.connect(self._on_settings_failed)
        b.plug_probe_received.connect(self._on_probe)
        b.plug_probe_failed.connect(self._on_probe_failed)
        b.price_list_received.connect(self._on_price_list)
        b.price_list_failed.connect(self._on_price_list_failed)
        b.statement_received.connect(self._on_statement)
        b.statement_csv_received.connect(self._on_statement_csv)
        b.statement_failed.connect(self._on_statement_failed)
        self.panel.settings_requested.connect(self.open_settings)
        self.panel.statement_requested.connect(self.open_statement)

    # -- the poll ------------------------------------------------------------------------

    def update(self) -> None:
        """Poll while the dashboard shows and the agent answers; a fresh view polls at once."""
        on = self.bridge.reachable and self.window.page_visible(DASHBOARD) and not self._stopped
        if not self.bridge.reachable:
            self._settings_asked = False
        if on and not self.timer.isActive():
            self.timer.start()
            self.poll()
            if not self._settings_asked:
                self._settings_asked = True
                self.bridge.load_energy_settings()
        elif not on and self.timer.isActive():
            self.timer.stop()

    def poll(self) -> None:
        if not self.costs_in_flight and not self._stopped:
            self.costs_in_flight = True
            self.bridge.load_costs()

    def _on_costs(self, costs: CostsResponse) -> None:
        self.costs_in_flight = False
        self.panel.set_costs(costs)
        self._price_now()

    def _price_now(self) -> None:
        """Today's cost card names the price now where the tariff's price changes."""
        costs, settings = self.panel.costs, self.energy_settings
        flat = settings is None or settings.tariff.kind is TariffKind.FLAT
        if costs is None or costs.price_now_per_kwh is None or flat:
            self.window.dashboard.set_price_now(None)
            return
        price = format_price(costs.price_now_per_kwh, costs.currency)
        self.window.dashboard.set_price_now(f"now {price} per kWh")

    def _on_costs_failed(self, message: str) -> None:
        self.costs_in_flight = False
        log.info("Cost figures not available: %s", message)
        self.panel.set_error(message)

    # -- energy settings -----------------------------------------------------------------

    def open_settings(self) -> None:
        """Open the energy settings, read fresh from the agent first."""
        if self.settings_dialog is not None:
            self.settings_dialog.raise_()
            return
        if not self.bridge.reachable:
            QMessageBox.information(
                self.window,
                "Heatshare",
                "The energy settings come from the agent, which is not connected.",
            )
            return
        self._open_when_loaded = True
        self.bridge.load_energy_settings()

    def _on_settings(self, settings: EnergySettings) -> None:
        self.energy_settings = settings
        self.panel.set_usual(settings.usual_heating.kind)
        self._price_now()
        dialog = self.settings_dialog
        if dialog is not None and dialog.busy:
            dialog.saved()  # the agent took them
            self.poll()  # the figures follow new prices or a new usual heating at once
            return
        if self._open_when_loaded and dialog is None and not self._stopped:
            self._open_when_loaded = False
            self._show_settings(settings)

    def _show_settings(self, settings: EnergySettings) -> None:
        from heatshare.gui.energy_settings import EnergySettingsDialog

        currency = self.bridge.settings.currency if self.bridge.settings is not None else "GBP"
        dialog = EnergySettingsDialog(settings, currency, self.window)
        dialog.save_requested.connect(self.bridge.save_energy_settings)
        dialog.probe_requested.connect(self.bridge.plug_probe)
        dialog.import_requested.connect(self.bridge.import_prices)
        dialog.finished.connect(self._settings_closed)
        self.settings_dialog = dialog
        dialog.show()
        self.bridge.load_price_list()

    def _settings_closed(self, _result: int) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.deleteLater()
            self.settings_dialog = None

    def _on_settings_failed(self, message: str) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.show_error(message)
        elif self._open_when_loaded:
            self._open_when_loaded = False
            QMessageBox.warning(self.window, "Heatshare", message)
        else:
            log.info("Energy settings not read: %s", message)

    def _on_probe(self, result: PlugProbeResponse) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.set_probe_result(result)

    def _on_probe_failed(self, message: str) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.set_probe_error(message)

    def _on_price_list(self, info: PriceListInfo) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.set_price_list(info)

    def _on_price_list_failed(self, message: str) -> None:
        if self.settings_dialog is not None:
            self.settings_dialog.set_price_list_error(message)

    # -- statements ----------------------------------------------------------------------

    def open_statement(self) -> StatementDialog:
        if self.statement_dialog is not None:
            self.statement_dialog.raise_()
            return self.statement_dialog
        from heatshare.gui.statement_export import StatementDialog

        dialog = StatementDialog(parent=self.window)
        dialog.csv_requested.connect(self.bridge.load_statement_csv)
        dialog.statement_requested.connect(self.bridge.load_statement)
        dialog.finished.connect(self._statement_closed)
        self.statement_dialog = dialog
        dialog.show()
        return dialog

    def _statement_closed(self, _result: int) -> None:
        if self.statement_dialog is not None:
            self.statement_dialog.deleteLater()
            self.statement_dialog = None

    def _on_statement(self, statement: StatementResponse) -> None:
        if self.statement_dialog is not None:
            self.statement_dialog.set_statement(statement)

    def _on_statement_csv(self, month: str, text: str) -> None:
        if self.statement_dialog is not None:
            self.statement_dialog.set_csv(month, text)

    def _on_statement_failed(self, message: str) -> None:
        if self.statement_dialog is not None:
            self.statement_dialog.set_error(message)

    # -- teardown ------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopped = True
        self.timer.stop()
        for dialog in (self.settings_dialog, self.statement_dialog):
            if dialog is not None:
                dialog.done(0)

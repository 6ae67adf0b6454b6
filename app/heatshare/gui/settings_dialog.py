"""Tariff, currency and temperature unit: saved through the agent, which validates them."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from heatshare.protocol.local_api import Settings, SettingsPatch

CURRENCIES = ("GBP", "EUR", "USD", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "CAD", "AUD", "JPY")


class SettingsDialog(QDialog):
    """Edits a copy of the settings; the caller saves the patch and reports back.

    The dialog stays open until the agent accepts the values: ``show_error`` puts the
    agent's validation message under the fields, ``saved`` closes it.
    """

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Heatshare settings")
        self.setMinimumWidth(420)
        self.original = settings

        self.tariff = QLineEdit(_plain(settings.tariff_per_kwh))
        self.tariff.setPlaceholderText("for example 0.245")
        self.currency = QComboBox()
        self.currency.setEditable(True)
        self.currency.addItems(CURRENCIES)
        self.currency.setCurrentText(settings.currency)
        self.unit = QComboBox()
        self.unit.addItem("Celsius (°C)", "C")
        self.unit.addItem("Fahrenheit (°F)", "F")
        self.unit.setCurrentIndex(0 if settings.temperature_unit == "C" else 1)

        form = QFormLayout()
        form.setVerticalSpacing(12)
        form.setHorizontalSpacing(16)
        form.addRow("Electricity price per kWh", self.tariff)
        form.addRow("Currency", self.currency)
        form.addRow("Temperatures in", self.unit)

        hint = QLabel(
            "The price is what your supplier charges for one kWh of electricity. "
            "Every kWh the computer draws becomes one kWh of heat in the room."
        )
        hint.setWordWrap(True)
        hint.setObjectName("hint")
        self.error = QLabel("")
        self.error.setObjectName("formError")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 24, 24, 20)
        layout.setSpacing(16)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def patch(self) -> SettingsPatch | str:
        """The changed fields, or a sentence saying what is wrong with the input."""
        text = self.tariff.text().strip().replace(",", ".")
        try:
            tariff = Decimal(text)
        except InvalidOperation:
            return f"“{self.tariff.text()}” is not a price. Write it like 0.245."
        currency = self.currency.currentText().strip().upper()
        unit = self.unit.currentData()
        changes: dict[str, object] = {}
        if tariff != self.original.tariff_per_kwh:
            changes["tariff_per_kwh"] = tariff
        if currency != self.original.currency:
            changes["currency"] = currency
        if unit != self.original.temperature_unit:
            changes["temperature_unit"] = unit
        # The agent validates (it owns the rules); only construct the patch here.
        return SettingsPatch.model_construct(_fields_set=set(changes), **changes)  # type: ignore[arg-type]  # fields checked by the agent

    def show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.buttons.setEnabled(True)

    def set_busy(self) -> None:
        self.error.hide()
        self.buttons.setEnabled(False)


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text

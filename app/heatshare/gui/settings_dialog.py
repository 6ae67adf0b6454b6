"""The settings dialog.

Tariff, currency and temperature unit belong to the agent, which validates and saves them.
Start at login belongs to this computer and this user: the dialog sets it itself, through the
:class:`~heatshare.gui.autostart.Autostart` the composition root built. So does the agent as a
system service (Linux): that switch acts at once, since it asks for an administrator's password.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QLabel,
    QLineEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from heatshare.protocol.local_api import Settings, SettingsPatch

if TYPE_CHECKING:
    from heatshare.gui.autostart import Autostart
    from heatshare.gui.system_service import ChangeOutcome, ServiceStatus, SystemService
    from heatshare.gui.tasks import TaskRunner

log = logging.getLogger(__name__)

CURRENCIES = ("GBP", "EUR", "USD", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "CAD", "AUD", "JPY")


class SettingsDialog(QDialog):
    """Edits a copy of the settings; the caller saves the patch and reports back.

    On Save the caller first calls :meth:`apply_start_at_login` (local, at once), then sends
    :meth:`patch` to the agent. The dialog stays open until both succeed: ``show_error`` puts
    the message under the fields, and the caller accepts the dialog when the agent saved.

    Signals:
        energy_requested(): "Tariff, smart plug and usual heating…" (the dialog closes first).
    """

    energy_requested = Signal()

    def __init__(
        self,
        settings: Settings,
        autostart: Autostart,
        parent: QWidget | None = None,
        *,
        autostart_unavailable: str | None = None,
        system_service: SystemService | None = None,
        tasks: TaskRunner | None = None,
    ) -> None:
        """Args:
        settings: The agent's settings, as last read.
        autostart: This platform's start at login (built once by the composition root).
        parent: The main window, whose style sheet the dialog shares.
        autostart_unavailable: Why start at login cannot be set here, shown under the
            switch when ``autostart.supported`` is False; a general sentence by default.
        system_service: The agent's systemd unit (Linux); None or unsupported hides its switch.
        tasks: Runs systemctl and pkexec off the UI thread; inline when None.
        """
        super().__init__(parent)
        self.setWindowTitle("Heatshare settings")
        self.setMinimumWidth(460)
        self.original = settings
        self.autostart = autostart
        self.busy = False  # a save is with the agent

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
        # Time-of-use and dynamic prices, the smart plug and the usual heating: their own dialog.
        self.energy_button = QPushButton("Tariff, smart plug and usual heating…")
        self.energy_button.clicked.connect(self._energy_clicked)
        rule = QFrame()
        rule.setFrameShape(QFrame.Shape.HLine)
        rule.setFrameShadow(QFrame.Shadow.Sunken)
        login = self._build_start_at_login(autostart_unavailable)

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
        layout.addWidget(self.energy_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(rule)
        layout.addLayout(login)
        layout.addLayout(self._build_system_service(system_service, tasks))
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

    def _energy_clicked(self) -> None:
        self.reject()
        self.energy_requested.emit()

    def _build_start_at_login(self, unavailable: str | None) -> QVBoxLayout:
        """The switch and the note under it, set from the platform's current state."""
        self.start_at_login = QCheckBox("Start Heatshare when I log in")
        self.start_at_login_note = QLabel()
        self.start_at_login_note.setWordWrap(True)
        self.start_at_login_note.setObjectName("hint")
        # The note sits under the box's text, not under its tick box.
        style = self.start_at_login.style()
        self.start_at_login_note.setIndent(
            style.pixelMetric(QStyle.PixelMetric.PM_IndicatorWidth)
            + style.pixelMetric(QStyle.PixelMetric.PM_CheckBoxLabelSpacing)
        )
        self.login_initial = self._read_start_at_login(unavailable)
        box = QVBoxLayout()
        box.setSpacing(4)
        box.addWidget(self.start_at_login)
        box.addWidget(self.start_at_login_note)
        return box

    def _read_start_at_login(self, unavailable: str | None) -> bool:
        """Set the switch from the platform's current state; return that state."""
        box, note = self.start_at_login, self.start_at_login_note
        if not self.autostart.supported:
            box.setChecked(False)
            box.setEnabled(False)
            note.setText(
                unavailable
                or "Not available on this system: start Heatshare from your applications menu."
            )
            return False
        try:
            enabled = self.autostart.is_enabled()
        except OSError as exc:  # the environment's fault (a registry or folder not readable)
            log.warning("Start at login not read: %s", exc)
            enabled = False
            note.setText(f"Heatshare could not read whether it starts at login: {_reason(exc)}.")
        else:
            note.setText("Heatshare opens in the tray; heating does not depend on it.")
        box.setChecked(enabled)
        return enabled

    def _build_system_service(
        self, service: SystemService | None, tasks: TaskRunner | None
    ) -> QVBoxLayout:
        """The system service's switch and its sentence; hidden where there is no systemd."""
        self.system_service = service
        self.tasks = tasks
        self._closed = False  # a systemctl answer after the dialog closed goes nowhere
        self.finished.connect(self._on_finished)
        self.keep_heating = QCheckBox("Keep heating when nobody is logged in")
        self.keep_heating_note = QLabel()
        self.keep_heating_note.setWordWrap(True)
        self.keep_heating_note.setObjectName("hint")
        self.keep_heating_note.setIndent(self.start_at_login_note.indent())
        self.keep_heating_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box = QVBoxLayout()
        box.setSpacing(4)
        box.addWidget(self.keep_heating)
        box.addWidget(self.keep_heating_note)
        if service is None or not service.supported:
            self.keep_heating.hide()
            self.keep_heating_note.hide()
            return box
        # clicked, not toggled: only the person's click asks for a password, never a refresh.
        self.keep_heating.clicked.connect(self._keep_heating_clicked)
        self.keep_heating.setEnabled(False)
        self.keep_heating_note.setText("Asking systemd whether the service is on…")
        self._in_background(service.status, self._show_service_status)
        return box

    def _on_finished(self, _result: int) -> None:
        self._closed = True

    def _in_background(self, fn: Callable[[], Any], done: Callable[[Any], None]) -> None:
        def deliver(value: Any) -> None:
            if not self._closed:
                done(value)

        if self.tasks is None:
            deliver(fn())
        else:
            self.tasks.run("system-service", fn, deliver)

    def _show_service_status(self, status: ServiceStatus, sentence: str | None = None) -> None:
        self.keep_heating.setChecked(status.enabled)
        self.keep_heating.setEnabled(status.changeable)
        self.keep_heating_note.setText(sentence or status.sentence)

    def _keep_heating_clicked(self, on: bool) -> None:
        service = self.system_service
        assert service is not None  # the switch is connected only with a service
        self.keep_heating.setEnabled(False)
        self.keep_heating_note.setText(
            "Asking for an administrator's password to "
            f"{'turn on' if on else 'turn off'} the system service…"
        )

        def done(outcome: ChangeOutcome) -> None:
            if not outcome.ok:
                log.info("System service not changed: %s", outcome.sentence)
            self._show_service_status(outcome.status, outcome.sentence)

        self._in_background(lambda: service.set_enabled(on), done)

    def apply_start_at_login(self) -> str | None:
        """Turn start at login on or off as the switch says; a sentence to show if that failed.

        Nothing is written when the switch is as the dialog found it, so a folder that cannot
        be written does not stand in the way of saving the other settings.
        """
        wanted = self.start_at_login.isChecked()
        if not self.autostart.supported or wanted == self.login_initial:
            return None
        try:
            self.autostart.set_enabled(wanted, start_hidden=True)
        except OSError as exc:  # the environment's fault: say what and where, keep the dialog
            log.warning("Start at login not changed: %s", exc)
            what = "turned on" if wanted else "turned off"
            return (
                f"Start at login could not be {what}: {_reason(exc)}. "
                "Check that the folder exists and that you may write to it."
            )
        self.login_initial = wanted  # a retry after an agent error does not write again
        return None

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
        self.busy = False
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.buttons.setEnabled(True)

    def set_busy(self) -> None:
        self.busy = True
        self.error.hide()
        self.buttons.setEnabled(False)


def _reason(exc: OSError) -> str:
    """``Permission denied (/home/ann/.config/autostart)``: the OS's words and the place.

    A temporary file the autostart writes beside the real one is named by its folder.
    """
    words = exc.strerror or str(exc)
    if not exc.filename:
        return words
    place = Path(exc.filename)
    if place.name.startswith(".heatshare-"):
        place = place.parent
    return f"{words} ({place})"


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text

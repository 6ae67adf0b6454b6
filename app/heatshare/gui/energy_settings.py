"""Energy settings: the smart plug, the tariff, the usual heating and price-aware heating.

The agent owns these settings and validates them; the dialog edits a copy, checks what it can
say at once (a price that is not a number, a time that is not HH:MM), and sends the whole
:class:`~heatshare.protocol.energy.EnergySettings` on Save. Tests of a plug and imports of a
price list go to the agent at once, as signals, and their answers come back through
``set_probe_result``/``set_probe_error`` and ``set_price_list``/``set_price_list_error``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from heatshare.domain.heat_cost import GAS_KG_PER_KWH, GRID_KG_PER_KWH, OIL_KG_PER_KWH
from heatshare.gui.energy_text import USUAL_WORDS, format_price
from heatshare.gui.formatting import format_power
from heatshare.protocol.energy import (
    EnergySettings,
    PlugKind,
    PlugProbeRequest,
    PlugProbeResponse,
    PlugSettings,
    PriceAwareSettings,
    PriceListImport,
    PriceListInfo,
    TariffKind,
    TariffSettings,
    TouPeriodIn,
    UsualHeatingKind,
    UsualHeatingSettings,
)

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
TARIFF_WORDS = {
    TariffKind.FLAT: "One price at all times",
    TariffKind.TIME_OF_USE: "Prices by time of day (time of use)",
    TariffKind.DYNAMIC: "A published price list (dynamic, such as agile prices)",
}
PLUG_WORDS = {PlugKind.SHELLY: "Shelly (Plus, Pro, Gen3, Gen4)", PlugKind.TASMOTA: "Tasmota"}
MAX_PRICE_FILE = 5_000_000  # the agent's limit on a price list (PriceListImport.text)


def parse_price(text: str, what: str) -> Decimal | str:
    """``"0,245"`` → ``Decimal("0.245")``; a sentence when it is not a price."""
    cleaned = text.strip().replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return f"{what}: “{text.strip()}” is not a price. Write it like 0.245."
    if not value.is_finite():
        return f"{what}: “{text.strip()}” is not a price. Write it like 0.245."
    return value


def parse_days(text: str) -> list[int] | str:
    """``"Mon-Fri"``, ``"Sat, Sun"``, ``"every day"`` → weekday numbers (0 = Monday)."""
    words = text.strip().lower()
    if words in {"every day", "daily", "all", "mon-sun", "mon–sun"}:
        return list(range(7))
    names = [d.lower() for d in DAY_NAMES]
    days: set[int] = set()
    for part in re.split(r"[,\s]+", words):
        if not part:
            continue
        ends = re.split(r"[-–]", part)
        if not all(e[:3] in names for e in ends) or len(ends) > 2:
            return (
                f"“{text.strip()}” is not a set of days. Write them like Mon-Fri, Sat Sun or "
                "every day."
            )
        first, last = names.index(ends[0][:3]), names.index(ends[-1][:3])
        day = first
        while True:
            days.add(day)
            if day == last:
                break
            day = (day + 1) % 7
    if not days:
        return "Give the days of each period, like Mon-Fri."
    return sorted(days)


def days_text(days: list[int]) -> str:
    """Weekday numbers → ``"Mon-Fri"``, ``"Sat Sun"``, ``"every day"``."""
    ds = sorted(set(days))
    if ds == list(range(7)):
        return "every day"
    runs: list[list[int]] = []
    for d in ds:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[d] for d in run)
    return " ".join(parts)


def parse_minute(text: str) -> int | str:
    """``"07:30"`` → 450; ``"24:00"`` → 1440 (the end of the day)."""
    found = re.fullmatch(r"\s*(\d{1,2})[:.h](\d{2})\s*", text)
    if found is None or int(found[1]) > 24 or int(found[2]) > 59:
        return f"“{text.strip()}” is not a time. Write it like 07:30."
    minute = int(found[1]) * 60 + int(found[2])
    if minute > 1440:
        return f"“{text.strip()}” is not a time. Write it like 07:30."
    return minute


def minute_text(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def probe_text(result: PlugProbeResponse) -> str:
    """What a plug's test found: its model, its name, and what the machine draws now."""
    if not result.ok:
        return result.error or "The plug did not answer as a plug does."
    parts = [f"Found {result.model or PLUG_WORDS.get(result.kind, 'a plug')}"]  # type: ignore[arg-type]
    if result.name:
        parts[0] += f" “{result.name}”"
    if result.power_w is not None:
        parts.append(f"drawing {format_power(result.power_w)} now")
    return ", ".join(parts) + "."


def price_list_text(info: PriceListInfo, currency: str = "GBP") -> str:
    """``"96 prices, from Fri 27 Nov 00:00 to Sun 29 Nov 00:00 · fetched at 09:12"``."""
    del currency  # the count and the span are what the householder checks
    if info.count == 0:
        text = "No price list held yet."
    else:
        text = f"{info.count} price{'s' if info.count != 1 else ''}"
        if info.first is not None and info.last is not None:
            a, b = info.first.astimezone(), info.last.astimezone()
            text += f", from {a:%a} {a.day} {a:%b %H:%M} to {b:%a} {b.day} {b:%b %H:%M}"
        if info.fetched_at is not None:
            text += f" · fetched {info.fetched_at.astimezone():%d %b at %H:%M}"
    if info.error:
        text += f"\nThe last fetch failed: {info.error}"
    return text


def _plain(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("hint")
    label.setWordWrap(True)
    return label


def _validation_sentence(exc: ValidationError) -> str:
    """The first problem pydantic found, as a sentence a householder can act on."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    if "price_list_url" in where:
        return "The price list's address must start with https://."
    if "band_c" in where:
        return "The comfort band is 0 to 3 °C."
    if "price" in where or "margin" in where or "charge" in where:
        return "A price must be between -10 and 100 per kWh, with at most six decimals."
    if "co2" in where:
        return "An emission factor is 0 to 2 kg CO₂e per kWh."
    if "address" in where:
        return "Give the plug's address, such as 192.168.1.50."
    message = str(err["msg"]).removeprefix("Value error, ")
    return message[:1].upper() + message[1:] + "."


class EnergySettingsDialog(QDialog):
    """Edits the energy settings; the caller sends them and reports back.

    Signals:
        save_requested(EnergySettings): Save, with settings that passed the local checks.
        probe_requested(PlugProbeRequest): "Find" the plug at the address typed.
        import_requested(PriceListImport): a price list file read to import.
    """

    save_requested = Signal(EnergySettings)
    probe_requested = Signal(PlugProbeRequest)
    import_requested = Signal(PriceListImport)

    def __init__(
        self, settings: EnergySettings, currency: str = "GBP", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("energySettings")
        self.setWindowTitle("Energy and costs")
        self.setMinimumSize(620, 560)
        self.original = settings
        self.currency = currency
        self.busy = False
        self.probed_kind: PlugKind | None = None

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_plug(settings.plug), "Smart plug")
        self.tabs.addTab(self._build_tariff(settings.tariff), "Tariff")
        self.tabs.addTab(self._build_usual(settings), "Usual heating")
        self.tabs.addTab(self._build_price_aware(settings.price_aware), "Price-aware heating")
        self.tariff_kind.currentIndexChanged.connect(self._tariff_kind_changed)

        self.error = QLabel("")
        self.error.setObjectName("formError")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self._save)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 20, 20, 16)
        layout.setSpacing(12)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self._tariff_kind_changed()
        self._usual_kind_changed()
        self._plug_toggled()

    # -- smart plug ----------------------------------------------------------------------

    def _build_plug(self, plug: PlugSettings | None) -> QWidget:
        page = QWidget()
        self.plug_enabled = QCheckBox("Measure this computer's power with a smart plug")
        self.plug_enabled.setChecked(plug is not None)
        self.plug_enabled.toggled.connect(self._plug_toggled)
        self.plug_address = QLineEdit(plug.address if plug else "")
        self.plug_address.setPlaceholderText("for example 192.168.1.50")
        self.plug_address.textEdited.connect(self._plug_address_edited)
        self.plug_password = QLineEdit()
        self.plug_password.setEchoMode(QLineEdit.EchoMode.Password)
        self.plug_password.setPlaceholderText(
            "stored; leave empty to keep it" if plug else "only if the plug has one"
        )
        self.plug_kind = QComboBox()
        for kind, words in PLUG_WORDS.items():
            self.plug_kind.addItem(words, kind.value)
        if plug is not None:
            self.plug_kind.setCurrentIndex(self.plug_kind.findData(plug.kind.value))
        self.find_button = QPushButton("Find")
        self.find_button.setToolTip("Ask the plug at this address what it is and what it reads")
        self.find_button.clicked.connect(self._find)
        self.probe_result = QLabel("")
        self.probe_result.setWordWrap(True)
        self.probe_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.probe_result.hide()
        address_row = QHBoxLayout()
        address_row.addWidget(self.plug_address, 1)
        address_row.addWidget(self.find_button)
        self.plug_form = QFormLayout()
        self.plug_form.setVerticalSpacing(10)
        self.plug_form.addRow("Address", address_row)
        self.plug_form.addRow("Password", self.plug_password)
        self.plug_form.addRow("Kind", self.plug_kind)
        self.plug_form.addRow("", self.probe_result)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(12)
        layout.addWidget(self.plug_enabled)
        layout.addLayout(self.plug_form)
        layout.addWidget(
            _hint(
                "A plug that meters power at the wall measures all of this computer's "
                "electricity, and so all its heat: the best source for the figures. Shelly "
                "(Plus, Pro, Gen3, Gen4) and Tasmota plugs on this network are read directly; "
                "Find asks the plug what it is and what it reads now. Without a plug, or "
                "while it cannot be reached, the figures come from the computer's energy "
                "counters, else an estimate."
            )
        )
        layout.addStretch(1)
        return page

    def _plug_toggled(self) -> None:
        on = self.plug_enabled.isChecked()
        for w in (self.plug_address, self.plug_password, self.plug_kind, self.find_button):
            w.setEnabled(on)

    def _plug_address_edited(self) -> None:
        self.probed_kind = None
        self.probe_result.hide()

    def _find(self) -> None:
        address = self.plug_address.text().strip()
        if not address:
            self._show_probe("Give the plug's address, such as 192.168.1.50.", ok=False)
            return
        self.find_button.setEnabled(False)
        self._show_probe(f"Asking the plug at {address}…", ok=None)
        self.probe_requested.emit(
            PlugProbeRequest(address=address, password=self.plug_password.text() or None)
        )

    def set_probe_result(self, result: PlugProbeResponse) -> None:
        self.find_button.setEnabled(self.plug_enabled.isChecked())
        if result.ok and result.kind is not None:
            self.probed_kind = result.kind
            self.plug_kind.setCurrentIndex(self.plug_kind.findData(result.kind.value))
        self._show_probe(probe_text(result), ok=result.ok)

    def set_probe_error(self, message: str) -> None:
        self.find_button.setEnabled(self.plug_enabled.isChecked())
        self._show_probe(message, ok=False)

    def _show_probe(self, text: str, *, ok: bool | None) -> None:
        self.probe_result.setText(text)
        colour = None if ok is None else "#2e7d32" if ok else "#c62828"
        self.probe_result.setStyleSheet(f"color: {colour};" if colour else "")
        self.probe_result.show()

    # -- tariff --------------------------------------------------------------------------

    def _build_tariff(self, tariff: TariffSettings) -> QWidget:  # noqa: PLR0915 (one form)
        page = QWidget()
        self.tariff_kind = QComboBox()
        # Item data as plain strings: Qt hands an enum member back as its value.
        for kind, words in TARIFF_WORDS.items():
            self.tariff_kind.addItem(words, kind.value)
        self.tariff_kind.setCurrentIndex(self.tariff_kind.findData(tariff.kind.value))
        self.price = QLineEdit(_plain(tariff.price_per_kwh))
        self.price.setPlaceholderText("for example 0.245")
        self.standing = QLineEdit(_plain(tariff.standing_charge_per_day))
        self.standing.setPlaceholderText("0")
        self.tariff_form = QFormLayout()
        self.tariff_form.setVerticalSpacing(10)
        self.tariff_form.addRow("Tariff", self.tariff_kind)
        self.tariff_form.addRow("Price per kWh", self.price)
        self.tariff_form.addRow("Standing charge per day", self.standing)

        # Time of use: a row a period.
        self.periods = QTableWidget(0, 4)
        self.periods.setHorizontalHeaderLabels(("Days", "From", "To", "Price per kWh"))
        self.periods.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.periods.verticalHeader().hide()
        self.periods.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.periods.setMinimumHeight(140)
        for period in tariff.periods:
            self._add_period(period)
        add = QPushButton("Add a period")
        add.clicked.connect(lambda: self._add_period(None))
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove_period)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        self.tou_box = QWidget()
        tou = QVBoxLayout(self.tou_box)
        tou.setContentsMargins(0, 0, 0, 0)
        tou.addWidget(self.periods)
        tou.addLayout(buttons)
        tou.addWidget(
            _hint(
                "Days like Mon-Fri, Sat Sun or every day; times like 00:30 (24:00 for the end "
                "of the day). A period may run past midnight, 23:30 to 05:30. Outside every "
                "period the price above applies."
            )
        )

        # Dynamic: a price list from a file, and an address to fetch it from.
        self.import_button = QPushButton("Import a price list…")
        self.import_button.clicked.connect(self._choose_price_file)
        self.price_list_info = QLabel("")
        self.price_list_info.setWordWrap(True)
        self.price_list_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.price_url = QLineEdit(tariff.price_list_url or "")
        self.price_url.setPlaceholderText("https://… (optional; fetched every 6 hours)")
        self.dynamic_box = QWidget()
        dyn = QFormLayout(self.dynamic_box)
        dyn.setContentsMargins(0, 0, 0, 0)
        dyn.setVerticalSpacing(10)
        import_row = QHBoxLayout()
        import_row.addWidget(self.import_button)
        import_row.addStretch(1)
        dyn.addRow("Price list", import_row)
        dyn.addRow("", self.price_list_info)
        dyn.addRow("Fetch from", self.price_url)
        dyn.addRow(
            "",
            _hint(
                "A CSV with columns valid_from,valid_to,value_inc_vat (as agile prices are "
                "published, in pence) or start,price; or the JSON the Octopus Energy API "
                "gives. Times the list does not cover use the price above."
            ),
        )

        self.tariff_hint = _hint("")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(12)
        layout.addLayout(self.tariff_form)
        layout.addWidget(self.tou_box)
        layout.addWidget(self.dynamic_box)
        layout.addWidget(self.tariff_hint)
        layout.addStretch(1)
        return page

    def _tariff_kind_changed(self) -> None:
        kind = TariffKind(self.tariff_kind.currentData())
        label = {
            TariffKind.FLAT: "Price per kWh",
            TariffKind.TIME_OF_USE: "Price outside the periods",
            TariffKind.DYNAMIC: "Price where the list has none",
        }[kind]
        price_label = self.tariff_form.labelForField(self.price)
        if isinstance(price_label, QLabel):
            price_label.setText(label)
        self.tou_box.setVisible(kind is TariffKind.TIME_OF_USE)
        self.dynamic_box.setVisible(kind is TariffKind.DYNAMIC)
        if kind is TariffKind.TIME_OF_USE and self.periods.rowCount() == 0:
            self._add_period(None)
        self.tariff_hint.setText(
            f"Prices in {self.currency} per kWh, as your supplier states them with VAT. The "
            "standing charge is kept out of the cost of a kWh of heat: you pay it with or "
            "without Heatshare."
        )
        self._price_aware_note()

    def _add_period(self, period: TouPeriodIn | None) -> None:
        row = self.periods.rowCount()
        self.periods.insertRow(row)
        if period is None:  # a typical cheap night
            values = ("every day", "00:30", "04:30", "0.085")
        else:
            values = (
                days_text(period.days),
                minute_text(period.start_min),
                minute_text(period.end_min),
                _plain(period.price_per_kwh),
            )
        for col, value in enumerate(values):
            self.periods.setItem(row, col, QTableWidgetItem(value))

    def _remove_period(self) -> None:
        rows = sorted({i.row() for i in self.periods.selectedIndexes()}, reverse=True)
        for row in rows or [self.periods.rowCount() - 1]:
            if row >= 0:
                self.periods.removeRow(row)

    def _read_periods(self) -> list[TouPeriodIn] | str:
        periods = []
        for row in range(self.periods.rowCount()):
            cells = [
                (self.periods.item(row, c).text() if self.periods.item(row, c) else "")  # type: ignore[union-attr]
                for c in range(4)
            ]
            where = f"Period {row + 1}"
            days = parse_days(cells[0])
            start = parse_minute(cells[1])
            end = parse_minute(cells[2])
            price = parse_price(cells[3], f"{where}'s price")
            for value in (days, start, end, price):
                if isinstance(value, str):
                    return f"{where}: {value}" if not value.startswith(where) else value
            assert isinstance(days, list) and isinstance(start, int) and isinstance(end, int)
            assert isinstance(price, Decimal)
            if start == end:
                return f"{where} starts when it ends: give it some time."
            try:
                periods.append(
                    TouPeriodIn(days=days, start_min=start, end_min=end, price_per_kwh=price)
                )
            except ValidationError as exc:
                return f"{where}: {_validation_sentence(exc)}"
        return periods

    def _choose_price_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Import a price list", str(Path.home()), "Price lists (*.csv *.json);;All (*)"
        )
        if name:
            self.import_file(Path(name))

    def import_file(self, path: Path) -> None:
        """Read a price list file and send it to the agent (a sentence if it cannot be read)."""
        try:
            size = path.stat().st_size
            if size > MAX_PRICE_FILE:
                self.set_price_list_error(
                    f"{path.name} is {size // 1_000_000} MB: a price list is at most 5 MB."
                )
                return
            text = path.read_text("utf-8-sig")
        except UnicodeDecodeError:
            self.set_price_list_error(f"{path.name} is not a text file (CSV or JSON).")
            return
        except OSError as exc:
            self.set_price_list_error(f"{path.name} could not be read: {exc.strerror or exc}.")
            return
        if not text.strip():
            self.set_price_list_error(f"{path.name} is empty.")
            return
        fmt = "json" if path.suffix.lower() == ".json" or text.lstrip()[:1] in "[{" else "csv"
        self.import_button.setEnabled(False)
        self._show_price_list(f"Importing {path.name}…", ok=None)
        self.import_requested.emit(PriceListImport(format=fmt, text=text))

    def set_price_list(self, info: PriceListInfo) -> None:
        self.import_button.setEnabled(True)
        self._show_price_list(price_list_text(info), ok=None if info.error is None else False)

    def set_price_list_error(self, message: str) -> None:
        self.import_button.setEnabled(True)
        self._show_price_list(message, ok=False)  # the agent's sentence says it was refused

    def _show_price_list(self, text: str, *, ok: bool | None) -> None:
        self.price_list_info.setText(text)
        self.price_list_info.setStyleSheet("color: #c62828;" if ok is False else "")

    # -- usual heating -------------------------------------------------------------------

    def _build_usual(self, settings: EnergySettings) -> QWidget:  # noqa: PLR0915 (one form)
        usual = settings.usual_heating
        page = QWidget()
        self.usual_kind = QComboBox()
        self.usual_kind.addItem("Not set (no comparison)", UsualHeatingKind.NONE.value)
        for kind in list(UsualHeatingKind)[1:]:
            self.usual_kind.addItem(USUAL_WORDS[kind], kind.value)
        self.usual_kind.setCurrentIndex(self.usual_kind.findData(usual.kind.value))
        self.usual_kind.currentIndexChanged.connect(self._usual_kind_changed)
        self.fuel_price = QLineEdit(_plain(usual.fuel_price))
        self.efficiency = QDoubleSpinBox()
        self.efficiency.setRange(1, 110)
        self.efficiency.setDecimals(0)
        self.efficiency.setSuffix(" %")
        self.efficiency.setValue(usual.efficiency_pct)
        self.cop = QDoubleSpinBox()
        self.cop.setRange(0.5, 10)
        self.cop.setDecimals(1)
        self.cop.setSingleStep(0.1)
        self.cop.setValue(usual.cop)
        self.co2_gas = self._co2_field(usual.co2_gas_kg_per_kwh, GAS_KG_PER_KWH)
        self.co2_oil = self._co2_field(usual.co2_oil_kg_per_kwh, OIL_KG_PER_KWH)
        self.co2_grid = self._co2_field(usual.co2_grid_kg_per_kwh, GRID_KG_PER_KWH)
        self.season_start = QComboBox()
        for i, name in enumerate(MONTHS, start=1):
            self.season_start.addItem(f"1 {name}", f"{i:02d}-01")
        index = self.season_start.findData(settings.season_start)
        if index < 0:
            month, day = settings.season_start.split("-")
            self.season_start.addItem(f"{int(day)} {MONTHS[int(month) - 1]}", settings.season_start)
            index = self.season_start.count() - 1
        self.season_start.setCurrentIndex(index)
        self.usual_form = QFormLayout()
        self.usual_form.setVerticalSpacing(10)
        self.usual_form.addRow("Usual heating", self.usual_kind)
        self.usual_form.addRow("Fuel price", self.fuel_price)
        self.usual_form.addRow("Efficiency", self.efficiency)
        self.usual_form.addRow("Coefficient of performance", self.cop)
        co2_form = QFormLayout()
        co2_form.setVerticalSpacing(10)
        co2_form.addRow("Gas", self.co2_gas)
        co2_form.addRow("Heating oil", self.co2_oil)
        co2_form.addRow("Grid electricity", self.co2_grid)
        co2_title = QLabel("<b>Emissions</b>, kg CO₂e per kWh")
        season_form = QFormLayout()
        season_form.addRow("Heating season starts", self.season_start)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(12)
        layout.addLayout(self.usual_form)
        self.usual_hint = _hint("")
        layout.addWidget(self.usual_hint)
        layout.addWidget(co2_title)
        layout.addLayout(co2_form)
        layout.addWidget(
            _hint(
                "Empty: the UK government's 2024 factors shown in grey. Grids elsewhere "
                "differ widely (France about 0.05, Poland about 0.7): set your own."
            )
        )
        layout.addLayout(season_form)
        layout.addStretch(1)
        return page

    @staticmethod
    def _co2_field(value: Decimal | None, default: Decimal) -> QLineEdit:
        field = QLineEdit(_plain(value))
        field.setPlaceholderText(f"{default} (default)")
        return field

    def _usual_kind_changed(self) -> None:
        kind = UsualHeatingKind(self.usual_kind.currentData())
        flat = format_price(self.original.tariff.price_per_kwh, self.currency)
        price_label, placeholder, hint = {
            UsualHeatingKind.NONE: ("Fuel price", "", "Set the usual heating to see the saving."),
            UsualHeatingKind.GAS_BOILER: (
                "Gas price per kWh",
                "for example 0.0635",
                "A condensing boiler is about 85 % efficient over a season, an older one 70 %.",
            ),
            UsualHeatingKind.HEAT_PUMP: (
                "Electricity price per kWh",
                f"empty: the tariff's ({flat})",
                "An air-to-water heat pump gives about 3 kWh of heat per kWh over a season.",
            ),
            UsualHeatingKind.ELECTRIC_HEATER: (
                "Electricity price per kWh",
                f"empty: the tariff's ({flat})",
                "An electric heater turns each kWh into a kWh of heat, as this computer does.",
            ),
            UsualHeatingKind.OIL_BOILER: (
                "Oil price per litre",
                "for example 0.62",
                "A litre of heating oil holds about 10.35 kWh.",
            ),
        }[kind]
        self.fuel_price.setPlaceholderText(placeholder)
        self.usual_form.setRowVisible(self.fuel_price, kind is not UsualHeatingKind.NONE)
        label = self.usual_form.labelForField(self.fuel_price)
        if isinstance(label, QLabel):
            label.setText(price_label)
        self.usual_form.setRowVisible(
            self.efficiency, kind in (UsualHeatingKind.GAS_BOILER, UsualHeatingKind.OIL_BOILER)
        )
        self.usual_form.setRowVisible(self.cop, kind is UsualHeatingKind.HEAT_PUMP)
        self.usual_hint.setText(hint)

    # -- price-aware heating -------------------------------------------------------------

    def _build_price_aware(self, pa: PriceAwareSettings) -> QWidget:
        page = QWidget()
        self.price_aware = QCheckBox("Heat when electricity is cheap")
        self.price_aware.setChecked(pa.enabled)
        self.band = QDoubleSpinBox()
        self.band.setRange(0, 3)
        self.band.setDecimals(1)
        self.band.setSingleStep(0.1)
        self.band.setSuffix(" °C")
        self.band.setValue(pa.band_c)
        self.margin = QLineEdit(_plain(pa.min_margin_per_kwh))
        self.margin.setPlaceholderText("0")
        form = QFormLayout()
        form.setVerticalSpacing(10)
        form.addRow("Comfort band, ±", self.band)
        form.addRow("Earn first: minimum margin per kWh", self.margin)
        self.price_aware_note_label = _hint("")
        layout = QVBoxLayout(page)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(12)
        layout.addWidget(self.price_aware)
        layout.addLayout(form)
        layout.addWidget(
            _hint(
                "Heat first warms the room up to the band above its target in the cheapest "
                "hours and lets it cool to the band below in the dearest, for the same comfort "
                "on average. Earn first computes only while a kWh earns more than it costs by "
                "the margin."
            )
        )
        layout.addWidget(self.price_aware_note_label)
        layout.addStretch(1)
        return page

    def _price_aware_note(self) -> None:
        dynamic = TariffKind(self.tariff_kind.currentData()) is not TariffKind.FLAT
        self.price_aware_note_label.setText(
            ""
            if dynamic
            else "With one price at all times there is no cheaper hour to move heat to: this "
            "takes effect with a time-of-use or dynamic tariff."
        )

    # -- saving --------------------------------------------------------------------------

    def value(self) -> EnergySettings | str:  # noqa: PLR0911, PLR0912 (one check a field)
        """The settings as edited, or a sentence saying what to correct."""
        plug = None
        if self.plug_enabled.isChecked():
            address = self.plug_address.text().strip()
            if not address:
                self.tabs.setCurrentIndex(0)
                return "Give the plug's address, such as 192.168.1.50, or untick the smart plug."
            try:
                plug = PlugSettings(
                    address=address,
                    kind=PlugKind(self.plug_kind.currentData()),  # set by Find, or by hand
                    password=self.plug_password.text() or None,
                )
            except ValidationError as exc:
                return _validation_sentence(exc)
        tariff_kind = TariffKind(self.tariff_kind.currentData())
        price = parse_price(self.price.text(), "The price per kWh")
        standing = parse_price(self.standing.text() or "0", "The standing charge")
        for value in (price, standing):
            if isinstance(value, str):
                self.tabs.setCurrentIndex(1)
                return value
        periods: list[TouPeriodIn] = []
        if tariff_kind is TariffKind.TIME_OF_USE:
            read = self._read_periods()
            if isinstance(read, str):
                self.tabs.setCurrentIndex(1)
                return read
            periods = read
        fuel: Decimal | None = None
        if self.fuel_price.text().strip():
            parsed = parse_price(self.fuel_price.text(), "The usual heating's price")
            if isinstance(parsed, str):
                self.tabs.setCurrentIndex(2)
                return parsed
            fuel = parsed
        factors: list[Decimal | None] = []
        for field, name in ((self.co2_gas, "gas"), (self.co2_oil, "oil"), (self.co2_grid, "grid")):
            text = field.text().strip().replace(",", ".")
            if not text:
                factors.append(None)
                continue
            try:
                factors.append(Decimal(text))
            except InvalidOperation:
                self.tabs.setCurrentIndex(2)
                return f"The {name} emission factor: “{text}” is not a number. Write it like 0.2."
        margin = parse_price(self.margin.text() or "0", "The minimum margin")
        if isinstance(margin, str):
            self.tabs.setCurrentIndex(3)
            return margin
        try:
            return EnergySettings(
                plug=plug,
                tariff=TariffSettings(
                    kind=tariff_kind,
                    price_per_kwh=price,
                    periods=periods,
                    standing_charge_per_day=standing,
                    price_list_url=self.price_url.text().strip() or None,
                ),
                usual_heating=UsualHeatingSettings(
                    kind=UsualHeatingKind(self.usual_kind.currentData()),
                    fuel_price=fuel,
                    efficiency_pct=self.efficiency.value(),
                    cop=self.cop.value(),
                    co2_gas_kg_per_kwh=factors[0],
                    co2_oil_kg_per_kwh=factors[1],
                    co2_grid_kg_per_kwh=factors[2],
                ),
                price_aware=PriceAwareSettings(
                    enabled=self.price_aware.isChecked(),
                    band_c=self.band.value(),
                    min_margin_per_kwh=margin,
                ),
                season_start=self.season_start.currentData(),
            )
        except ValidationError as exc:
            return _validation_sentence(exc)

    def _save(self) -> None:
        value = self.value()
        if isinstance(value, str):
            self.show_error(value)
            return
        self.busy = True
        self.error.hide()
        self.buttons.setEnabled(False)
        self.save_requested.emit(value)

    def show_error(self, message: str) -> None:
        self.busy = False
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.buttons.setEnabled(True)

    def saved(self) -> None:
        """The agent took the settings: close."""
        self.busy = False
        self.accept()

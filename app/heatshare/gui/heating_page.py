"""The Heating page: the room and its target, the mode, why the heater computes or not, the safety
events with their grace countdowns, and the heating settings (schedule, room thermometer, safety
limits, summer and quiet) with Save and Revert.

Fed by the composition root (``set_heating``, ``set_settings``, ``set_probe_result``…); every
request goes out as a signal. Mode, boost and the target's nudges act at once; the settings
below them wait for Save. Temperatures show in the user's unit and are stored in °C.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import ValidationError
from PySide6.QtCore import QDate, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QBoxLayout,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from heatshare.gui.dashboard import Banner, FigureCard
from heatshare.gui.heating_text import (
    MODE_HINTS,
    MODE_WORDS,
    NOT_AVAILABLE,
    RULE_TITLES,
    Unit,
    event_stopped,
    event_when,
    format_room,
    heat_detail,
    local_hhmm,
    nudge_delta_c,
    nudge_text,
    room_detail,
    target_detail,
)
from heatshare.gui.schedule_editor import ScheduleEditor, normalised
from heatshare.protocol.heating import (
    HeatingSettings,
    HeatingStatus,
    HeatMode,
    HomeAssistantSource,
    MqttSource,
    RoomProbeRequest,
    RoomProbeResponse,
    RoomSourceKind,
    SafetyEvent,
    SafetyLimits,
    SensorEntity,
    SetpointRequest,
)

TICK_MS = 1000  # the grace countdowns and "measured … ago" move on each second
BOOST_MINUTES = 60
REFUSAL_SHOWN_S = 15  # a refused change's sentence outlasts the 2 s polls this long
NARROW_W = 1040  # below this the safety limits' two columns stack
TAB_SCHEDULE, TAB_ROOM, TAB_LIMITS, TAB_SUMMER = range(4)
_ENTITY_RE = re.compile(r"^sensor\.[a-z0-9_]+$")
_OUTDOOR_RE = re.compile(r"^(sensor|weather)\.[a-z0-9_]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")


def _font(delta: float, weight: QFont.Weight = QFont.Weight.DemiBold) -> QFont:
    font = QFont()
    font.setPointSizeF(font.pointSizeF() + delta)
    font.setWeight(weight)
    return font


def ha_url_problem(url: str) -> str | None:
    """A sentence when the Home Assistant address will not do."""
    if not url:
        return "Enter Home Assistant's address, for example http://homeassistant.local:8123."
    if not re.match(r"^https?://", url):
        return "Home Assistant's address starts with http:// or https://."
    rest = url.split("://", 1)[1]
    if not rest or rest.startswith(("/", ":")):
        return "Home Assistant's address needs a server name after http://."
    if " " in url:
        return "Home Assistant's address has no spaces."
    if len(url) > 500:
        return "Home Assistant's address is too long."
    return None


def _first_error(exc: ValidationError) -> str:
    """A pydantic error as a sentence (the models' own messages are written for people)."""
    err = exc.errors()[0]
    msg = str(err.get("msg", "not valid"))
    msg = msg.removeprefix("Value error, ")
    where = " → ".join(str(x) for x in err.get("loc", ()) if not isinstance(x, int))
    text = f"{msg[0].upper()}{msg[1:]}" if msg else "A value is not valid"
    return f"{text} ({where})." if where else f"{text}."


class TempSpin(QDoubleSpinBox):
    """A temperature typed in the user's unit and kept in °C.

    The °C value changes only when the user edits the box, so showing a stored value in °F and
    back leaves it exactly as it was.
    """

    def __init__(self, lo_c: float, hi_c: float, *, difference: bool = False) -> None:
        super().__init__()
        self._lo, self._hi = lo_c, hi_c
        self._difference = difference  # a temperature difference: no 32 °F offset
        self._unit: Unit = "C"
        self._c = lo_c
        self._setting = False
        self.setDecimals(1)
        self.setKeyboardTracking(False)
        self.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.setMinimumWidth(96)
        self.valueChanged.connect(self._edited)
        self._configure()

    def _to_unit(self, c: float) -> float:
        if self._unit == "C":
            return c
        return c * 9.0 / 5.0 + (0.0 if self._difference else 32.0)

    def _from_unit(self, v: float) -> float:
        if self._unit == "C":
            return v
        return (v - (0.0 if self._difference else 32.0)) * 5.0 / 9.0

    def _configure(self) -> None:
        self._setting = True
        try:
            self.setRange(self._to_unit(self._lo), self._to_unit(self._hi))
            self.setSingleStep(1.0 if self._unit == "F" else 0.5)
            self.setSuffix(f" °{self._unit}")
            self.setValue(self._to_unit(self._c))
        finally:
            self._setting = False

    def set_unit(self, unit: Unit) -> None:
        if unit != self._unit:
            self._unit = unit
            self._configure()

    def set_c(self, celsius: float) -> None:
        self._c = celsius
        self._configure()

    def c(self) -> float:
        return self._c

    def _edited(self, value: float) -> None:
        if not self._setting:
            self._c = min(self._hi, max(self._lo, round(self._from_unit(value), 2)))


def _pct_spin(lo: float, hi: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setDecimals(0)
    spin.setSingleStep(5)
    spin.setSuffix(" %")
    spin.setAlignment(Qt.AlignmentFlag.AlignRight)
    spin.setKeyboardTracking(False)
    spin.setMinimumWidth(96)
    return spin


def _int_spin(lo: int, hi: int, suffix: str, step: int = 1) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setSuffix(suffix)
    spin.setAlignment(Qt.AlignmentFlag.AlignRight)
    spin.setKeyboardTracking(False)
    spin.setMinimumWidth(96)
    return spin


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("hint")
    label.setWordWrap(True)
    return label


def _section(text: str) -> QLabel:
    label = QLabel(text)
    label.setFont(_font(1))
    return label


LABEL_W = 140  # one label column for the forms of a tab, so their fields line up


def _form() -> QFormLayout:
    form = QFormLayout()
    # Fields at their own width: a temperature box stretched across the window reads badly.
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
    form.setFormAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    form.setHorizontalSpacing(12)
    form.setVerticalSpacing(8)
    return form


def _label(text: str) -> QLabel:
    label = QLabel(text)
    label.setMinimumWidth(LABEL_W)
    return label


def _wide(edit: QLineEdit, width: int = 440) -> QLineEdit:
    edit.setMinimumWidth(width)
    return edit


def _mmdd(edit: QDateEdit) -> str:
    d = edit.date()
    return f"{d.month():02d}-{d.day():02d}"


def _set_mmdd(edit: QDateEdit, text: str | None, fallback: str) -> None:
    month, day = (int(x) for x in (text or fallback).split("-"))
    edit.setDate(QDate(2000, month, day))  # a leap year: 29 February is a date too


class HeatingPage(QWidget):
    """The heater as a thermostat: state and mode above, settings below.

    Signals:
        mode_requested(HeatMode): a mode button.
        boost_requested(int): "Boost 1 h" (60) or "End boost" (0).
        setpoint_requested(SetpointRequest): the target's −/+ and "Back to schedule".
        save_requested(HeatingSettings): Save, with settings checked here first.
        revert_requested(): Revert: the stored settings are wanted again.
        probe_requested(RoomProbeRequest): "Find sensors" or "Test".
    """

    mode_requested = Signal(object)
    boost_requested = Signal(int)
    setpoint_requested = Signal(object)
    save_requested = Signal(object)
    revert_requested = Signal()
    probe_requested = Signal(object)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(parent)
        self.setObjectName("heatingPage")
        self._now = now
        self.unit: Unit = "C"
        self.status: HeatingStatus | None = None
        self.saved: HeatingSettings | None = None  # as the agent last said (no secrets)
        self.saving = False
        self.probing: Literal["find", "test"] | None = None
        self._loading = False  # filling the form from settings: not a user's edit
        self._active = False
        self._event_banners: list[tuple[Banner, Banner]] = []
        self._stale_s = SafetyLimits().stale_after_s
        self._grid_minute = -1
        self._refused_at: datetime | None = None

        self._timer = QTimer(self)
        self._timer.setObjectName("heating-countdown")
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)

        body = QWidget()
        body.setObjectName("heatingBody")
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 12, 0)
        layout.setSpacing(14)
        layout.addLayout(self._build_header())
        self.error_banner = Banner("error")
        layout.addWidget(self.error_banner)
        layout.addLayout(self._build_cards())
        layout.addLayout(self._build_modes())
        layout.addWidget(self._build_why())
        layout.addWidget(self._build_settings(), 1)

        scroll = QScrollArea()
        scroll.setObjectName("heatingScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(scroll, 1)
        outer.addWidget(self.save_bar)
        self._show_waiting()
        self._update_buttons()

    # -- building: state -----------------------------------------------------------------

    def _build_header(self) -> QHBoxLayout:
        title = QLabel("Heating")
        title.setFont(_font(4))
        self.header_note = QLabel("")
        self.header_note.setObjectName("hint")
        header = QHBoxLayout()
        header.addWidget(title)
        header.addSpacing(12)
        header.addWidget(self.header_note, 1)
        return header

    def _build_cards(self) -> QGridLayout:
        self.room_card = FigureCard("Room now")
        self.target_card = FigureCard("Target")
        self.heat_card = FigureCard("Heat demand")
        for card in (self.room_card, self.target_card, self.heat_card):
            card.value.setFont(_font(18))
            card.detail.setWordWrap(True)  # a long source or target line wraps, not widens
        self.cooler_button = QPushButton(nudge_text("C", -1))
        self.cooler_button.setObjectName("cooler")
        self.cooler_button.setToolTip("Cooler, until the schedule's next change")
        self.cooler_button.clicked.connect(lambda: self._nudge(-1))
        self.warmer_button = QPushButton(nudge_text("C", 1))
        self.warmer_button.setObjectName("warmer")
        self.warmer_button.setToolTip("Warmer, until the schedule's next change")
        self.warmer_button.clicked.connect(lambda: self._nudge(1))
        self.schedule_button = QPushButton("Back to schedule")
        self.schedule_button.clicked.connect(
            lambda: self.setpoint_requested.emit(SetpointRequest(clear=True))
        )
        self.schedule_button.hide()
        nudges = QHBoxLayout()
        nudges.setSpacing(6)
        nudges.addWidget(self.cooler_button)
        nudges.addWidget(self.warmer_button)
        nudges.addWidget(self.schedule_button)
        nudges.addStretch(1)
        target_layout = self.target_card.layout()
        assert isinstance(target_layout, QVBoxLayout)
        target_layout.insertLayout(target_layout.count() - 1, nudges)
        grid = QGridLayout()
        grid.setHorizontalSpacing(16)
        for col, card in enumerate((self.room_card, self.target_card, self.heat_card)):
            grid.addWidget(card, 0, col)
            grid.setColumnStretch(col, 1)
        return grid

    def _build_modes(self) -> QHBoxLayout:
        label = QLabel("Mode")
        label.setFont(_font(1))
        self.mode_group = QButtonGroup(self)
        self.mode_group.setExclusive(True)
        self.mode_buttons: dict[HeatMode, QToolButton] = {}
        row = QHBoxLayout()
        row.setSpacing(0)
        row.addWidget(label)
        row.addSpacing(14)
        for mode in HeatMode:
            button = QToolButton()
            button.setText(MODE_WORDS[mode])
            button.setToolTip(MODE_HINTS[mode])
            button.setCheckable(True)
            button.setObjectName("modeButton")
            button.setMinimumWidth(96)
            self.mode_group.addButton(button)
            self.mode_buttons[mode] = button
            button.clicked.connect(lambda _=False, m=mode: self._mode_clicked(m))
            row.addWidget(button)
        row.addSpacing(16)
        self.boost_button = QPushButton("Boost 1 h")
        self.boost_button.setObjectName("boostButton")
        self.boost_button.setToolTip("Full heat for an hour, within the safety limits")
        self.boost_button.clicked.connect(self._boost_clicked)
        row.addWidget(self.boost_button)
        row.addSpacing(16)
        self.mode_hint = _hint("")
        row.addWidget(self.mode_hint, 1)
        return row

    def _build_why(self) -> QWidget:
        box = QFrame()
        box.setObjectName("figureCard")
        self.reason = QLabel("")
        self.reason.setObjectName("heatingReason")
        self.reason.setFont(_font(2, QFont.Weight.Normal))
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.events_box = QVBoxLayout()
        self.events_box.setSpacing(6)
        self.alerts = _hint("")
        self.alerts.hide()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(20, 12, 20, 12)
        layout.setSpacing(8)
        title = QLabel("WHY")
        title.setObjectName("cardTitle")
        title.setFont(_font(-1))
        layout.addWidget(title)
        layout.addWidget(self.reason)
        layout.addLayout(self.events_box)
        layout.addWidget(self.alerts)
        return box

    # -- building: settings --------------------------------------------------------------

    def _build_settings(self) -> QWidget:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("heatingTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_schedule_tab(), "Schedule")
        self.tabs.addTab(self._build_room_tab(), "Room thermometer")
        self.tabs.addTab(self._build_limits_tab(), "Safety limits")
        self.tabs.addTab(self._build_summer_tab(), "Summer and quiet")

        self.form_error = QLabel("")
        self.form_error.setObjectName("formError")
        self.form_error.setWordWrap(True)
        self.form_error.hide()
        self.form_state = QLabel("")
        self.form_state.setObjectName("hint")
        self.revert_button = QPushButton("Revert")
        self.revert_button.clicked.connect(self._revert_clicked)
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        buttons = QHBoxLayout()
        buttons.addWidget(self.form_state, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)

        host = QWidget()
        layout = QVBoxLayout(host)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.tabs, 1)
        # The error and the buttons stay in view below the scrolling page (see __init__).
        self.save_bar = QWidget()
        bar = QVBoxLayout(self.save_bar)
        bar.setContentsMargins(0, 8, 12, 0)
        bar.setSpacing(6)
        bar.addWidget(self.form_error)
        bar.addLayout(buttons)
        return host

    def _tab(self) -> tuple[QWidget, QVBoxLayout]:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        layout.setContentsMargins(4, 12, 4, 4)
        layout.setSpacing(10)
        return tab, layout

    def _build_schedule_tab(self) -> QWidget:
        tab, layout = self._tab()
        self.comfort_c = TempSpin(5.0, 30.0)
        self.eco_c = TempSpin(5.0, 30.0)
        self.comfort_power = _pct_spin(0, 100)
        self.eco_power = _pct_spin(0, 100)
        temps = QHBoxLayout()
        temps.setSpacing(8)
        temps.addWidget(QLabel("Comfort"))
        temps.addWidget(self.comfort_c)
        temps.addSpacing(16)
        temps.addWidget(QLabel("Eco"))
        temps.addWidget(self.eco_c)
        temps.addStretch(1)
        power = QHBoxLayout()
        power.setSpacing(8)
        self.power_label = QLabel("Without a thermometer, run at")
        power.addWidget(self.power_label)
        power.addWidget(self.comfort_power)
        self.power_between = QLabel("in comfort periods and")
        power.addWidget(self.power_between)
        power.addWidget(self.eco_power)
        self.power_after = QLabel("in eco.")
        power.addWidget(self.power_after)
        power.addStretch(1)
        self.schedule = ScheduleEditor(now=lambda: self._now().astimezone())
        layout.addLayout(temps)
        layout.addLayout(power)
        layout.addWidget(self.schedule)
        layout.addStretch(1)
        for spin in (self.comfort_c, self.eco_c, self.comfort_power, self.eco_power):
            spin.valueChanged.connect(self._form_edited)
        self.schedule.changed.connect(self._form_edited)
        return tab

    def _build_room_tab(self) -> QWidget:  # noqa: PLR0915 (one form, read top to bottom)
        tab, layout = self._tab()
        self.source = QComboBox()
        # Item data as plain strings: Qt's findData does not match Python enum members.
        self.source.addItem("None: follow the schedule's power levels", RoomSourceKind.NONE.value)
        self.source.addItem("Home Assistant", RoomSourceKind.HOME_ASSISTANT.value)
        self.source.addItem("MQTT (Zigbee2MQTT and the like)", RoomSourceKind.MQTT.value)
        self.source.currentIndexChanged.connect(self._source_changed)
        top = _form()
        top.addRow(_label("Room thermometer"), self.source)
        layout.addLayout(top)

        self.source_pages = QStackedWidget()
        none_page = QWidget()
        none_layout = QVBoxLayout(none_page)
        none_layout.setContentsMargins(0, 0, 0, 0)
        none_layout.addWidget(
            _hint(
                "Without a thermometer, Heatshare cannot hold the room at a temperature: it "
                "runs at the power levels set on the Schedule tab. A thermometer in Home "
                "Assistant or on MQTT lets it heat only as much as the room needs."
            )
        )
        none_layout.addStretch(1)

        ha_page = QWidget()
        ha = _form()
        ha_page.setLayout(ha)
        ha.setContentsMargins(0, 0, 0, 0)
        self.ha_url = QLineEdit()
        self.ha_url.setPlaceholderText("http://homeassistant.local:8123")
        self.ha_token = QLineEdit()
        self.ha_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.find_button = QPushButton("Find sensors")
        self.find_button.clicked.connect(self.find_sensors)
        token_row = QHBoxLayout()
        token_row.setSpacing(8)
        token_row.addWidget(self.ha_token, 1)
        token_row.addWidget(self.find_button)
        self.ha_entity = QComboBox()
        self.ha_outdoor = QComboBox()
        for combo in (self.ha_entity, self.ha_outdoor):
            combo.setMinimumContentsLength(36)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.ha_tls = QCheckBox("Check the server's certificate (https)")
        _wide(self.ha_url, 420)
        _wide(self.ha_token, 300)
        ha.addRow(_label("Address"), self.ha_url)
        ha.addRow(_label("Access token"), token_row)
        ha.addRow(_label("Room sensor"), self.ha_entity)
        ha.addRow(_label("Outdoor sensor"), self.ha_outdoor)
        ha.addRow(_label(""), self.ha_tls)

        mqtt_page = QWidget()
        mq = _form()
        mqtt_page.setLayout(mq)
        mq.setContentsMargins(0, 0, 0, 0)
        self.mqtt_host = QLineEdit()
        self.mqtt_host.setPlaceholderText("broker.local")
        self.mqtt_port = _int_spin(1, 65535, "")
        self.mqtt_port.setValue(1883)
        self.mqtt_port.setGroupSeparatorShown(False)
        self.mqtt_tls = QCheckBox("TLS")
        broker_row = QHBoxLayout()
        broker_row.setSpacing(8)
        broker_row.addWidget(self.mqtt_host, 1)
        broker_row.addWidget(QLabel("Port"))
        broker_row.addWidget(self.mqtt_port)
        broker_row.addWidget(self.mqtt_tls)
        self.mqtt_user = QLineEdit()
        self.mqtt_user.setPlaceholderText("none")
        self.mqtt_password = QLineEdit()
        self.mqtt_password.setEchoMode(QLineEdit.EchoMode.Password)
        login_row = QHBoxLayout()
        login_row.setSpacing(8)
        login_row.addWidget(self.mqtt_user, 1)
        login_row.addWidget(QLabel("Password"))
        login_row.addWidget(self.mqtt_password, 1)
        self.mqtt_topic = QLineEdit()
        self.mqtt_topic.setPlaceholderText("zigbee2mqtt/study_thermometer")
        self.mqtt_field = QLineEdit()
        self.mqtt_field.setPlaceholderText("empty: the message is the number itself")
        self.mqtt_outdoor = QLineEdit()
        self.mqtt_outdoor.setPlaceholderText("optional")
        self.mqtt_discovery = QCheckBox("Show this heater in Home Assistant (MQTT discovery)")
        self.mqtt_prefix = QLineEdit()
        _wide(self.mqtt_host, 220)
        _wide(self.mqtt_user, 160)
        _wide(self.mqtt_password, 160)
        _wide(self.mqtt_topic, 420)
        _wide(self.mqtt_field, 420)
        _wide(self.mqtt_outdoor, 420)
        _wide(self.mqtt_prefix, 200)
        mq.addRow(_label("Broker"), broker_row)
        mq.addRow(_label("User name"), login_row)
        mq.addRow(_label("Topic"), self.mqtt_topic)
        mq.addRow(_label("JSON field"), self.mqtt_field)
        mq.addRow(_label("Outdoor topic"), self.mqtt_outdoor)
        mq.addRow(_label(""), self.mqtt_discovery)
        mq.addRow(_label("Discovery prefix"), self.mqtt_prefix)

        self.source_pages.addWidget(none_page)
        self.source_pages.addWidget(ha_page)
        self.source_pages.addWidget(mqtt_page)
        layout.addWidget(self.source_pages)

        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("Read the thermometer now, before saving")
        self.test_button.clicked.connect(self.test_source)
        self.probe_label = QLabel("")
        self.probe_label.setWordWrap(True)
        self.probe_label.setObjectName("probeResult")
        self.probe_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button, 0, Qt.AlignmentFlag.AlignTop)
        test_row.addSpacing(8)
        test_row.addWidget(self.probe_label, 1)
        self.test_host = QWidget()
        self.test_host.setLayout(test_row)
        test_row.setContentsMargins(LABEL_W + 12, 0, 0, 0)  # under the fields
        layout.addWidget(self.test_host)
        self.ha_link = _hint("")
        layout.addWidget(self.ha_link)
        layout.addStretch(1)

        for edit in (
            self.ha_url,
            self.ha_token,
            self.mqtt_host,
            self.mqtt_user,
            self.mqtt_password,
            self.mqtt_topic,
            self.mqtt_field,
            self.mqtt_outdoor,
            self.mqtt_prefix,
        ):
            edit.textEdited.connect(self._form_edited)
        for box in (self.ha_tls, self.mqtt_tls, self.mqtt_discovery):
            box.toggled.connect(self._form_edited)
        self.mqtt_port.valueChanged.connect(self._form_edited)
        self.ha_entity.currentIndexChanged.connect(self._form_edited)
        self.ha_outdoor.currentIndexChanged.connect(self._form_edited)
        return tab

    def _build_limits_tab(self) -> QWidget:
        tab, layout = self._tab()
        self.gpu_max = TempSpin(40, 100)
        self.gpu_resume = TempSpin(30, 95)
        self.cpu_max = TempSpin(40, 105)
        self.cpu_resume = TempSpin(30, 100)
        self.room_max = TempSpin(15, 35)
        self.grace_s = _int_spin(0, 600, " s")
        self.dwell_s = _int_spin(0, 3600, " s", 10)
        self.stale_min = _int_spin(1, 60, " min")
        self.floor_pct = _pct_spin(0, 50)
        self.on_battery = QCheckBox("Stop on battery power")
        self.games = QCheckBox("Pause while a game uses the GPU")
        self.apps = QLineEdit()
        self.apps.setPlaceholderText("for example blender, obs, steam")
        _wide(self.apps, 300)
        self.open_window = QCheckBox("Pause heating when a window is opened")
        self.window_drop = TempSpin(0.3, 5.0, difference=True)
        self.window_pause = _int_spin(5, 120, " min", 5)

        hot = _form()
        hot.addRow(_section("Temperatures"))
        hot.addRow("GPU: stop at", self._pair(self.gpu_max, "resume below", self.gpu_resume))
        hot.addRow("CPU: stop at", self._pair(self.cpu_max, "resume below", self.cpu_resume))
        hot.addRow("Room: stop at", self.room_max)
        hot.addRow("Grace period", self._pair(self.grace_s, "before a stop", None))
        hot.addRow("Resume after", self._pair(self.dwell_s, "below the resume point", None))
        hot.addRow(
            "No room reading for",
            self._pair(self.stale_min, "→ heat at most", self.floor_pct),
        )
        other = _form()
        other.addRow(_section("The household"))
        other.addRow(self.on_battery)
        other.addRow(self.games)
        other.addRow("Pause while running", self.apps)
        other.addRow(self.open_window)
        other.addRow(
            "When the room falls",
            self._pair(self.window_drop, "in 5 min, pause for", self.window_pause),
        )
        # Side by side in a wide window, one under the other in a narrow one (resizeEvent).
        columns = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.limit_columns = columns
        columns.setSpacing(48)
        columns.addLayout(hot)
        columns.addLayout(other)
        columns.addStretch(1)
        layout.addLayout(columns)
        layout.addWidget(
            _hint(
                "Every limit waits for its grace period before it stops the computing (a "
                "sensor failure stops it at once), and every stop says why here, in the tray "
                "and in the log. The GPU limit is kept at least 3 °C below the temperature at "
                "which the GPU slows itself down."
            )
        )
        layout.addStretch(1)
        for spin in (
            self.gpu_max,
            self.gpu_resume,
            self.cpu_max,
            self.cpu_resume,
            self.room_max,
            self.grace_s,
            self.dwell_s,
            self.stale_min,
            self.floor_pct,
            self.window_drop,
            self.window_pause,
        ):
            spin.valueChanged.connect(self._form_edited)
        for box in (self.on_battery, self.games, self.open_window):
            box.toggled.connect(self._form_edited)
        self.apps.textEdited.connect(self._form_edited)
        self.open_window.toggled.connect(self._enable_dependents)
        return tab

    def _build_summer_tab(self) -> QWidget:
        tab, layout = self._tab()
        self.summer_on = QCheckBox("No heat when it is this warm outside:")
        self.summer_c = TempSpin(5, 30)
        self.season_on = QCheckBox("Heat only in the heating season, from")
        self.season_start = QDateEdit()
        self.season_end = QDateEdit()
        for edit in (self.season_start, self.season_end):
            edit.setDisplayFormat("d MMMM")
            edit.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.UpDownArrows)
            edit.setMinimumWidth(130)
        self.quiet_power = _pct_spin(10, 100)
        self.quiet_fan = _pct_spin(20, 100)
        form = _form()
        form.addRow(_section("Summer (heat first computes nothing)"))
        form.addRow(self._pair(self.summer_on, "", self.summer_c))
        season = QHBoxLayout()
        season.addWidget(self.season_on)
        season.addWidget(self.season_start)
        season.addWidget(QLabel("to"))
        season.addWidget(self.season_end)
        season.addStretch(1)
        form.addRow(season)
        form.addRow(_hint("The outdoor temperature comes from the room thermometer's source."))
        form.addRow(_section("Quiet mode"))
        form.addRow(_label("Power at most"), self.quiet_power)
        form.addRow(_label("Fans at most"), self.quiet_fan)
        layout.addLayout(form)
        layout.addStretch(1)
        for w in (self.summer_c, self.quiet_power, self.quiet_fan):
            w.valueChanged.connect(self._form_edited)
        for box in (self.summer_on, self.season_on):
            box.toggled.connect(self._form_edited)
            box.toggled.connect(self._enable_dependents)
        for edit in (self.season_start, self.season_end):
            edit.dateChanged.connect(self._form_edited)
        return tab

    @staticmethod
    def _pair(first: QWidget, words: str, second: QWidget | None) -> QWidget:
        host = QWidget()
        row = QHBoxLayout(host)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        row.addWidget(first)
        if words:
            row.addWidget(QLabel(words))
        if second is not None:
            row.addWidget(second)
        row.addStretch(1)
        return host

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        narrow = event.size().width() < NARROW_W
        self.limit_columns.setDirection(
            QBoxLayout.Direction.TopToBottom if narrow else QBoxLayout.Direction.LeftToRight
        )

    # -- inputs: state -------------------------------------------------------------------

    def set_temperature_unit(self, unit: Unit) -> None:
        self.unit = unit
        loading, self._loading = self._loading, True
        try:
            for spin in self.findChildren(TempSpin):
                spin.set_unit(unit)
        finally:
            self._loading = loading
        self.cooler_button.setText(nudge_text(unit, -1))
        self.warmer_button.setText(nudge_text(unit, 1))
        self._show_status()

    def set_heating(self, status: HeatingStatus) -> None:
        self.status = status
        refused = self._refused_at
        if refused is None or (self._now() - refused).total_seconds() > REFUSAL_SHOWN_S:
            self._refused_at = None
            self.error_banner.show_text("")
        self._show_status()
        self._update_timer()

    def set_heating_error(self, message: str) -> None:
        """``GET /v1/heating`` failed: an agent without heating, or one gone away."""
        self.error_banner.show_text(f"Heating not available: {message}")

    def set_action_error(self, message: str) -> None:
        """A mode, boost or target change refused: shown a while, past the next polls."""
        self._refused_at = self._now()
        self.error_banner.show_text(message)

    def _show_waiting(self) -> None:
        for card in (self.room_card, self.target_card, self.heat_card):
            card.set(NOT_AVAILABLE, "waiting for the agent")
            card.value.setFont(_font(6))
        self.reason.setText("Waiting for the agent…")

    def _show_status(self) -> None:
        s = self.status
        if s is None:
            return
        now = self._now()
        self.room_card.set(
            format_room(s.room_c, self.unit),
            room_detail(s, now, self.unit),
            s.room_problem or self._ha_note(s),
        )
        self.target_card.set(
            format_room(s.setpoint_c, self.unit),
            target_detail(s),
            "Summer: no heat is wanted now." if s.summer else "",
        )
        self.heat_card.set(f"{s.demand_pct:.0f} %", heat_detail(s))
        for card in (self.room_card, self.target_card, self.heat_card):
            # "not available" in the figures' size would push the cards off a small window.
            missing = card.value.text() == NOT_AVAILABLE
            card.value.setFont(_font(6 if missing else 18))
        boosting = s.boost_until is not None and s.boost_until > now
        for mode, button in self.mode_buttons.items():
            button.setChecked(mode is s.mode)
        self.boost_button.setText(
            f"End boost ({local_hhmm(s.boost_until)})"
            if boosting and s.boost_until
            else "Boost 1 h"
        )
        self.mode_hint.setText(
            f"Boost: full heat until {local_hhmm(s.boost_until)}, within the limits."
            if boosting and s.boost_until
            else MODE_HINTS[s.mode]
        )
        self.schedule_button.setVisible(s.setpoint_source == "override")
        self.reason.setText(s.reason or "The agent gave no reason.")
        self.reason.setProperty("stopped", s.safety_stop)
        self.reason.style().polish(self.reason)  # the style sheet reads the property
        self.alerts.setText("\n".join(f"Advice: {a}" for a in s.alerts))
        self.alerts.setVisible(bool(s.alerts))
        self.header_note.setText(
            "Stopped for safety" if s.safety_stop else ("Computing" if s.computing else "")
        )
        self._show_events(s.events, now)
        self.ha_link.setText(
            {
                "connected": "This heater shows in Home Assistant (MQTT discovery): connected.",
                "disconnected": "This heater is not reaching Home Assistant: "
                f"{s.home_assistant_error or 'the broker does not answer.'}",
                "off": "",
            }[s.home_assistant]
        )
        self.ha_link.setVisible(s.home_assistant != "off")
        if self._grid_minute != now.minute:
            self._grid_minute = now.minute
            self.schedule.grid.update()  # the grid's line for now moves on with the minutes
        self._update_buttons()

    def _ha_note(self, s: HeatingStatus) -> str:
        if s.home_assistant == "disconnected":
            return f"Home Assistant link down: {s.home_assistant_error or 'no answer'}"
        return ""

    def _show_events(self, events: list[SafetyEvent], now: datetime) -> None:
        while len(self._event_banners) < len(events):
            pair = (Banner("warning"), Banner("error"))
            for b in pair:
                b.label.setTextFormat(Qt.TextFormat.RichText)
                self.events_box.addWidget(b)
            self._event_banners.append(pair)
        for i, (pending, stopped) in enumerate(self._event_banners):
            if i >= len(events):
                pending.show_text("")
                stopped.show_text("")
                continue
            e = events[i]
            # The reason above often is this event's sentence: said once, not twice.
            said = "" if self.status and e.message == self.status.reason else _esc(e.message)
            title = f"<b>{_esc(RULE_TITLES[e.rule])}</b>"
            text = (
                f"{title} — {said}<br>{event_when(e, now)}"
                if said
                else (f"{title}<br>{event_when(e, now)}")
            )
            on = event_stopped(e, now)
            (stopped if on else pending).show_text(text)
            (pending if on else stopped).show_text("")

    def _tick(self) -> None:
        if self.status is not None:
            self._show_status()

    def _update_timer(self) -> None:
        # Ticks only while someone looks: hidden, nothing on this page moves.
        if self._active and self.status is not None:
            if not self._timer.isActive():
                self._timer.start()
        else:
            self._timer.stop()

    def set_active(self, active: bool) -> None:
        self._active = active
        self._update_timer()
        if active:
            self._tick()

    def stop(self) -> None:
        """Stop the countdown timer (teardown)."""
        self._active = False
        self._timer.stop()

    # -- actions -------------------------------------------------------------------------

    def _mode_clicked(self, mode: HeatMode) -> None:
        self.mode_requested.emit(mode)

    def _boost_clicked(self) -> None:
        s = self.status
        boosting = s is not None and s.boost_until is not None and s.boost_until > self._now()
        self.boost_requested.emit(0 if boosting else BOOST_MINUTES)

    def _nudge(self, sign: int) -> None:
        self.setpoint_requested.emit(SetpointRequest(delta_c=sign * nudge_delta_c(self.unit)))

    def _update_buttons(self) -> None:
        s = self.status
        known = s is not None
        for button in (*self.mode_buttons.values(), self.boost_button):
            button.setEnabled(known)
        has_target = s is not None and s.setpoint_c is not None
        self.cooler_button.setEnabled(has_target)
        self.warmer_button.setEnabled(has_target)
        have_form = self.saved is not None
        dirty = have_form and self.dirty()
        self.save_button.setEnabled(have_form and dirty and not self.saving)
        self.revert_button.setEnabled(have_form and dirty and not self.saving)
        kind = self._source_kind()
        self.test_host.setVisible(kind is not RoomSourceKind.NONE)
        self.test_button.setEnabled(self.probing is None and have_form)
        self.find_button.setEnabled(self.probing is None and have_form)
        self.tabs.setEnabled(have_form)

    # -- inputs: settings ----------------------------------------------------------------

    def set_settings(self, settings: HeatingSettings) -> None:
        """The agent's settings: after a load, a save or a revert."""
        just_saved = self.saving
        self.saving = False
        if self.saved is not None and self.dirty() and not just_saved:
            # Loaded again (a reconnection) while the user edits: keep their edits.
            self.saved = settings
            self._update_buttons()
            return
        self.saved = settings
        self._load_form(settings)
        self._show_form_error("")
        self.form_state.setText("Saved." if just_saved else "")
        self._update_buttons()

    def set_settings_error(self, message: str) -> None:
        self.saving = False
        self._show_form_error(message)
        self.form_state.setText("")
        self._update_buttons()

    @property
    def needs_settings(self) -> bool:
        return self.saved is None

    def _load_form(self, s: HeatingSettings) -> None:  # noqa: PLR0915 (every field, once)
        self._loading = True
        try:
            self.comfort_c.set_c(s.comfort_c)
            self.eco_c.set_c(s.eco_c)
            self.comfort_power.setValue(s.comfort_power_pct)
            self.eco_power.setValue(s.eco_power_pct)
            self.schedule.set_periods(s.periods)
            self.source.setCurrentIndex(self.source.findData(s.room_source.value))
            ha = s.home_assistant
            self.ha_url.setText(ha.url if ha else "")
            self.ha_token.clear()
            self.ha_token.setPlaceholderText(
                "stored; leave empty to keep it"
                if ha is not None
                else "a long-lived access token from your Home Assistant profile"
            )
            self.ha_tls.setChecked(ha.verify_tls if ha else True)
            self._fill_entities(
                [], ha.entity_id if ha else None, ha.outdoor_entity_id if ha else None
            )
            mq = s.mqtt
            self.mqtt_host.setText(mq.host if mq else "")
            self.mqtt_port.setValue(mq.port if mq else 1883)
            self.mqtt_tls.setChecked(mq.tls if mq else False)
            self.mqtt_user.setText((mq.username or "") if mq else "")
            self.mqtt_password.clear()
            self.mqtt_password.setPlaceholderText(
                "stored; leave empty to keep it" if mq is not None else "none"
            )
            self.mqtt_topic.setText(mq.topic if mq else "")
            self.mqtt_field.setText((mq.json_field or "") if mq else "temperature")
            self.mqtt_outdoor.setText((mq.outdoor_topic or "") if mq else "")
            self.mqtt_discovery.setChecked(mq.ha_discovery if mq else True)
            self.mqtt_prefix.setText(mq.discovery_prefix if mq else "homeassistant")
            lim = s.limits
            self.gpu_max.set_c(lim.gpu_max_c)
            self.gpu_resume.set_c(lim.gpu_resume_c)
            self.cpu_max.set_c(lim.cpu_max_c)
            self.cpu_resume.set_c(lim.cpu_resume_c)
            self.room_max.set_c(lim.room_max_c)
            self.grace_s.setValue(lim.grace_s)
            self.dwell_s.setValue(lim.dwell_s)
            self.stale_min.setValue(max(1, round(lim.stale_after_s / 60)))
            self._stale_s = lim.stale_after_s  # kept exactly unless the minutes are edited
            self.floor_pct.setValue(lim.floor_pct)
            self.on_battery.setChecked(lim.stop_on_battery)
            self.games.setChecked(lim.exclusive_games)
            self.apps.setText(", ".join(lim.exclusive_apps))
            self.open_window.setChecked(lim.open_window)
            self.window_drop.set_c(lim.open_window_drop_c)
            self.window_pause.setValue(lim.open_window_pause_min)
            self.summer_on.setChecked(s.summer_outdoor_c is not None)
            self.summer_c.set_c(s.summer_outdoor_c if s.summer_outdoor_c is not None else 18.0)
            self.season_on.setChecked(s.season_start is not None and s.season_end is not None)
            _set_mmdd(self.season_start, s.season_start, "09-15")
            _set_mmdd(self.season_end, s.season_end, "05-15")
            self.quiet_power.setValue(s.quiet_power_pct)
            self.quiet_fan.setValue(s.quiet_fan_pct)
        finally:
            self._loading = False
        self.probe_label.setText("")
        self._source_changed()
        self._enable_dependents()

    def _fill_entities(
        self, entities: list[SensorEntity], room: str | None, outdoor: str | None
    ) -> None:
        """The pickers: the sensors Home Assistant listed, keeping the chosen ones."""
        loading, self._loading = self._loading, True
        try:
            self.ha_entity.clear()
            self.ha_outdoor.clear()
            self.ha_outdoor.addItem("None", None)
            # The room is a sensor; outdoors may be a weather entity as well.
            rooms = [e for e in entities if _ENTITY_RE.match(e.entity_id)]
            outdoors = [e for e in entities if _OUTDOOR_RE.match(e.entity_id)]
            if not rooms and room is None:
                self.ha_entity.addItem("Press “Find sensors” to list them", None)
            for combo, listed in ((self.ha_entity, rooms), (self.ha_outdoor, outdoors)):
                for e in listed:
                    unit = f" {e.unit}" if e.unit else ""
                    combo.addItem(f"{e.name} — {e.state}{unit} ({e.entity_id})", e.entity_id)
            for combo, chosen in ((self.ha_entity, room), (self.ha_outdoor, outdoor)):
                if chosen is not None and combo.findData(chosen) < 0:
                    combo.addItem(chosen, chosen)
                if chosen is not None:
                    combo.setCurrentIndex(combo.findData(chosen))
        finally:
            self._loading = loading

    def _source_kind(self) -> RoomSourceKind:
        data = self.source.currentData()
        return RoomSourceKind(data) if isinstance(data, str) else RoomSourceKind.NONE

    def _source_changed(self, *_: object) -> None:
        kind = self._source_kind()
        index = [RoomSourceKind.NONE, RoomSourceKind.HOME_ASSISTANT, RoomSourceKind.MQTT].index(
            kind
        )
        self.source_pages.setCurrentIndex(index)
        # The stack as tall as the page it shows, so Test sits right under the form.
        for i in range(self.source_pages.count()):
            page = self.source_pages.widget(i)
            if page is None:
                continue
            ignored = QSizePolicy.Policy.Ignored
            page.setSizePolicy(
                QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum if i == index else ignored
            )
        self.source_pages.adjustSize()
        without = kind is RoomSourceKind.NONE
        for w in (
            self.power_label,
            self.comfort_power,
            self.power_between,
            self.eco_power,
            self.power_after,
        ):
            w.setVisible(without)
        self.probe_label.setText("")
        self._form_edited()

    def _enable_dependents(self, *_: object) -> None:
        self.window_drop.setEnabled(self.open_window.isChecked())
        self.window_pause.setEnabled(self.open_window.isChecked())
        self.summer_c.setEnabled(self.summer_on.isChecked())
        self.season_start.setEnabled(self.season_on.isChecked())
        self.season_end.setEnabled(self.season_on.isChecked())

    def _form_edited(self, *_: object) -> None:
        if self._loading:
            return
        self.form_state.setText("")
        self._show_form_error("")
        self._update_buttons()

    def _show_form_error(self, message: str) -> None:
        self.form_error.setText(message)
        self.form_error.setVisible(bool(message))

    # -- reading the form ----------------------------------------------------------------

    def _ha_source(self, *, need_entity: bool) -> HomeAssistantSource | str:  # noqa: PLR0911 (one check per field, each with its sentence)
        url = self.ha_url.text().strip().rstrip("/")
        problem = ha_url_problem(url)
        if problem:
            return problem
        token = self.ha_token.text().strip() or None
        saved_ha = self.saved.home_assistant if self.saved else None
        if token is None and saved_ha is None:
            return (
                "Paste a long-lived access token: in Home Assistant, open your profile, "
                "Security, and create one."
            )
        entity = self.ha_entity.currentData()
        if need_entity and entity is None:
            return "Choose the room's temperature sensor (press “Find sensors” to list them)."
        if entity is not None and not _ENTITY_RE.match(entity):
            return f"{entity} is not a Home Assistant sensor (sensor.something)."
        outdoor = self.ha_outdoor.currentData()
        if outdoor is not None and not _OUTDOOR_RE.match(outdoor):
            return f"{outdoor} is not a Home Assistant sensor or weather entity."
        try:
            return HomeAssistantSource(
                url=url,
                token=token,
                entity_id=entity,
                outdoor_entity_id=outdoor,
                verify_tls=self.ha_tls.isChecked(),
            )
        except ValidationError as exc:
            return _first_error(exc)

    def _mqtt_source(self) -> MqttSource | str:  # noqa: PLR0911 (one check per field, each with its sentence)
        host = self.mqtt_host.text().strip()
        if not host:
            return "Enter the MQTT broker's address, for example broker.local or 192.168.1.5."
        if not _HOST_RE.match(host) or len(host) > 255:
            return f"{host!r} is not a broker address: a name or an IP address, without spaces."
        topic = self.mqtt_topic.text().strip()
        if not topic:
            return "Enter the topic the thermometer publishes on, for example zigbee2mqtt/study."
        if "#" in topic or "+" in topic:
            return "The topic names one thermometer: no # or + wildcards."
        outdoor = self.mqtt_outdoor.text().strip() or None
        if outdoor is not None and ("#" in outdoor or "+" in outdoor):
            return "The outdoor topic names one thermometer: no # or + wildcards."
        prefix = self.mqtt_prefix.text().strip()
        if self.mqtt_discovery.isChecked() and not prefix:
            return "Enter Home Assistant's discovery prefix (usually homeassistant)."
        try:
            return MqttSource(
                host=host,
                port=self.mqtt_port.value(),
                username=self.mqtt_user.text().strip() or None,
                password=self.mqtt_password.text() or None,
                tls=self.mqtt_tls.isChecked(),
                topic=topic,
                json_field=self.mqtt_field.text().strip() or None,
                outdoor_topic=outdoor,
                ha_discovery=self.mqtt_discovery.isChecked(),
                discovery_prefix=prefix or "homeassistant",
            )
        except ValidationError as exc:
            return _first_error(exc)

    def _limits(self) -> SafetyLimits | str:
        u = self.unit
        if self.gpu_resume.c() >= self.gpu_max.c():
            return (
                f"The GPU must resume below its limit: resume below "
                f"{format_room(self.gpu_max.c(), u)} or raise the limit."
            )
        if self.cpu_resume.c() >= self.cpu_max.c():
            return (
                f"The CPU must resume below its limit: resume below "
                f"{format_room(self.cpu_max.c(), u)} or raise the limit."
            )
        apps = [a.strip() for a in self.apps.text().split(",") if a.strip()]
        if len(apps) > 50:
            return "At most 50 programs can pause the heater."
        long = next((a for a in apps if len(a) > 100), None)
        if long is not None:
            return f"A program's name is at most 100 characters: {long[:40]}…"
        minutes = self.stale_min.value()
        stale = self._stale_s if round(self._stale_s / 60) == minutes else minutes * 60
        try:
            return SafetyLimits(
                gpu_max_c=self.gpu_max.c(),
                gpu_resume_c=self.gpu_resume.c(),
                cpu_max_c=self.cpu_max.c(),
                cpu_resume_c=self.cpu_resume.c(),
                room_max_c=self.room_max.c(),
                dwell_s=self.dwell_s.value(),
                grace_s=self.grace_s.value(),
                stop_on_battery=self.on_battery.isChecked(),
                exclusive_apps=apps,
                exclusive_games=self.games.isChecked(),
                open_window=self.open_window.isChecked(),
                open_window_drop_c=self.window_drop.c(),
                open_window_pause_min=self.window_pause.value(),
                stale_after_s=max(60, stale),
                floor_pct=self.floor_pct.value(),
            )
        except ValidationError as exc:
            return _first_error(exc)

    def candidate(self) -> tuple[int, str] | HeatingSettings:  # noqa: PLR0911 (one check per field, each with its sentence)
        """The settings the form holds, or (tab, sentence) for the first thing wrong."""
        if self.saved is None:
            return TAB_SCHEDULE, "The settings have not come from the agent yet."
        if self.eco_c.c() > self.comfort_c.c():
            return TAB_SCHEDULE, (
                "The eco temperature must not be above the comfort temperature: lower eco "
                f"to {format_room(self.comfort_c.c(), self.unit)} or less."
            )
        problem = self.schedule.problem()
        if problem:
            return TAB_SCHEDULE, problem
        kind = self._source_kind()
        ha: HomeAssistantSource | None = self.saved.home_assistant
        mqtt: MqttSource | None = self.saved.mqtt
        if kind is RoomSourceKind.HOME_ASSISTANT:
            got = self._ha_source(need_entity=True)
            if isinstance(got, str):
                return TAB_ROOM, got
            ha = got
        elif kind is RoomSourceKind.MQTT:
            got_mq = self._mqtt_source()
            if isinstance(got_mq, str):
                return TAB_ROOM, got_mq
            mqtt = got_mq
        limits = self._limits()
        if isinstance(limits, str):
            return TAB_LIMITS, limits
        if self.season_on.isChecked() and _mmdd(self.season_start) == _mmdd(self.season_end):
            return TAB_SUMMER, "The heating season must end on another day than it starts."
        # The mode is changed by its buttons at once (and from the tray and Home Assistant):
        # a save keeps the one in force.
        mode = self.status.mode if self.status is not None else self.saved.mode
        try:
            return HeatingSettings(
                mode=mode,
                comfort_c=self.comfort_c.c(),
                eco_c=self.eco_c.c(),
                periods=self.schedule.periods(),
                comfort_power_pct=self.comfort_power.value(),
                eco_power_pct=self.eco_power.value(),
                quiet_power_pct=self.quiet_power.value(),
                quiet_fan_pct=self.quiet_fan.value(),
                summer_outdoor_c=self.summer_c.c() if self.summer_on.isChecked() else None,
                season_start=_mmdd(self.season_start) if self.season_on.isChecked() else None,
                season_end=_mmdd(self.season_end) if self.season_on.isChecked() else None,
                room_source=kind,
                home_assistant=ha,
                mqtt=mqtt,
                limits=limits,
            )
        except ValidationError as exc:
            return TAB_SCHEDULE, _first_error(exc)

    def dirty(self) -> bool:
        """Whether the form differs from the stored settings (the mode aside)."""
        if self.saved is None:
            return False
        got = self.candidate()
        if not isinstance(got, HeatingSettings):
            return True
        saved = self.saved.model_copy(
            update={"mode": got.mode, "periods": normalised(self.saved.periods)}
        )
        return got != saved

    # -- save, revert, probe -------------------------------------------------------------

    def save(self) -> None:
        got = self.candidate()
        if not isinstance(got, HeatingSettings):
            tab, sentence = got
            self.tabs.setCurrentIndex(tab)
            self._show_form_error(sentence)
            return
        self._show_form_error("")
        self.saving = True
        self.form_state.setText("Saving…")
        self._update_buttons()
        self.save_requested.emit(got)

    def _revert_clicked(self) -> None:
        if self.saved is not None:
            self._load_form(self.saved)
            self._show_form_error("")
            self.form_state.setText("")
            self._update_buttons()
        self.revert_requested.emit()

    def find_sensors(self) -> None:
        """List Home Assistant's temperature sensors, to pick the room's."""
        got = self._ha_source(need_entity=False)
        if isinstance(got, str):
            self._probe_text(got, ok=False)
            return
        self._probe(
            "find",
            RoomProbeRequest(
                room_source=RoomSourceKind.HOME_ASSISTANT,
                home_assistant=got.model_copy(update={"entity_id": None}),
            ),
        )

    def test_source(self) -> None:
        """Read the thermometer as the form describes it, before saving."""
        kind = self._source_kind()
        if kind is RoomSourceKind.HOME_ASSISTANT:
            got = self._ha_source(need_entity=True)
            if isinstance(got, str):
                self._probe_text(got, ok=False)
                return
            self._probe("test", RoomProbeRequest(room_source=kind, home_assistant=got))
        elif kind is RoomSourceKind.MQTT:
            mq = self._mqtt_source()
            if isinstance(mq, str):
                self._probe_text(mq, ok=False)
                return
            self._probe("test", RoomProbeRequest(room_source=kind, mqtt=mq))

    def _probe(self, what: Literal["find", "test"], request: RoomProbeRequest) -> None:
        self.probing = what
        self._probe_text(
            "Asking Home Assistant for its sensors…" if what == "find" else "Reading…",
            ok=None,
        )
        self._update_buttons()
        self.probe_requested.emit(request)

    def set_probe_result(self, result: RoomProbeResponse) -> None:
        what, self.probing = self.probing, None
        if result.entities:
            self._fill_entities(
                result.entities,
                self.ha_entity.currentData(),
                self.ha_outdoor.currentData(),
            )
        if not result.ok:
            self._probe_text(result.error or "The thermometer did not answer.", ok=False)
        elif what == "find":
            n = self.ha_entity.count() - (1 if self.ha_entity.currentData() is None else 0)
            self._probe_text(
                f"Home Assistant lists {n} temperature sensor{'s' if n != 1 else ''}: "
                "choose the room's, then Test.",
                ok=True,
            )
            if self.ha_entity.currentData() is None and n:
                self.ha_entity.setCurrentIndex(
                    next(i for i in range(self.ha_entity.count()) if self.ha_entity.itemData(i))
                )
        else:
            room = format_room(result.room_c, self.unit)
            text = f"Reading now: {room}"
            if result.outdoor_c is not None:
                text += f" · outside {format_room(result.outdoor_c, self.unit)}"
            self._probe_text(text + ". Save to use it.", ok=True)
        self._form_edited()
        self._update_buttons()

    def set_probe_error(self, message: str) -> None:
        self.probing = None
        self._probe_text(message, ok=False)
        self._update_buttons()

    def _probe_text(self, text: str, *, ok: bool | None) -> None:
        colour = {True: "#2e7d32", False: "#c62828", None: ""}[ok]
        self.probe_label.setStyleSheet(f"color: {colour};" if colour else "")
        self.probe_label.setText(text)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

"""The dashboard: big figures, a banner for what needs attention, and a small status line."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Literal

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QPaintEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from heatshare.gui.bridge import ConnectionState
from heatshare.gui.formatting import NOT_AVAILABLE, STATE_WORDS, Figures, dashboard_figures
from heatshare.gui.heating_text import MODE_WORDS, summary_line
from heatshare.protocol.local_api import AgentStatus

BENCH_FIRST_PAINT_ENV = "HEATSHARE_BENCH_FIRST_PAINT"


def _font(size_delta: float = 0, *, weight: QFont.Weight | None = None) -> QFont:
    font = QFont()
    if size_delta:
        font.setPointSizeF(max(6.0, font.pointSizeF() + size_delta))
    if weight is not None:
        font.setWeight(weight)
    return font


class FigureCard(QFrame):
    """One big figure with a caption above it and one or two lines of detail below."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("figureCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # Preferred height: the cards of a row grow to the tallest, so their tops and
        # bottoms line up.
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.title = QLabel(title.upper())
        self.title.setObjectName("cardTitle")
        self.title.setFont(_font(-1, weight=QFont.Weight.DemiBold))
        self.value = QLabel(NOT_AVAILABLE)
        self.value.setObjectName("cardValue")
        self.value.setFont(_font(14, weight=QFont.Weight.DemiBold))
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail = QLabel("")
        self.detail.setObjectName("cardDetail")
        self.detail.setFont(_font(1))
        self.note = QLabel("")
        self.note.setObjectName("cardNote")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 16, 20, 16)
        layout.setSpacing(4)
        layout.addWidget(self.title)
        layout.addSpacing(2)
        layout.addWidget(self.value)
        layout.addWidget(self.detail)
        layout.addWidget(self.note)
        layout.addStretch(1)

    def set(self, value: str, detail: str = "", note: str = "") -> None:
        self.value.setText(value)
        self.value.setProperty("missing", value == NOT_AVAILABLE)
        self.value.style().polish(self.value)
        self.detail.setText(detail)
        self.detail.setVisible(bool(detail))
        self.note.setText(note)
        self.note.setVisible(bool(note))


class Banner(QFrame):
    """A coloured strip for something the user should know (hidden when there is nothing)."""

    def __init__(self, kind: Literal["warning", "error"], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"{kind}Banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 10)
        layout.addWidget(self.label)
        self.hide()

    def show_text(self, text: str) -> None:
        self.label.setText(text)
        self.setVisible(bool(text))


class Dashboard(QWidget):
    """Big figures from the latest status; a banner while the agent is away.

    Signals:
        first_real_paint(): the first paint that shows the agent's figures (start-up timing).
    """

    first_real_paint = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dashboard")
        self.status: AgentStatus | None = None
        self.temperature_unit: Literal["C", "F"] = "C"
        self.tariff: Decimal | None = None
        self.figures: Figures | None = None
        self.price_now: str | None = None  # a tariff whose price changes: the price now
        self._painted_real = False

        self.unreachable_banner = Banner("error")
        self.warning_banner = Banner("warning")
        self.safety_banner = Banner("error")  # a safety stop, and why
        self.heating_line = QLabel("")
        self.heating_line.setObjectName("heatingLine")
        self.heating_line.setFont(_font(1))
        self.heating_line.setWordWrap(True)
        self.heating_line.hide()

        self.heat = FigureCard("Heat output now")
        self.today = FigureCard("Heat delivered today")
        self.hottest = FigureCard("Hottest component")
        self.cost = FigureCard("Electricity cost today")
        grid = QGridLayout()
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(16)
        for col, card in enumerate((self.heat, self.today, self.hottest, self.cost)):
            grid.addWidget(card, 0, col)
            grid.setColumnStretch(col, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(12)
        layout.addWidget(self.unreachable_banner)
        layout.addWidget(self.warning_banner)
        layout.addWidget(self.safety_banner)
        layout.addWidget(self.heating_line)
        layout.addLayout(grid)
        self._show_waiting()

    def _show_waiting(self) -> None:
        for card in (self.heat, self.today, self.hottest, self.cost):
            card.set(NOT_AVAILABLE, "waiting for the agent")

    # -- inputs --------------------------------------------------------------------------

    def set_status(self, status: AgentStatus) -> None:
        self.status = status
        self._refresh()
        self.warning_banner.show_text("\n".join(status.warnings))

    def set_preferences(self, temperature_unit: Literal["C", "F"], tariff: Decimal | None) -> None:
        self.temperature_unit = temperature_unit
        self.tariff = tariff
        self._refresh()

    def set_price_now(self, text: str | None) -> None:
        """Under today's cost, the price now where it changes (``"now £0.2268 per kWh"``)."""
        self.price_now = text
        self._refresh()

    def set_connection(self, state: ConnectionState, message: str) -> None:
        if state is ConnectionState.UNREACHABLE:
            text = "Agent unreachable — reconnecting…"
            self.unreachable_banner.show_text(f"<b>{text}</b><br>{_escape(message)}")
        elif state is ConnectionState.STARTING_AGENT:
            self.unreachable_banner.show_text("<b>Starting the agent…</b>")
        else:
            self.unreachable_banner.show_text("")

    def _refresh(self) -> None:
        if self.status is None:
            return
        f = dashboard_figures(
            self.status, temperature_unit=self.temperature_unit, tariff_per_kwh=self.tariff
        )
        self.figures = f
        self.heat.set(f.heat_w, f.heat_btu_h if f.heat_w != NOT_AVAILABLE else "", f.heat_source)
        self.today.set(f.heat_today, "since midnight")
        no_sensor = f.hottest == NOT_AVAILABLE
        self.hottest.set(
            f.hottest, "no temperature sensor readable" if no_sensor else f.hottest_name
        )
        self.cost.set(f.cost_today, self.price_now or f.tariff)
        h = self.status.heating
        self.heating_line.setVisible(h is not None)
        if h is None:
            self.safety_banner.show_text("")
            return
        line = summary_line(h, self.temperature_unit)
        # The line names the mode already; the agent's reason starts with it too.
        reason = h.reason.removeprefix(f"{MODE_WORDS[h.mode]}: ")
        self.heating_line.setText(f"{line} — {reason}" if reason and not h.safety_stop else line)
        self.safety_banner.show_text(
            f"<b>Computing stopped for safety.</b> {_escape(h.reason)}" if h.safety_stop else ""
        )

    # -- start-up timing -----------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        super().paintEvent(event)
        if self.status is not None and not self._painted_real:
            self._painted_real = True
            # Emitted after this paint returns, so listeners never delay the first frame.
            QTimer.singleShot(0, self, self.first_real_paint.emit)  # dies with the page
            target = os.environ.get(BENCH_FIRST_PAINT_ENV)
            if target:
                Path(target).write_text(f"{time.time():.6f}\n", "utf-8")


def status_line(status: AgentStatus | None, state: ConnectionState) -> str:
    """``"Heating · on study-pc · agent 0.1.0"``; the connection state when not connected."""
    if state is ConnectionState.UNREACHABLE:
        head = "Agent unreachable"
    elif state is ConnectionState.STARTING_AGENT:
        head = "Starting the agent"
    elif state is ConnectionState.CONNECTING or status is None:
        head = "Connecting"
    else:
        head = STATE_WORDS.get(status.state.value, status.state.value.title())
        if status.state.value == "paused" and status.paused_until is not None:
            local = status.paused_until.astimezone()
            head += f" until {local:%H:%M}"
    parts = [head]
    if status is not None:
        parts += [f"on {status.hostname}", f"agent {status.agent_version}"]
    return " · ".join(parts)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

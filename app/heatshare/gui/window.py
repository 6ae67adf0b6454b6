"""The main window: a header with the status line over four pages: Dashboard, Heating, Jobs,
Network.

The Dashboard page holds the big figures with the charts below them; the Heating page the
thermostat and its settings; the Jobs and Network pages the machine's work for its compute
network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QCloseEvent, QFont, QHideEvent, QIcon, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from heatshare.__about__ import __app_name__
from heatshare.gui.bridge import ConnectionState
from heatshare.gui.dashboard import Dashboard, status_line
from heatshare.gui.jobs_page import JobsPage
from heatshare.gui.network_page import NetworkPage
from heatshare.protocol.local_api import AgentState, AgentStatus

if TYPE_CHECKING:
    from heatshare.gui.heating_page import HeatingPage

# Palette-relative colours, so light and dark both follow the system.
STYLE = """
#figureCard {
    background: palette(base);
    border: 1px solid palette(midlight);
    border-radius: 10px;
}
#cardTitle, #chartNote, #statusLine, #hint { color: palette(placeholder-text); }
#cardValue[missing="true"] { color: palette(placeholder-text); }
#cardDetail { color: palette(text); }
#cardNote { color: palette(placeholder-text); }
#errorBanner {
    background: rgba(200, 40, 40, 0.14);
    border: 1px solid rgba(200, 40, 40, 0.55);
    border-radius: 8px;
}
#warningBanner {
    background: rgba(230, 160, 0, 0.16);
    border: 1px solid rgba(230, 160, 0, 0.6);
    border-radius: 8px;
}
#formError { color: #c62828; }
QTabWidget#pages::pane { border: none; border-top: 1px solid palette(midlight); }
QTabBar::tab { padding: 7px 18px; }
QToolButton#rangeButton {
    padding: 5px 10px;
    border: 1px solid palette(mid);
    border-radius: 0px;
    margin-left: -1px;
}
QToolButton#modeButton {
    padding: 6px 14px;
    border: 1px solid palette(mid);
    margin-left: -1px;
}
QToolButton#modeButton:checked {
    background: palette(highlight);
    color: palette(highlighted-text);
    border-color: palette(highlight);
}
QLabel#heatingReason[stopped="true"] { color: #c62828; font-weight: 600; }
QToolButton#rangeButton:checked {
    background: palette(highlight);
    color: palette(highlighted-text);
    border-color: palette(highlight);
}
"""


DASHBOARD = "Dashboard"
CHARTS_MIN_HEIGHT = 460  # the history charts stay readable; the dashboard page scrolls
HEATING = "Heating"
JOBS = "Jobs"
NETWORK = "Network"


def _padded(page: QWidget) -> QWidget:
    """A page with the same space above it as the dashboard's."""
    host = QWidget()
    layout = QVBoxLayout(host)
    layout.setContentsMargins(0, 16, 0, 0)
    layout.addWidget(page)
    return host


class MainWindow(QMainWindow):
    """Shows what the heater does; every action goes out as a signal to the composition root.

    Signals:
        visibility_changed(bool): shown and not minimised (True), or hidden/minimised.
        close_requested(): the user closed the window (the root decides: hide or quit).
        settings_requested(): the Settings button.
        pause_requested(int): pause for this many seconds.
        resume_requested(): resume heating.
        page_changed(str): the page shown now (``DASHBOARD``, ``HEATING``, ``JOBS`` or
            ``NETWORK``).
        heating_page_built(HeatingPage): the Heating page was just built (the first time it
            shows), for the root to connect.
    """

    visibility_changed = Signal(bool)
    close_requested = Signal()
    settings_requested = Signal()
    pause_requested = Signal(int)
    resume_requested = Signal()
    page_changed = Signal(str)
    heating_page_built = Signal(object)

    def __init__(  # noqa: PLR0915 (the window's layout, read top to bottom)
        self, icon: QIcon | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("main-window")
        self.setWindowTitle(__app_name__)
        if icon is not None:
            self.setWindowIcon(icon)
        self.resize(1240, 880)
        self.setMinimumSize(760, 560)
        self.setStyleSheet(STYLE)
        self._status: AgentStatus | None = None
        self._state = ConnectionState.CONNECTING
        self._visible = False
        self.allow_close = False  # set by the root when the app really quits
        self.charts: QWidget | None = None
        self._restyling = False

        title = QLabel(__app_name__)
        title_font = QFont()
        title_font.setPointSizeF(title_font.pointSizeF() + 8)
        title_font.setWeight(QFont.Weight.Bold)
        title.setFont(title_font)
        self.status_label = QLabel(status_line(None, self._state))
        self.status_label.setObjectName("statusLine")
        self.pause_button = QPushButton("Pause for 1 hour")
        self.pause_button.setEnabled(False)
        self.pause_button.clicked.connect(self._pause_clicked)
        self.settings_button = QPushButton("Settings…")
        self.settings_button.clicked.connect(self.settings_requested)

        heading = QVBoxLayout()
        heading.setSpacing(2)
        heading.addWidget(title)
        heading.addWidget(self.status_label)
        header = QHBoxLayout()
        header.addLayout(heading, 1)
        header.addWidget(self.pause_button, 0, Qt.AlignmentFlag.AlignVCenter)
        header.addWidget(self.settings_button, 0, Qt.AlignmentFlag.AlignVCenter)

        self.dashboard = Dashboard()
        self.charts_host = QFrame()
        self.charts_host.setObjectName("chartsHost")
        self.charts_layout = QVBoxLayout(self.charts_host)
        self.charts_layout.setContentsMargins(0, 8, 0, 0)
        self.charts_placeholder = QLabel("Charts are loading…")
        self.charts_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.charts_placeholder.setObjectName("hint")
        self.charts_layout.addWidget(self.charts_placeholder)

        dashboard_page = QWidget()
        dash_layout = QVBoxLayout(dashboard_page)
        dash_layout.setContentsMargins(0, 16, 0, 0)
        dash_layout.setSpacing(20)
        dash_layout.addWidget(self.dashboard)
        # The cost of heat (cost_cards.CostPanel), put in place by the composition root.
        self.costs_layout = QVBoxLayout()
        self.costs_layout.setContentsMargins(0, 0, 0, 0)
        dash_layout.addLayout(self.costs_layout)
        # Earnings beside heat: shown once this machine is in a network and has been credited.
        self.earnings_host = QFrame()
        self.earnings_host.setObjectName("earningsHost")
        self.earnings_layout = QVBoxLayout(self.earnings_host)
        self.earnings_layout.setContentsMargins(0, 8, 0, 0)
        self.earnings_layout.setSpacing(8)
        earnings_title = QLabel("Earnings")
        earnings_title.setObjectName("sectionTitle")
        section_font = earnings_title.font()
        section_font.setPointSizeF(section_font.pointSizeF() + 3)
        section_font.setWeight(QFont.Weight.DemiBold)
        earnings_title.setFont(section_font)
        self.earnings_layout.addWidget(earnings_title)
        self.earnings_host.hide()
        charts_row = QHBoxLayout()
        charts_row.setSpacing(20)
        charts_row.addWidget(self.charts_host, 3)
        charts_row.addWidget(self.earnings_host, 1)
        dash_layout.addLayout(charts_row, 1)
        # With the cost of heat above them the charts would be squeezed: the page scrolls.
        self.charts_host.setMinimumHeight(CHARTS_MIN_HEIGHT)
        dashboard_scroll = QScrollArea()
        dashboard_scroll.setObjectName("dashboardScroll")
        dashboard_scroll.setWidgetResizable(True)
        dashboard_scroll.setFrameShape(QFrame.Shape.NoFrame)
        dashboard_scroll.setWidget(dashboard_page)
        # Built the first time it shows: its forms cost a tenth of the window's start.
        self.heating_page: HeatingPage | None = None
        self.heating_host = QWidget()
        heating_layout = QVBoxLayout(self.heating_host)
        heating_layout.setContentsMargins(0, 16, 0, 0)
        self.jobs_page = JobsPage()
        self.network_page = NetworkPage()
        self.pages = QTabWidget()
        self.pages.setObjectName("pages")
        self.pages.setDocumentMode(True)
        self._page_names: list[str] = []
        for name, widget in (
            (DASHBOARD, dashboard_scroll),
            (HEATING, self.heating_host),
            (JOBS, _padded(self.jobs_page)),
            (NETWORK, _padded(self.network_page)),
        ):
            self.pages.addTab(widget, name)
            self._page_names.append(name)
        self.pages.currentChanged.connect(self._on_page_changed)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(32, 24, 32, 24)
        layout.setSpacing(14)
        layout.addLayout(header)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

    def set_earnings_chart(self, chart: QWidget) -> None:
        """Put the dashboard's earnings chart in place (built when the first credits show)."""
        self.earnings_layout.addWidget(chart, 1)

    def set_cost_panel(self, panel: QWidget) -> None:
        """Put the cost of heat in place, under the big figures."""
        self.costs_layout.addWidget(panel)

    def set_charts(self, charts: QWidget) -> None:
        """Put the chart panel in place (built after the first paint to start faster)."""
        self.charts_layout.removeWidget(self.charts_placeholder)
        self.charts_placeholder.deleteLater()
        self.charts_layout.addWidget(charts)
        self.charts = charts

    # -- pages ---------------------------------------------------------------------------

    @property
    def page(self) -> str:
        return self._page_names[self.pages.currentIndex()]

    def show_page(self, name: str) -> None:
        self.pages.setCurrentIndex(self._page_names.index(name))

    def page_visible(self, name: str) -> bool:
        """Whether this page is in front in a window that shows."""
        return self._visible and self.page == name

    def _on_page_changed(self, _index: int) -> None:
        if self.page == HEATING:
            self.ensure_heating_page()
        self.page_changed.emit(self.page)

    def ensure_heating_page(self) -> HeatingPage:
        """The Heating page, built now if it has not been yet."""
        if self.heating_page is None:
            from heatshare.gui.heating_page import HeatingPage

            page = HeatingPage()
            layout = self.heating_host.layout()
            assert layout is not None
            layout.addWidget(page)
            self.heating_page = page
            self.heating_page_built.emit(page)
        return self.heating_page

    # -- state ---------------------------------------------------------------------------

    def set_status(self, status: AgentStatus) -> None:
        self._status = status
        self.dashboard.set_status(status)
        self._refresh_header()

    def set_connection(self, state: ConnectionState, message: str) -> None:
        self._state = state
        self.dashboard.set_connection(state, message)
        self._refresh_header()

    def _refresh_header(self) -> None:
        self.status_label.setText(status_line(self._status, self._state))
        connected = self._state is ConnectionState.CONNECTED and self._status is not None
        self.pause_button.setEnabled(connected)
        paused = self._status is not None and self._status.state is AgentState.PAUSED
        self.pause_button.setText("Resume heating" if paused else "Pause for 1 hour")

    def _pause_clicked(self) -> None:
        if self._status is not None and self._status.state is AgentState.PAUSED:
            self.resume_requested.emit()
        else:
            self.pause_requested.emit(3600)

    # -- visibility ----------------------------------------------------------------------

    @property
    def shown(self) -> bool:
        return self._visible

    def _update_visible(self) -> None:
        visible = self.isVisible() and not self.isMinimized()
        if visible != self._visible:
            self._visible = visible
            self.visibility_changed.emit(visible)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        self._update_visible()

    def hideEvent(self, event: QHideEvent) -> None:  # noqa: N802 (Qt override)
        super().hideEvent(event)
        self._update_visible()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        if event.type() == QEvent.Type.WindowStateChange:
            self._update_visible()
        elif (
            event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange)
            and not self._restyling
        ):
            self.refresh_theme()

    def refresh_theme(self) -> None:
        """Light/dark switched: a style sheet resolves ``palette(...)`` only when it is set."""
        self._restyling = True  # re-setting the sheet sends palette events of its own
        try:
            self.setStyleSheet("")
            self.setStyleSheet(STYLE)
        finally:
            self._restyling = False

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self.allow_close:
            event.accept()
            return
        event.ignore()
        self.close_requested.emit()

    def bring_to_front(self) -> None:
        self.showNormal() if self.isMinimized() else self.show()
        self.raise_()
        self.activateWindow()

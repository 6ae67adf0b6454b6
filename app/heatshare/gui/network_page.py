"""The Network page: this machine in its compute network, its balance and its earnings.

Fed by the composition root (``set_network``, ``set_earnings``); the earnings chart is built
the first time the page shows, because it needs pyqtgraph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from heatshare.gui.dashboard import Banner, FigureCard
from heatshare.gui.formatting import NOT_AVAILABLE, format_money, format_when
from heatshare.protocol.local_api import EarningsResponse, NetworkStatus

if TYPE_CHECKING:
    from heatshare.gui.earnings_chart import EarningsChart

KIND_WORDS = {"credit": "Job credited", "payout": "Payout", "adjustment": "Adjustment"}
ENTRY_COLUMNS = ("When", "What", "Amount", "Job", "Note")
ENTRIES_SHOWN = 500  # the newest; the chart uses them all


def _title_font(delta: float) -> QFont:
    font = QFont()
    font.setPointSizeF(font.pointSizeF() + delta)
    font.setWeight(QFont.Weight.DemiBold)
    return font


def network_name(network: NetworkStatus) -> str:
    if network.demo:
        return "Demo network"
    host = urlsplit(network.coordinator_url or "").hostname
    return host or NOT_AVAILABLE


def link_text(network: NetworkStatus) -> tuple[str, str, str]:
    """The Link card: value, detail, note."""
    contact = f"last contact {format_when(network.last_contact)}"
    if network.reachable is None:
        return "Not tried yet", contact, ""
    if network.reachable:
        return "Reachable", contact, ""
    return "Unreachable", contact, network.last_error or ""


def sandbox_text(network: NetworkStatus) -> tuple[str, str, str]:
    """The Sandbox card: value, detail, note (why jobs are refused here)."""
    if network.sandbox is None:
        return "Jobs refused", "no safe sandbox on this machine", network.sandbox_problem or ""
    detail = "taking jobs" if network.accepting_jobs else "not taking jobs now"
    return network.sandbox, detail, network.sandbox_problem or ""


def outbox_text(network: NetworkStatus) -> tuple[str, str]:
    n, f = network.outbox_pending, network.failures_pending
    if n == 0 and f == 0:
        return "None waiting", "every result and failure report has reached the network"
    parts = [f"{n} result{'s' if n != 1 else ''}"] if n else []
    parts += [f"{f} failure report{'s' if f != 1 else ''}"] if f else []
    return ", ".join(parts), "waiting for the network; sent when it answers"


NOT_ENROLLED_TITLE = "This computer is not part of a compute network yet"
LEFT_TITLE = "This computer is not part of a compute network"  # a reason follows


class NetworkPage(QWidget):
    """Node, link, sandbox, outbox, balances, and the earnings chart and ledger.

    Signals:
        join_requested(): "Join a network…".
        demo_requested(): "Try the demo network" (shown while not in a network).
        leave_requested(): "Leave this network".
    """

    join_requested = Signal()
    demo_requested = Signal()
    leave_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:  # noqa: PLR0915 (one layout)
        super().__init__(parent)
        self.setObjectName("networkPage")
        self.network: NetworkStatus | None = None
        self.earnings: EarningsResponse | None = None
        self.chart: EarningsChart | None = None
        self._active = False

        title = QLabel("Compute network")
        title.setFont(_title_font(4))
        self.join_button = QPushButton("Join a network…")
        self.join_button.clicked.connect(self.join_requested)
        self.leave_button = QPushButton("Leave this network")
        self.leave_button.clicked.connect(self.leave_requested)
        self.leave_button.hide()
        header = QHBoxLayout()
        header.addWidget(title, 1)
        header.addWidget(self.leave_button)
        header.addWidget(self.join_button)
        self.error_banner = Banner("error")

        # -- not in a network yet -------------------------------------------------------------
        self.not_enrolled = QFrame()
        self.not_enrolled.setObjectName("figureCard")
        self.not_enrolled_title = ne_title = QLabel(NOT_ENROLLED_TITLE)
        ne_title.setFont(_title_font(3))
        self.not_enrolled_text = QLabel(
            "Join your network with the pairing code its operator gave you, or try the demo "
            "network on this computer (it pays in demo credits, which are not money)."
        )
        self.not_enrolled_text.setWordWrap(True)
        self.not_enrolled_text.setObjectName("hint")
        # Why this machine left the network when it did not choose to (the operator revoked
        # it), in the network's own words.
        self.left_reason = QLabel()
        self.left_reason.setWordWrap(True)
        self.left_reason.hide()
        ne_join = QPushButton("Join a network…")
        ne_join.clicked.connect(self.join_requested)
        ne_demo = QPushButton("Try the demo network")
        ne_demo.clicked.connect(self.demo_requested)
        ne_buttons = QHBoxLayout()
        ne_buttons.addWidget(ne_join)
        ne_buttons.addWidget(ne_demo)
        ne_buttons.addStretch(1)
        ne_layout = QVBoxLayout(self.not_enrolled)
        ne_layout.setContentsMargins(20, 16, 20, 16)
        ne_layout.addWidget(ne_title)
        ne_layout.addWidget(self.left_reason)
        ne_layout.addWidget(self.not_enrolled_text)
        ne_layout.addLayout(ne_buttons)

        # -- enrolled --------------------------------------------------------------------------
        self.network_card = FigureCard("Network")
        self.node_card = FigureCard("This machine")
        self.link_card = FigureCard("Link")
        self.sandbox_card = FigureCard("Sandbox")
        self.balance_card = FigureCard("Balance")
        self.today_card = FigureCard("Earned today")
        self.outbox_card = FigureCard("Waiting to be sent")
        for card in (
            self.network_card,
            self.node_card,
            self.link_card,
            self.sandbox_card,
            self.balance_card,
            self.today_card,
            self.outbox_card,
        ):
            card.value.setFont(_title_font(6))
        grid = QGridLayout()
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(16)
        grid.addWidget(self.network_card, 0, 0)
        grid.addWidget(self.node_card, 0, 1)
        grid.addWidget(self.link_card, 0, 2)
        grid.addWidget(self.sandbox_card, 0, 3)
        grid.addWidget(self.balance_card, 1, 0)
        grid.addWidget(self.today_card, 1, 1)
        grid.addWidget(self.outbox_card, 1, 2, 1, 2)
        for col in range(4):
            grid.setColumnStretch(col, 1)
        self.cards = QWidget()
        self.cards.setLayout(grid)
        grid.setContentsMargins(0, 0, 0, 0)

        self.chart_host = QWidget()
        self.chart_layout = QVBoxLayout(self.chart_host)
        self.chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_title = QLabel("Earnings")
        chart_title.setFont(_title_font(3))
        self.as_of = QLabel("")
        self.as_of.setObjectName("chartNote")
        chart_head = QHBoxLayout()
        chart_head.addWidget(chart_title)
        chart_head.addSpacing(12)
        chart_head.addWidget(self.as_of, 1)
        self.chart_layout.addLayout(chart_head)

        self.entries = QTableWidget(0, len(ENTRY_COLUMNS))
        self.entries.setObjectName("earningsTable")
        self.entries.setHorizontalHeaderLabels(ENTRY_COLUMNS)
        self.entries.verticalHeader().hide()
        self.entries.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.entries.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.entries.setAlternatingRowColors(True)
        self.entries.setShowGrid(False)
        self.entries.setWordWrap(False)
        head = self.entries.horizontalHeader()
        for col in range(len(ENTRY_COLUMNS) - 1):
            head.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(len(ENTRY_COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        entries_title = QLabel("Payouts and earnings")
        entries_title.setFont(_title_font(3))
        entries_box = QWidget()
        entries_layout = QVBoxLayout(entries_box)
        entries_layout.setContentsMargins(0, 0, 0, 0)
        entries_layout.addWidget(entries_title)
        entries_layout.addWidget(self.entries, 1)

        self.lower_split = QSplitter(Qt.Orientation.Horizontal)
        self.lower_split.setChildrenCollapsible(False)
        self.lower_split.addWidget(self.chart_host)
        self.lower_split.addWidget(entries_box)
        self.lower_split.setStretchFactor(0, 3)
        self.lower_split.setStretchFactor(1, 2)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(16)
        layout.addLayout(header)
        layout.addWidget(self.error_banner)
        layout.addWidget(self.not_enrolled)
        layout.addWidget(self.cards)
        layout.addWidget(self.lower_split, 1)
        # Out of a network, the card keeps its height and the room below stays empty.
        self._filler = QWidget()
        layout.addWidget(self._filler, 1)
        self._filler.hide()
        self.not_enrolled.hide()
        for card in (self.network_card, self.node_card, self.link_card, self.sandbox_card):
            card.set(NOT_AVAILABLE, "waiting for the agent")

    # -- inputs --------------------------------------------------------------------------

    def set_network(self, network: NetworkStatus) -> None:
        self.network = network
        self.error_banner.show_text("")
        enrolled = network.enrolled
        self.not_enrolled.setVisible(not enrolled)
        self._filler.setVisible(not enrolled)
        self.not_enrolled_title.setText(
            LEFT_TITLE if not enrolled and network.last_error else NOT_ENROLLED_TITLE
        )
        self.cards.setVisible(enrolled)
        self.lower_split.setVisible(enrolled)
        self.leave_button.setVisible(enrolled)
        self.join_button.setText("Join another network…" if enrolled else "Join a network…")
        self.left_reason.setText("" if enrolled else network.last_error or "")
        self.left_reason.setVisible(not enrolled and bool(network.last_error))
        if not enrolled:
            self.earnings = None  # a network left; the next one has figures of its own
            return
        self.network_card.set(
            network_name(network),
            network.coordinator_url or "",
            "Pays in demo credits, which are not money." if network.demo else "",
        )
        self.node_card.set(
            f"Node {network.node_id}" if network.node_id is not None else NOT_AVAILABLE,
            f"account {network.account_name}" if network.account_name else "",
        )
        self.link_card.set(*link_text(network))
        self.sandbox_card.set(*sandbox_text(network))
        self.outbox_card.set(*outbox_text(network))
        if self.earnings is None:
            self._show_balances(network.balance_minor, network.account_balance_minor, None)

    def set_earnings(self, earnings: EarningsResponse) -> None:
        self.earnings = earnings
        self._show_balances(
            earnings.balance_minor, earnings.account_balance_minor, earnings.today_minor
        )
        self.as_of.setText(
            f"as the network confirmed at {format_when(earnings.as_of)}"
            if earnings.as_of is not None
            else "not yet confirmed by the network"
        )
        self._fill_entries(earnings)
        if self.chart is not None:
            self.chart.set_earnings(earnings)

    def set_error(self, message: str) -> None:
        """A load failed (the agent is away, or has no network routes): say so once."""
        self.error_banner.show_text(message)

    def _currency(self) -> str:
        if self.earnings is not None:
            return self.earnings.currency
        return (self.network.currency if self.network else None) or ""

    def _show_balances(self, node: int | None, account: int | None, today: int | None) -> None:
        currency = self._currency()
        self.balance_card.set(
            format_money(node, currency),
            f"whole account: {format_money(account, currency)}" if account is not None else "",
            "demo credits are not money" if currency == "CRD" else "",
        )
        self.today_card.set(format_money(today, currency))

    def _fill_entries(self, earnings: EarningsResponse) -> None:
        rows = sorted(earnings.entries, key=lambda e: e.at, reverse=True)[:ENTRIES_SHOWN]
        table = self.entries
        table.setRowCount(len(rows))
        for r, entry in enumerate(rows):
            cells = (
                format_when(entry.at),
                KIND_WORDS.get(entry.kind, entry.kind),
                format_money(entry.amount_minor, earnings.currency),
                str(entry.job_id) if entry.job_id is not None else "",
                entry.memo,
            )
            for c, text in enumerate(cells):
                item = table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    table.setItem(r, c, item)
                item.setText(text)
                if c == 2:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )

    # -- showing -------------------------------------------------------------------------

    def set_active(self, active: bool) -> None:
        """The page shows (build the chart the first time) or is hidden (no repaints)."""
        self._active = active
        if active and self.chart is None:
            from heatshare.gui.earnings_chart import EarningsChart  # pyqtgraph, on first show

            self.chart = EarningsChart()
            self.chart_layout.addWidget(self.chart, 1)
            if self.earnings is not None:
                self.chart.set_earnings(self.earnings)
        if self.chart is not None:
            self.chart.set_active(active)

    def stop(self) -> None:
        if self.chart is not None:
            self.chart.stop()

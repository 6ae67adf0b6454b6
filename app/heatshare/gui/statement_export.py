"""The monthly statement: saved as the agent's CSV, or as a PDF the app draws with Qt.

The PDF is drawn by ``QPdfWriter`` and ``QPainter`` (no other service): a first page with the
month's totals and a chart of each day's heat and net cost, and a page with the day-by-day
table. Every figure in it is the agent's (:class:`~heatshare.protocol.energy.StatementResponse`),
so it agrees with the CSV and the dashboard to the penny.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from PySide6.QtCore import QMarginsF, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPageLayout, QPageSize, QPainter, QPdfWriter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from heatshare.domain.readings import Provenance
from heatshare.gui.energy_text import USUAL_WORDS, format_co2_g, format_kwh, format_per_kwh_micro
from heatshare.gui.formatting import NOT_AVAILABLE, format_money_minor
from heatshare.protocol.energy import StatementLineOut, StatementResponse, UsualHeatingKind

HEAT = QColor(230, 110, 20)
COST = QColor(40, 110, 190)
INK = QColor(30, 30, 30)
GREY = QColor(110, 110, 110)
RULE = QColor(200, 200, 200)
DPI = 144  # layout units: 2 per point
SOURCE_NAMES = {
    Provenance.PLUG: "smart plug",
    Provenance.ENERGY_COUNTER: "energy counters",
    Provenance.POWER_READING: "power readings",
    Provenance.ESTIMATE: "estimate",
}


def month_choices(today: date, count: int = 13) -> list[tuple[str, str]]:
    """``[("2026-11", "November 2026"), ("2026-10", "October 2026"), …]``, newest first."""
    out = []
    year, month = today.year, today.month
    for _ in range(count):
        out.append((f"{year:04d}-{month:02d}", f"{date(year, month, 1):%B %Y}"))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out


def month_title(month: str) -> str:
    """``"2026-11"`` → ``"November 2026"``; anything else as it is (the agent judges it)."""
    try:
        year, mon = (int(p) for p in month.split("-"))
        return f"{date(year, mon, 1):%B %Y}"
    except ValueError:
        return month


def write_text_file(path: Path, text: str) -> None:
    """Write whole or not at all: a temporary file beside the target, then a rename."""
    fd, tmp = tempfile.mkstemp(prefix=".heatshare-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary_rows(st: StatementResponse) -> list[tuple[str, str]]:
    """The month's totals, as labelled figures for the PDF's first page."""
    t, cur = st.total, st.currency
    by_source = ", ".join(
        f"{format_kwh(kwh)} {SOURCE_NAMES[p]}" for p, kwh in sorted(t.kwh_by_source.items()) if kwh
    )
    usual = USUAL_WORDS[st.usual_heating]
    rows = [
        (
            "Electricity used",
            format_kwh(t.electricity_kwh) + (f" ({by_source})" if by_source else ""),
        ),
        ("Heat delivered", format_kwh(t.heat_kwh)),
        ("Price paid for the electricity", format_money_minor(t.electricity_cost_minor, cur)),
        ("Earnings", format_money_minor(t.earnings_minor, cur)),
        ("Net cost", format_money_minor(t.net_cost_minor, cur)),
        (
            "Cost per kWh of heat",
            format_per_kwh_micro(t.effective_micro_per_kwh, cur)
            if t.effective_micro_per_kwh is not None
            else f"{NOT_AVAILABLE} (no heat delivered)",
        ),
    ]
    if st.usual_heating is UsualHeatingKind.NONE:
        rows.append(("Usual heating", "not set: no comparison"))
    else:
        rows.append((f"{usual} for the same heat", format_money_minor(t.usual_cost_minor, cur)))
        saving = t.saving_minor
        if saving is not None and saving < 0:
            rows.append(("Extra cost against it", format_money_minor(-saving, cur)))
        else:
            rows.append(("Saving against it", format_money_minor(saving, cur)))
        co2 = t.co2_avoided_g
        if co2 is not None and co2 < 0:
            rows.append(("CO₂ added", format_co2_g(-co2)))
        else:
            rows.append(("CO₂ avoided", format_co2_g(co2)))
    return rows


def render_statement_pdf(st: StatementResponse, path: Path) -> int:
    """Draw the statement into a PDF file at ``path``; the number of pages drawn.

    Raises:
        OSError: the file could not be written (a sentence naming the place).
    """
    writer = QPdfWriter(str(path))
    writer.setTitle(f"Heatshare statement, {month_title(st.month)}")
    writer.setCreator("Heatshare")
    writer.setResolution(DPI)
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(18, 18, 18, 18),
            QPageLayout.Unit.Millimeter,
        )
    )
    painter = QPainter()
    if not painter.begin(writer):
        raise OSError(f"The PDF could not be written to {path}: check the folder can be written.")
    pages = 1
    try:
        page = QRectF(writer.pageLayout().paintRectPixels(DPI))
        page.moveTo(0, 0)
        y = _draw_heading(painter, page, st)
        y = _draw_summary(painter, page, y, st)
        _draw_chart(painter, QRectF(page.left(), y + 30, page.width(), page.height() - y - 60), st)
        rows = list(st.lines)
        while rows:
            writer.newPage()
            pages += 1
            rows = _draw_table(painter, page, st, rows)
    finally:
        painter.end()
    if not path.is_file() or path.stat().st_size == 0:
        raise OSError(f"The PDF could not be written to {path}.")
    return pages


def _font(points: float, bold: bool = False) -> QFont:
    font = QFont("DejaVu Sans")
    font.setStyleHint(QFont.StyleHint.SansSerif)
    font.setPointSizeF(points)
    font.setBold(bold)
    return font


def _draw_heading(p: QPainter, page: QRectF, st: StatementResponse) -> float:
    p.setPen(INK)
    p.setFont(_font(20, bold=True))
    p.drawText(QPointF(page.left(), page.top() + 40), f"Heat statement · {month_title(st.month)}")
    p.setFont(_font(10))
    p.setPen(GREY)
    generated = st.generated_at.astimezone()
    p.drawText(
        QPointF(page.left(), page.top() + 80),
        f"Heatshare on {st.hostname} · amounts in {st.currency} · generated "
        f"{generated:%d %B %Y at %H:%M}",
    )
    p.setPen(QPen(RULE, 2))
    p.drawLine(QPointF(page.left(), page.top() + 100), QPointF(page.right(), page.top() + 100))
    return page.top() + 130


def _draw_summary(p: QPainter, page: QRectF, y: float, st: StatementResponse) -> float:
    p.setFont(_font(11))
    line = p.fontMetrics().height() * 1.45
    for label, value in summary_rows(st):
        p.setPen(GREY)
        p.drawText(QPointF(page.left(), y + line * 0.75), label)
        p.setPen(INK)
        p.drawText(QPointF(page.left() + page.width() * 0.42, y + line * 0.75), value)
        y += line
    p.setFont(_font(8.5))
    p.setPen(GREY)
    note = (
        "Cost per kWh of heat = (price paid − earnings) ÷ heat delivered. Standing charges are "
        "left out: they are paid with or without Heatshare."
    )
    rect = QRectF(page.left(), y + 10, page.width(), 60)
    p.drawText(rect, Qt.TextFlag.TextWordWrap, note)
    return y + 10 + p.fontMetrics().height() * 2.5


def _draw_chart(p: QPainter, area: QRectF, st: StatementResponse) -> None:
    """Each day's heat (kWh, left scale) and net cost (right scale), as pairs of bars."""
    p.setFont(_font(12, bold=True))
    p.setPen(INK)
    p.drawText(QPointF(area.left(), area.top()), "Day by day")
    p.setFont(_font(8.5))
    metrics = p.fontMetrics()
    legend_y = area.top() + metrics.height() * 1.6
    x = area.left()
    for colour, label in (
        (HEAT, "heat delivered, kWh (left)"),
        (COST, f"net cost, {st.currency} (right)"),
    ):
        p.fillRect(QRectF(x, legend_y - metrics.ascent() + 2, 16, 16), colour)
        p.setPen(INK)
        p.drawText(QPointF(x + 24, legend_y + 4), label)
        x += 24 + metrics.horizontalAdvance(label) + 40
    left_w = metrics.horizontalAdvance("000.0") + 14
    right_w = metrics.horizontalAdvance("-£00.00") + 14
    plot = QRectF(
        area.left() + left_w,
        legend_y + 30,
        area.width() - left_w - right_w,
        max(100.0, area.height() - (legend_y + 30 - area.top()) - metrics.height() - 16),
    )
    lines = st.lines
    heat = [float(line.heat_kwh) for line in lines]
    cost = [line.net_cost_minor for line in lines]
    heat_hi = _nice(max([*heat, 0.001]))
    cost_hi = round(_nice(max([*cost, 1])))
    cost_lo = min([*cost, 0])
    # One zero line for both scales: the heat scale shares the cost scale's share below zero.
    below = -cost_lo / (cost_hi - cost_lo) if cost_hi > cost_lo else 0.0
    zero_y = plot.bottom() - below * plot.height()

    def y_heat(v: float) -> float:
        return zero_y - v / heat_hi * (zero_y - plot.top())

    def y_cost(minor: int) -> float:
        return zero_y - minor / cost_hi * (zero_y - plot.top())

    p.setPen(GREY)
    p.drawText(
        QRectF(area.left(), zero_y - metrics.height() / 2, left_w - 8, metrics.height()),
        Qt.AlignmentFlag.AlignRight,
        "0",
    )
    p.setPen(QPen(RULE, 1))
    for i in range(1, 5):
        gy = zero_y - (zero_y - plot.top()) * i / 4
        p.drawLine(QPointF(plot.left(), gy), QPointF(plot.right(), gy))
        p.setPen(GREY)
        p.drawText(
            QRectF(area.left(), gy - metrics.height() / 2, left_w - 8, metrics.height()),
            Qt.AlignmentFlag.AlignRight,
            f"{heat_hi * i / 4:.1f}",
        )
        p.drawText(
            QRectF(plot.right() + 8, gy - metrics.height() / 2, right_w, metrics.height()),
            Qt.AlignmentFlag.AlignLeft,
            format_money_minor(round(cost_hi * i / 4), st.currency),
        )
        p.setPen(QPen(RULE, 1))
    n = max(1, len(lines))
    slot = plot.width() / n
    bar = slot * 0.36
    for i, line in enumerate(lines):
        x0 = plot.left() + i * slot + slot * 0.12
        p.fillRect(
            QRectF(QPointF(x0, y_heat(heat[i])), QPointF(x0 + bar, zero_y)).normalized(), HEAT
        )
        p.fillRect(
            QRectF(QPointF(x0 + bar, y_cost(cost[i])), QPointF(x0 + 2 * bar, zero_y)).normalized(),
            COST,
        )
        day = int(line.day[-2:])
        if day == 1 or day % 5 == 0:
            p.setPen(GREY)
            label = str(day)
            w = metrics.horizontalAdvance(label)
            p.drawText(QPointF(x0 + bar - w / 2, plot.bottom() + metrics.height() + 4), label)
    p.setPen(QPen(INK, 1.5))
    p.drawLine(QPointF(plot.left(), zero_y), QPointF(plot.right(), zero_y))


def _nice(value: float) -> float:
    """A round top for a scale: 1, 2, 2.5 or 5 times a power of ten, at least ``value``."""
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= value:
            return step * magnitude
    return value


def _draw_table(
    p: QPainter, page: QRectF, st: StatementResponse, rows: list[StatementLineOut]
) -> list[StatementLineOut]:
    """Draw as many day rows as fit, then the total; the rows left for the next page."""
    cur = st.currency
    # Right edges, as shares of the width; the day's column is left-aligned.
    cols = (
        ("Day", 0.10),
        ("Electricity", 0.23),
        ("Heat", 0.35),
        ("Price paid", 0.48),
        ("Earnings", 0.60),
        ("Net cost", 0.72),
        ("Per kWh heat", 0.87),
        ("Saving", 1.0),
    )
    p.setFont(_font(12, bold=True))
    p.setPen(INK)
    p.drawText(QPointF(page.left(), page.top() + 30), f"{month_title(st.month)}, day by day")
    p.setFont(_font(8.5, bold=True))
    height = p.fontMetrics().height() * 1.5
    y = page.top() + 60

    def row(cells: list[str], bold: bool = False) -> None:
        p.setFont(_font(8.5, bold=bold))
        start = page.left()
        for i, ((_, frac), text) in enumerate(zip(cols, cells, strict=True)):
            end = page.left() + frac * page.width()
            align = Qt.AlignmentFlag.AlignLeft if i == 0 else Qt.AlignmentFlag.AlignRight
            p.drawText(
                QRectF(start, y, end - start, height), align | Qt.AlignmentFlag.AlignVCenter, text
            )
            start = end

    p.setPen(GREY)
    row([c[0] for c in cols], bold=True)
    y += height
    p.setPen(QPen(RULE, 1.5))
    p.drawLine(QPointF(page.left(), y), QPointF(page.right(), y))

    def cells(line: StatementLineOut, label: str) -> list[str]:
        return [
            label,
            format_kwh(line.electricity_kwh),
            format_kwh(line.heat_kwh),
            format_money_minor(line.electricity_cost_minor, cur),
            format_money_minor(line.earnings_minor, cur),
            format_money_minor(line.net_cost_minor, cur),
            format_per_kwh_micro(line.effective_micro_per_kwh, cur)
            if line.effective_micro_per_kwh is not None
            else "–",
            format_money_minor(line.saving_minor, cur) if line.saving_minor is not None else "–",
        ]

    left = list(rows)
    p.setPen(INK)
    while left and y + height * 3 < page.bottom():
        line = left.pop(0)
        when = date.fromisoformat(line.day)
        row(cells(line, f"{when:%a} {when.day}"))
        y += height
    if not left:
        p.setPen(QPen(INK, 1.5))
        p.drawLine(QPointF(page.left(), y + 2), QPointF(page.right(), y + 2))
        y += 4
        p.setPen(INK)
        row(cells(st.total, "Month"), bold=True)
    return left


class StatementDialog(QDialog):
    """Choose a month and save its statement as CSV or PDF, to a file the user picks.

    The caller fetches what is asked and hands it back (``set_csv``, ``set_statement``,
    ``set_error``); the dialog writes the file and says where it went.

    Signals:
        csv_requested(str): the month (``YYYY-MM``) whose CSV to fetch.
        statement_requested(str): the month whose statement to fetch, for the PDF.
    """

    csv_requested = Signal(str)
    statement_requested = Signal(str)

    def __init__(self, today: date | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("statementDialog")
        self.setWindowTitle("Monthly statement")
        self.setMinimumWidth(480)
        self.pending: tuple[str, str, Path] | None = None  # (kind, month, path) being fetched
        self.month = QComboBox()
        for value, label in month_choices(today or datetime.now(UTC).astimezone().date()):
            self.month.addItem(label, value)
        self.csv_button = QPushButton("Save as CSV…")
        self.csv_button.clicked.connect(lambda: self._ask("csv"))
        self.pdf_button = QPushButton("Save as PDF…")
        self.pdf_button.clicked.connect(lambda: self._ask("pdf"))
        self.outcome = QLabel("")
        self.outcome.setWordWrap(True)
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        hint = QLabel(
            "The electricity used (by what measured it), the price paid, the earnings, the heat "
            "delivered and the saving against your usual heating, day by day. The CSV opens in "
            "a spreadsheet; the PDF has a chart of the month."
        )
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Month", self.month)
        buttons = QHBoxLayout()
        buttons.addWidget(self.csv_button)
        buttons.addWidget(self.pdf_button)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 24, 24, 16)
        layout.setSpacing(14)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addLayout(buttons)
        layout.addWidget(self.outcome)
        layout.addWidget(close)

    @property
    def chosen_month(self) -> str:
        return str(self.month.currentData())

    def _ask(self, kind: str) -> None:
        month = self.chosen_month
        suggested = Path.home() / f"heatshare-statement-{month}.{kind}"
        name, _ = QFileDialog.getSaveFileName(
            self,
            f"Save the statement as {kind.upper()}",
            str(suggested),
            "CSV (*.csv)" if kind == "csv" else "PDF (*.pdf)",
        )
        if name:
            self.export(kind, Path(name))

    def export(self, kind: str, path: Path) -> None:
        """Fetch the chosen month's statement and write it to ``path`` as ``kind``."""
        month = self.chosen_month
        self.pending = (kind, month, path)
        self._busy(True)
        self._say(f"Fetching the statement for {month_title(month)}…")
        if kind == "csv":
            self.csv_requested.emit(month)
        else:
            self.statement_requested.emit(month)

    def set_csv(self, month: str, text: str) -> None:
        if self.pending is None or self.pending[:2] != ("csv", month):
            return
        path = self.pending[2]
        self.pending = None
        self._busy(False)
        try:
            write_text_file(path, text)
        except OSError as exc:
            self._say(f"Not saved: {exc.strerror or exc} ({path}).", error=True)
            return
        self._say(f"Saved {month_title(month)} as CSV to {path}.")

    def set_statement(self, statement: StatementResponse) -> None:
        if self.pending is None or self.pending[:2] != ("pdf", statement.month):
            return
        path = self.pending[2]
        self.pending = None
        self._busy(False)
        try:
            pages = render_statement_pdf(statement, path)
        except OSError as exc:
            self._say(f"Not saved: {exc.strerror or exc}", error=True)
            return
        self._say(f"Saved {month_title(statement.month)} as PDF ({pages} pages) to {path}.")

    def set_error(self, message: str) -> None:
        if self.pending is None:
            return
        self.pending = None
        self._busy(False)
        self._say(f"Not saved: {message}", error=True)

    def _busy(self, busy: bool) -> None:
        self.csv_button.setEnabled(not busy)
        self.pdf_button.setEnabled(not busy)
        self.month.setEnabled(not busy)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.outcome.setText(text)
        self.outcome.setStyleSheet("color: #c62828;" if error else "")

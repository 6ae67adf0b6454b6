"""The dashboard's cost of heat: a card for today, this month and this season, and the plan.

Each card leads with the effective cost of a kWh of heat (electricity cost − earnings, per kWh
of heat) beside the usual heating's, then the sums it comes from. The plan strip shows the
hours ahead: the price of each slot as a bar, and how hard the heater means to run as a line.
Fed by the composition root (``set_costs``, ``set_error``, ``set_usual``); painted by Qt
alone, so the dashboard needs no chart library for it.
"""

from __future__ import annotations

from decimal import Decimal

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from heatshare.gui.dashboard import Banner
from heatshare.gui.energy_text import (
    PeriodText,
    format_price,
    hhmm,
    period_text,
    plan_caption,
    price_now_line,
    source_line,
    usual_hint,
)
from heatshare.gui.formatting import NOT_AVAILABLE
from heatshare.protocol.energy import CostsResponse, PlanSlot, UsualHeatingKind

GOOD = QColor(46, 125, 50)
BAD = QColor(198, 40, 40)
POWER = QColor(230, 110, 20)  # the heater's planned power: the app's heat colour


def _font(delta: float, weight: QFont.Weight | None = None) -> QFont:
    font = QFont()
    font.setPointSizeF(max(6.0, font.pointSizeF() + delta))
    if weight is not None:
        font.setWeight(weight)
    return font


class PeriodCard(QFrame):
    """One period's figures: the cost per kWh of heat, then a table of what it comes from."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("figureCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.title = QLabel(title.upper())
        self.title.setObjectName("cardTitle")
        self.title.setFont(_font(-1, QFont.Weight.DemiBold))
        self.span = QLabel("")
        self.span.setObjectName("cardNote")
        self.headline = QLabel(NOT_AVAILABLE)
        self.headline.setObjectName("cardValue")
        self.headline.setFont(_font(5, QFont.Weight.DemiBold))
        self.headline.setWordWrap(True)
        self.headline.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.headline_detail = QLabel("")
        self.headline_detail.setObjectName("cardDetail")
        self.headline_detail.setWordWrap(True)
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(12)
        self.grid.setVerticalSpacing(3)
        self.grid.setColumnStretch(0, 1)
        self.labels: list[QLabel] = []
        self.values: list[QLabel] = []
        self.note = QLabel("")
        self.note.setObjectName("cardNote")
        self.note.setWordWrap(True)
        self.note.hide()
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.span)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.headline)
        layout.addWidget(self.headline_detail)
        layout.addSpacing(6)
        layout.addLayout(self.grid)
        layout.addWidget(self.note)
        layout.addStretch(1)

    def show_text(self, text: PeriodText) -> None:
        self.span.setText(text.span)
        self.headline.setText(text.headline)
        self.headline.setProperty("missing", text.headline == NOT_AVAILABLE)
        self.headline.style().polish(self.headline)
        self.headline_detail.setText(text.headline_detail)
        self.headline_detail.setVisible(bool(text.headline_detail))
        while len(self.labels) < len(text.rows):
            row = len(self.labels)
            label, value = QLabel(), QLabel()
            label.setObjectName("cardNote")
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.grid.addWidget(label, row, 0)
            self.grid.addWidget(value, row, 1)
            self.labels.append(label)
            self.values.append(value)
        for i, (label, value) in enumerate(zip(self.labels, self.values, strict=True)):
            shown = i < len(text.rows)
            label.setVisible(shown)
            value.setVisible(shown)
            if not shown:
                continue
            figure = text.rows[i]
            label.setText(figure.label)
            value.setText(figure.value)
            colour = _tone(figure.tone, dark=self.palette().window().color().lightness() < 128)
            value.setStyleSheet(f"color: {colour.name()}; font-weight: 600;" if colour else "")
        self.note.setText("\n".join(text.notes))
        self.note.setVisible(bool(text.notes))

    def show_missing(self, why: str) -> None:
        self.span.setText("")
        self.headline.setText(NOT_AVAILABLE)
        self.headline.setProperty("missing", True)
        self.headline.style().polish(self.headline)
        self.headline_detail.setText(why)
        self.headline_detail.setVisible(bool(why))
        for widget in (*self.labels, *self.values):
            widget.hide()
        self.note.hide()


class PlanStrip(QWidget):
    """The hours ahead: a bar per slot for its price, a line for the planned power.

    Bars are shaded from the cheapest (light) to the dearest (dark); a slot priced at the
    tariff's fallback price is hatched. The power line reads against the right-hand 0–100 %.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("planStrip")
        self.plan: list[PlanSlot] = []
        self.currency = "GBP"
        self.setMinimumHeight(96)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(600, 104)

    def set_plan(self, plan: list[PlanSlot], currency: str) -> None:
        self.plan = plan
        self.currency = currency
        self.setToolTip(self._tooltip())
        self.update()

    def _tooltip(self) -> str:
        if not self.plan:
            return ""
        lines = [
            f"{hhmm(s.start)}–{hhmm(s.end)}  {format_price(s.price_per_kwh, self.currency)}"
            f"  {s.power_pct:.0f} %"
            for s in self.plan[:: max(1, len(self.plan) // 12)]
        ]
        return "Price per kWh and planned power:\n" + "\n".join(lines)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        super().paintEvent(event)
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, p: QPainter) -> None:  # noqa: PLR0915 (one drawing, read top to bottom)
        pal = self.palette()
        text_colour = pal.placeholderText().color()
        small = _font(-2)
        p.setFont(small)
        metrics = p.fontMetrics()
        left = metrics.horizontalAdvance("£0.000") + 8
        right = metrics.horizontalAdvance("100 %") + 8
        top, bottom = 6, metrics.height() + 6
        area = QRectF(left, top, self.width() - left - right, self.height() - top - bottom)
        if not self.plan or area.width() < 20 or area.height() < 20:
            p.setPen(text_colour)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No plan for the hours ahead yet")
            return
        prices = [float(s.price_per_kwh) for s in self.plan]
        hi = max(*prices, 0.0) or 1.0
        lo = min(*prices, 0.0)
        span = hi - lo
        t0 = self.plan[0].start.timestamp()
        t1 = self.plan[-1].end.timestamp()
        width_s = max(1.0, t1 - t0)

        def x(ts: float) -> float:
            return area.left() + (ts - t0) / width_s * area.width()

        def y_price(v: float) -> float:
            return area.bottom() - (v - lo) / span * area.height()

        cheapest, dearest = min(prices), max(prices)
        base = pal.highlight().color()
        for slot, price in zip(self.plan, prices, strict=True):
            share = 0.0 if dearest == cheapest else (price - cheapest) / (dearest - cheapest)
            colour = QColor(base)
            colour.setAlphaF(0.25 + 0.6 * share)
            rect = QRectF(
                QPointF(x(slot.start.timestamp()) + 0.5, y_price(price)),
                QPointF(x(slot.end.timestamp()) - 0.5, y_price(0.0)),
            ).normalized()
            p.fillRect(rect, colour)
            if slot.fallback:
                p.fillRect(rect, QBrush(QColor(0, 0, 0, 60), Qt.BrushStyle.BDiagPattern))
        # Planned power, a step line against 0–100 %.
        path = QPainterPath()
        for i, slot in enumerate(self.plan):
            yy = area.bottom() - slot.power_pct / 100 * area.height()
            xs, xe = x(slot.start.timestamp()), x(slot.end.timestamp())
            if i == 0:
                path.moveTo(xs, yy)
            else:
                path.lineTo(xs, yy)
            path.lineTo(xe, yy)
        p.setPen(QPen(POWER, 2.2))
        p.drawPath(path)
        # Axes: the price scale on the left, power on the right, hours below.
        p.setPen(text_colour)
        p.drawText(
            QRectF(0, area.top() - 2, left - 6, metrics.height()),
            Qt.AlignmentFlag.AlignRight,
            format_price(Decimal(str(round(hi, 3))), self.currency),
        )
        p.drawText(
            QRectF(0, area.bottom() - metrics.height() + 2, left - 6, metrics.height()),
            Qt.AlignmentFlag.AlignRight,
            format_price(Decimal(str(round(lo, 3))), self.currency),
        )
        p.setPen(POWER)
        p.drawText(
            QRectF(area.right() + 6, area.top() - 2, right, metrics.height()),
            Qt.AlignmentFlag.AlignLeft,
            "100 %",
        )
        p.drawText(
            QRectF(area.right() + 6, area.bottom() - metrics.height() + 2, right, metrics.height()),
            Qt.AlignmentFlag.AlignLeft,
            "0 %",
        )
        p.setPen(QPen(pal.mid().color(), 1))
        p.drawLine(QPointF(area.left(), area.bottom()), QPointF(area.right(), area.bottom()))
        p.setPen(text_colour)
        last_label = -1e9
        for slot in self.plan:
            local = slot.start.astimezone()
            if local.minute or local.hour % 3:
                continue
            xs = x(slot.start.timestamp())
            label = f"{local:%H:%M}"
            w = metrics.horizontalAdvance(label)
            if xs - w / 2 < last_label + 8 or xs + w / 2 > self.width():
                continue
            p.drawLine(QPointF(xs, area.bottom()), QPointF(xs, area.bottom() + 3))
            p.drawText(QPointF(xs - w / 2, self.height() - 4), label)
            last_label = xs + w / 2


class CostPanel(QWidget):
    """The cost of heat on the dashboard.

    Signals:
        settings_requested(): "Energy settings…".
        statement_requested(): "Statement…".
    """

    settings_requested = Signal()
    statement_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:  # noqa: PLR0915 (one layout)
        super().__init__(parent)
        self.setObjectName("costPanel")
        self.costs: CostsResponse | None = None
        self.usual = UsualHeatingKind.NONE

        title = QLabel("Cost of heat")
        title.setObjectName("sectionTitle")
        title.setFont(_font(3, QFont.Weight.DemiBold))
        self.source = QLabel("")
        self.source.setObjectName("statusLine")
        self.source.setWordWrap(True)
        self.statement_button = QPushButton("Statement…")
        self.statement_button.clicked.connect(self.statement_requested)
        self.settings_button = QPushButton("Energy settings…")
        self.settings_button.clicked.connect(self.settings_requested)
        head_text = QVBoxLayout()
        head_text.setSpacing(2)
        head_text.addWidget(title)
        head_text.addWidget(self.source)
        header = QHBoxLayout()
        header.addLayout(head_text, 1)
        header.addWidget(self.statement_button, 0, Qt.AlignmentFlag.AlignBottom)
        header.addWidget(self.settings_button, 0, Qt.AlignmentFlag.AlignBottom)

        self.usual_hint = QLabel("")
        self.usual_hint.setObjectName("hint")
        self.usual_hint.setWordWrap(True)
        self.usual_hint.hide()
        self.plug_banner = Banner("warning")
        self.error_banner = Banner("error")
        self.today = PeriodCard("Today")
        self.month = PeriodCard("This month")
        self.season = PeriodCard("This season")
        cards = QHBoxLayout()
        cards.setSpacing(16)
        for card in (self.today, self.month, self.season):
            cards.addWidget(card, 1)

        self.plan_caption = QLabel("")
        self.plan_caption.setObjectName("chartNote")
        legend = QLabel(
            "<span style='color:palette(highlight)'>■</span> price per kWh &nbsp; "
            f"<span style='color:{POWER.name()}'>━</span> planned power"
        )
        legend.setObjectName("chartNote")
        caption_row = QHBoxLayout()
        caption_row.addWidget(self.plan_caption, 1)
        caption_row.addWidget(legend)
        self.plan = PlanStrip()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        layout.addLayout(header)
        layout.addWidget(self.plug_banner)
        layout.addWidget(self.error_banner)
        layout.addLayout(cards)
        layout.addWidget(self.usual_hint)
        layout.addLayout(caption_row)
        layout.addWidget(self.plan)
        self._show_waiting()

    def _show_waiting(self) -> None:
        for card in (self.today, self.month, self.season):
            card.show_missing("waiting for the agent")

    def set_usual(self, usual: UsualHeatingKind) -> None:
        """The usual heating's kind, to name it on the cards (from the energy settings)."""
        self.usual = usual
        if self.costs is not None:
            self.set_costs(self.costs)

    def set_costs(self, costs: CostsResponse) -> None:
        self.costs = costs
        self.error_banner.show_text("")
        parts = [source_line(costs), price_now_line(costs)]
        self.source.setText(" · ".join(p for p in parts if p))
        self.plug_banner.show_text(
            f"<b>The smart plug is not read:</b> {_escape(costs.plug_error)}"
            if costs.plug_error
            else ""
        )
        for card, figures in (
            (self.today, costs.today),
            (self.month, costs.month),
            (self.season, costs.season),
        ):
            card.show_text(period_text(figures, costs.currency, self.usual))
        hint = usual_hint(costs, self.usual)
        self.usual_hint.setText(hint)
        self.usual_hint.setVisible(bool(hint))
        self.plan_caption.setText(plan_caption(costs))
        self.plan.set_plan(costs.plan, costs.currency)

    def set_error(self, message: str) -> None:
        """The figures could not be read: say so, and keep the last ones shown."""
        self.error_banner.show_text(
            f"<b>The cost figures are not available.</b> {_escape(message)}"
        )
        if self.costs is None:
            for card in (self.today, self.month, self.season):
                card.show_missing("")


def _tone(tone: str, *, dark: bool) -> QColor | None:
    """A saving in green, an extra cost in red; lighter shades on a dark background."""
    if tone == "good":
        return QColor(102, 187, 106) if dark else GOOD
    if tone == "bad":
        return QColor(239, 83, 80) if dark else BAD
    return None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

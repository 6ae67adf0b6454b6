"""The earnings chart: what the machine has earned in all (a line) and in each hour (bars).

Imported only when the Network page first shows (pyqtgraph costs a third of a second). The
sums are integers in minor units (:func:`earnings_series`, tested exactly); only the drawing
scales them to whole units. The same rules as the heat charts: float64 x arrays,
``setClipToView``, peak downsampling, ``skipFiniteCheck``, no OpenGL, and no repaint while
the page is hidden (new data waits until it shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from heatshare.gui.charts import is_dark
from heatshare.gui.formatting import DEMO_CURRENCY, minor_exponent
from heatshare.protocol.local_api import EarningEntry, EarningsResponse

HOUR_S = 3600
# A payout moves money out of the balance: it is not earned, so it is left out of both.
NOT_EARNINGS = frozenset({"payout"})


@dataclass(frozen=True)
class EarningsSeries:
    """Earnings over time, in integer minor units.

    Attributes:
        t: UTC seconds of each earning, ascending (float64).
        cumulative_minor: the running total after each earning (int64).
        hour_start: the start of each hour with earnings, UTC seconds (float64).
        hour_minor: what was earned in that hour (int64).
    """

    t: np.ndarray
    cumulative_minor: np.ndarray
    hour_start: np.ndarray
    hour_minor: np.ndarray


def earnings_series(entries: Sequence[EarningEntry]) -> EarningsSeries:
    """The cumulative line and the hourly bars from the ledger's entries (payouts left out)."""
    earned = sorted((e for e in entries if e.kind not in NOT_EARNINGS), key=lambda e: e.at)
    stamps = [e.at.timestamp() for e in earned]
    amounts = np.array([e.amount_minor for e in earned], dtype=np.int64)
    t = np.array(stamps, dtype=np.float64)
    hours: dict[int, int] = {}
    for stamp, entry in zip(stamps, earned, strict=True):
        start = int(stamp // HOUR_S) * HOUR_S
        hours[start] = hours.get(start, 0) + entry.amount_minor
    keys = sorted(hours)
    return EarningsSeries(
        t=t,
        cumulative_minor=np.cumsum(amounts, dtype=np.int64),
        hour_start=np.array(keys, dtype=np.float64),
        hour_minor=np.array([hours[k] for k in keys], dtype=np.int64),
    )


def unit_name(currency: str) -> str:
    return "credits" if currency.upper() == DEMO_CURRENCY else currency.upper()


class EarningsChart(QWidget):
    """Two linked plots: the running total, and bars of what each hour earned.

    ``set_earnings`` stores the answer; drawing happens at once while the chart is active
    and otherwise when it next becomes active.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("earningsChart")
        pg.setConfigOptions(useOpenGL=False, antialias=False, exitCleanup=False)
        self.series: EarningsSeries | None = None
        self.currency = ""
        self._dirty = False
        self._active = False
        self.repaint_count = 0

        self.empty = QLabel("No earnings yet: the chart fills as jobs are credited.")
        self.empty.setObjectName("hint")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.glw.ci.setSpacing(10)
        self.total_plot = self.glw.addPlot(row=0, col=0, axisItems={"bottom": pg.DateAxisItem()})
        self.hour_plot = self.glw.addPlot(row=1, col=0, axisItems={"bottom": pg.DateAxisItem()})
        self.total_plot.setTitle("Earned in all", justify="left")
        self.hour_plot.setTitle("Earned per hour", justify="left")
        for plot in (self.total_plot, self.hour_plot):
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setMouseEnabled(x=True, y=False)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.getAxis("left").setWidth(64)
            plot.getAxis("left").enableAutoSIPrefix(False)
        self.total_plot.hideAxis("bottom")
        self.hour_plot.setXLink(self.total_plot)
        self.total_curve = self.total_plot.plot(skipFiniteCheck=True)
        self.total_curve.setFillLevel(0)
        self.bars = pg.BarGraphItem(x0=[], x1=[], height=[])
        self.hour_plot.addItem(self.bars)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.empty)
        layout.addWidget(self.glw, 1)
        self.glw.hide()
        self._apply_colours()

    def set_earnings(self, earnings: EarningsResponse) -> None:
        series = earnings_series(earnings.entries)
        if (
            self.series is not None
            and self.currency == earnings.currency
            and np.array_equal(self.series.t, series.t)
            and np.array_equal(self.series.cumulative_minor, series.cumulative_minor)
        ):
            return  # the same ledger again (the page polls every 10 s): nothing to redraw
        self.series = series
        self.currency = earnings.currency
        self._dirty = True
        self._repaint_if_dirty()

    def set_active(self, active: bool) -> None:
        """Draw only while the page shows."""
        self._active = active
        if active:
            self._repaint_if_dirty()

    def _repaint_if_dirty(self) -> None:
        if not self._dirty or not self._active or self.series is None:
            return
        self._dirty = False
        s = self.series
        has_data = len(s.t) > 0
        self.empty.setVisible(not has_data)
        self.glw.setVisible(has_data)
        scale = float(10 ** minor_exponent(self.currency))
        unit = unit_name(self.currency)
        for plot in (self.total_plot, self.hour_plot):
            plot.setLabel("left", units=unit)
        if has_data:
            end = max(float(s.t[-1]), float(s.hour_start[-1]) + HOUR_S)
            start = float(s.hour_start[0])
            # A step line: the total holds from one credit to the next, then jumps. Drawn
            # as corner points, so the fill closes along the axis and not down the last edge.
            total = s.cumulative_minor.astype(np.float64) / scale
            x = np.repeat(np.append(s.t, end), 2)[1:-1]
            y = np.repeat(total, 2)
            self.total_curve.setData(x, y)
            self.bars.setOpts(
                x0=s.hour_start + HOUR_S * 0.08,
                x1=s.hour_start + HOUR_S * 0.92,
                height=s.hour_minor.astype(np.float64) / scale,
            )
            self.total_plot.setXRange(start, end, padding=0.02)
            low = min(0.0, float(y.min()))
            self.total_plot.setYRange(low, max(float(y.max()), 1.0 / scale), padding=0.08)
            top = float(s.hour_minor.max()) / scale
            self.hour_plot.setYRange(0.0, max(top, 1.0 / scale), padding=0.08)
        self.repaint_count += 1

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange):
            self._apply_colours()

    def _apply_colours(self) -> None:
        palette = self.palette()
        dark = is_dark(palette)
        fg = palette.color(QPalette.ColorRole.Text)
        muted = QColor(fg)
        muted.setAlphaF(0.65)
        self.glw.setBackground(palette.color(QPalette.ColorRole.Base))
        line = QColor("#3FD1A1" if dark else "#009E73")
        fill = QColor(line)
        fill.setAlphaF(0.18)
        self.total_curve.setPen(pg.mkPen(line, width=2))
        self.total_curve.setBrush(pg.mkBrush(fill))
        bar = QColor("#F5C04A" if dark else "#E69F00")
        self.bars.setOpts(pen=pg.mkPen(bar), brush=pg.mkBrush(bar))
        for plot in (self.total_plot, self.hour_plot):
            for name in ("left", "bottom"):
                plot.getAxis(name).setPen(pg.mkPen(muted))
                plot.getAxis(name).setTextPen(pg.mkPen(muted))
            plot.titleLabel.setAttr("color", fg.name())
            plot.titleLabel.setText(plot.titleLabel.text)

    def stop(self) -> None:
        """Nothing runs on a timer here; kept for the root's ordered teardown."""
        self._active = False

"""Live pyqtgraph charts: heat/power, temperatures and cumulative heat, over a chosen range.

Imported lazily (after the dashboard's first paint), because pyqtgraph costs a third of a
second to import. Performance rules, from GWE and pyqtgraph's own advice: float64 x arrays,
``setClipToView``, peak downsampling, ``skipFiniteCheck`` (the buffers hold finite values
only: a missing reading is left out, not stored as NaN), no OpenGL, bounded buffers, and
repaints coalesced on a timer of their own that stops while the window is hidden.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from heatshare.domain import series as S  # noqa: N812 (S.HEAT_POWER reads like a constant)
from heatshare.gui.bridge import HistoryResult
from heatshare.gui.decimate import PeakDecimator
from heatshare.gui.memory import release_free_memory
from heatshare.gui.ringbuffer import SeriesBuffer
from heatshare.protocol.local_api import AgentStatus, HistoryResponse

log = logging.getLogger(__name__)

# The agent picks the resolution from the range; these are the ranges the app offers.
RANGES: tuple[tuple[str, int], ...] = (
    ("5 min", 300),
    ("1 h", 3600),
    ("24 h", 86_400),
    ("7 d", 7 * 86_400),
    ("30 d", 30 * 86_400),
)
DEFAULT_RANGE_S = 3600
# The shortest step between two samples that is drawn as a gap: the sampler's own limit for
# integrating across an interval (domain.heat's max_gap_s) is 5 s.
GAP_MIN_S = 5.0
REPAINT_MS = 500  # coalesces the 1 Hz appends and any burst of them into one repaint
LIVE_HEADROOM = 3_600  # points of room for live appends beyond what the history filled
MAX_POINTS = 200_000  # a hard bound per series, whatever the agent sends
REFRESH_MIN_S = 60.0  # long ranges (rollups) are reloaded at most this often

# Colours that read on light and dark backgrounds (Okabe–Ito, colour-blind safe), per role.
_LIGHT = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#444444")
_DARK = ("#FF8A4C", "#5AB4F0", "#3FD1A1", "#E49CCB", "#F5C04A", "#8FD3FF", "#C49A8A", "#DDDDDD")

HistoryRequester = Callable[[Sequence[str], float, float], int]

# The heating's series: the room's temperature and the thermostat's target, recorded by the
# agent each second (None while unknown: left out, a gap).
ROOM_TEMP = S.ROOM_TEMP
SETPOINT = S.SETPOINT
ROOM_TITLE = "Room and target"


@dataclass(frozen=True, slots=True)
class Line:
    """One curve: which series, in which plot, under which name."""

    series: str
    plot: Literal["power", "temp", "room", "energy"]
    label: str


def lines_for(gpu_indices: Sequence[int]) -> list[Line]:
    """The curves shown for a machine with these GPUs."""
    lines = [Line(S.HEAT_POWER, "power", "Heat output"), Line(S.CPU_POWER, "power", "CPU")]
    lines += [Line(S.gpu_series(i, "power_w"), "power", f"GPU {i}") for i in gpu_indices]
    lines.append(Line(S.CPU_TEMP, "temp", "CPU"))
    lines += [Line(S.gpu_series(i, "temp_c"), "temp", f"GPU {i}") for i in gpu_indices]
    lines += [Line(ROOM_TEMP, "room", "Room"), Line(SETPOINT, "room", "Target")]
    lines.append(Line(S.HEAT_ENERGY, "energy", "Heat delivered"))
    return lines


def status_values(status: AgentStatus) -> dict[str, float | None]:
    """The live value of each charted series in one status (energy is handled apart)."""
    values: dict[str, float | None] = {
        S.HEAT_POWER: status.heat_w,
        S.CPU_POWER: status.host.cpu_power_w,
        S.CPU_TEMP: status.host.cpu_temp_c,
    }
    for gpu in status.gpus:
        values[S.gpu_series(gpu.index, "power_w")] = gpu.power_w
        values[S.gpu_series(gpu.index, "temp_c")] = gpu.temp_c
    if status.heating is not None:
        values[ROOM_TEMP] = status.heating.room_c
        values[SETPOINT] = status.heating.setpoint_c
    return values


def finite_points(t: Sequence[float], v: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """Float64 arrays without the missing points (None → NaN → dropped)."""
    ta = np.asarray(t, dtype=np.float64)
    va = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
    keep = np.isfinite(va) & np.isfinite(ta)
    return ta[keep], va[keep]


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


class ChartPanel(QWidget):
    """A range selector over three linked plots, fed by history and by live status.

    Args:
        request_history: sends a history query; returns its request id. The answer comes
            back through ``load_history`` (answers to older requests are dropped).

    Signals:
        range_changed(int): the range in seconds, after the user picked one.
        repainted(): after each coalesced repaint (tests and the bench wait on it).
    """

    range_changed = Signal(int)
    repainted = Signal()

    def __init__(
        self,
        request_history: HistoryRequester,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("charts")
        pg.setConfigOptions(useOpenGL=False, antialias=False, exitCleanup=False)
        self._request_history = request_history
        self._clock = clock
        self.range_s = DEFAULT_RANGE_S
        self.resolution_s: int | None = None
        self.temperature_unit: Literal["C", "F"] = "C"
        self._pending: int | None = None
        self._loaded_at = 0.0
        self._gpus: tuple[int, ...] | None = None
        self._lines: list[Line] = []
        self.buffers: dict[str, SeriesBuffer] = {}
        self._decimators: dict[str, PeakDecimator] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._band: pg.FillBetweenItem | None = None
        self._band_curves: tuple[pg.PlotDataItem, pg.PlotDataItem] | None = None
        self._energy_offset: float | None = None  # the series' value at the range start
        self._last_today_kwh: float | None = None
        self._dirty = False
        self._active = False
        self._follow = True  # the x range tracks "now" until the user pans or zooms
        self._refit_y: dict[str, bool] = {}  # plots whose y range is fitted afresh
        self._temp_shown = True
        self._room_shown = True
        self.energy_unit = "kWh"
        self.repaint_count = 0

        self._timer = QTimer(self)
        self._timer.setObjectName("chart-repaint")
        self._timer.setInterval(REPAINT_MS)
        self._timer.timeout.connect(self._repaint_if_dirty)
        self._refresh = QTimer(self)
        self._refresh.setObjectName("chart-history-refresh")
        self._refresh.setSingleShot(True)
        self._refresh.timeout.connect(self.reload)

        self._build()

    # -- layout --------------------------------------------------------------------------

    def _build(self) -> None:  # noqa: PLR0915 (one linear layout recipe reads best whole)
        header = QHBoxLayout()
        header.setSpacing(0)
        title = QLabel("History")
        title.setObjectName("sectionTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() + 3)
        font.setWeight(font.Weight.DemiBold)
        title.setFont(font)
        header.addWidget(title)
        header.addSpacing(16)
        self.note = QLabel("")
        self.note.setObjectName("chartNote")
        header.addWidget(self.note, 1)
        self.range_group = QButtonGroup(self)
        self.range_group.setExclusive(True)
        self.range_buttons: dict[int, QToolButton] = {}
        for text, seconds in RANGES:
            button = QToolButton()
            button.setText(text)
            button.setCheckable(True)
            button.setObjectName("rangeButton")
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setMinimumWidth(56)
            button.setChecked(seconds == self.range_s)
            self.range_group.addButton(button, seconds)
            self.range_buttons[seconds] = button
            header.addWidget(button)
        self.range_group.idClicked.connect(self.set_range)

        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.glw.ci.setSpacing(14)
        self.plots: dict[str, pg.PlotItem] = {}
        specs = (
            ("power", "Power and heat", "W"),
            ("temp", "Temperatures", "°C"),
            # Its own plot: a room's tenths of a degree are lost on an axis that holds a GPU.
            ("room", ROOM_TITLE, "°C"),
            ("energy", "Heat delivered in this range", "Wh"),
        )
        for row, (key, label, unit) in enumerate(specs):
            plot = self.glw.addPlot(row=row, col=0, axisItems={"bottom": pg.DateAxisItem()})
            plot.setTitle(label, justify="left")
            plot.setLabel("left", units=unit)
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.getAxis("left").setWidth(64)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.setMouseEnabled(x=True, y=False)
            plot.disableAutoRange(axis="y")  # fitted by _fit_y
            plot.addLegend(offset=(8, 4), colCount=5, labelTextSize="9pt")
            # Text is dear to draw and these change only with the theme or the units: Qt
            # keeps each as a pixmap and repaints of the curves beneath reuse it.
            for item in (plot.legend, plot.titleLabel, plot.getAxis("left")):
                item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            if key != "energy":
                # One time axis, under the last plot: the x axes are linked, and three
                # identical date axes cost space and a third of each repaint.
                plot.hideAxis("bottom")
            if key != "power":
                plot.setXLink(self.plots["power"])
            plot.getViewBox().sigRangeChangedManually.connect(self._user_moved)
            self.plots[key] = plot

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addLayout(header)
        layout.addWidget(self.glw, 1)
        self._apply_colours()

    def _apply_colours(self) -> None:
        palette = self.palette()
        dark = is_dark(palette)
        bg = palette.color(QPalette.ColorRole.Base)
        fg = palette.color(QPalette.ColorRole.Text)
        muted = QColor(fg)
        muted.setAlphaF(0.65)
        self.glw.setBackground(bg)
        for plot in self.plots.values():
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                axis.setPen(pg.mkPen(muted))
                axis.setTextPen(pg.mkPen(muted))
            plot.titleLabel.setAttr("color", fg.name())
            plot.titleLabel.setText(plot.titleLabel.text)
            if plot.legend is not None:
                plot.legend.setLabelTextColor(fg)
                for _sample, label in plot.legend.items:  # existing labels keep their colour
                    label.setAttr("color", fg.name())
                    label.setText(label.text)
                veil = QColor(bg)
                veil.setAlpha(210)  # the legend stays readable over a curve
                plot.legend.setBrush(pg.mkBrush(veil))
        colours = _DARK if dark else _LIGHT
        for i, line in enumerate(self._lines):
            curve = self.curves.get(line.series)
            if curve is not None:
                # One-pixel cosmetic pens: wide pens go through Qt's stroker and cost ten
                # times as much to draw (measured by bench/chart_update.py).
                curve.setPen(pg.mkPen(colours[i % len(colours)], width=1))
        room = self.curves.get(ROOM_TEMP)
        if room is not None:
            # The room in the text colour and its target dashed: a thermostat's pair.
            room.setPen(pg.mkPen(fg, width=1))
            room.setZValue(4)
        target = self.curves.get(SETPOINT)
        if target is not None:
            target.setPen(pg.mkPen(fg, width=1, style=Qt.PenStyle.DashLine))
            target.setZValue(3)
        if self._band is not None:
            band = QColor(colours[0])
            band.setAlphaF(0.18)
            self._band.setBrush(pg.mkBrush(band))

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        # Light/dark follows the system: a palette change recolours the plots.
        if event.type() in (
            QEvent.Type.PaletteChange,
            QEvent.Type.ApplicationPaletteChange,
            QEvent.Type.StyleChange,
        ):
            self._apply_colours()
        super().changeEvent(event)

    # -- which curves --------------------------------------------------------------------

    def set_gpus(self, gpu_indices: Sequence[int]) -> None:
        """(Re)build the curves for this machine's GPUs; loads history when they changed."""
        gpus = tuple(gpu_indices)
        if gpus == self._gpus:
            return
        self._gpus = gpus
        for plot in self.plots.values():
            plot.clear()
            if plot.legend is not None:
                plot.legend.clear()
        self._band = None
        self._band_curves = None
        self._lines = lines_for(gpus)
        self.curves = {}
        self.buffers = {}
        for line in self._lines:
            curve = self.plots[line.plot].plot(name=line.label, skipFiniteCheck=True, connect="all")
            if line.plot == "energy":
                curve.setFillLevel(0)
            if line.series == S.HEAT_POWER:
                curve.setZValue(5)  # the total on top: where it equals a part, it shows
            self.curves[line.series] = curve
            self.buffers[line.series] = SeriesBuffer(self._capacity())
        self._apply_colours()
        self.reload()

    def _capacity(self, loaded: int = 0) -> int:
        live = self.range_s if self.resolution_s in (None, 1) else 0
        return max(16, min(MAX_POINTS, max(loaded, min(live, MAX_POINTS)) + LIVE_HEADROOM))

    @property
    def live(self) -> bool:
        """Short ranges served at 1 s resolution grow from each status poll."""
        return self.resolution_s == 1

    # -- range and history ---------------------------------------------------------------

    def set_range(self, seconds: int) -> None:
        self.range_s = seconds
        button = self.range_buttons.get(seconds)
        if button is not None and not button.isChecked():
            button.setChecked(True)
        self._follow = True
        self._refit_y = dict.fromkeys(self.plots, True)
        self.range_changed.emit(seconds)
        self.reload()

    def _user_moved(self, *_: object) -> None:
        # A pan or zoom means "let me look here": stop tracking now until a range is picked.
        self._follow = False

    def reload(self) -> None:
        """Ask the agent for the current range's history."""
        self._refresh.stop()
        if not self._lines:
            return
        end = self._clock()
        names = [line.series for line in self._lines]
        self.note.setText("Loading…")
        self._pending = self._request_history(names, end - self.range_s, end)

    def load_history(self, result: HistoryResult) -> None:
        if result.request_id != self._pending:
            return  # an answer for a range the user already left
        self._pending = None
        self._loaded_at = self._clock()
        resp = result.response
        self.resolution_s = resp.resolution_s
        self.note.setText(_resolution_note(resp))
        by_name = {s.name: s for s in resp.series}
        for line in self._lines:
            data = by_name.get(line.series)
            buf = self.buffers[line.series]
            if data is None:
                buf.replace([], [])
                continue
            t, v = finite_points(data.t, data.mean)
            if line.series == S.HEAT_ENERGY:
                self._energy_offset = float(v[0]) if len(v) else None
                if len(v):
                    v = v - v[0]
            buf.replace(t, v, capacity=self._capacity(len(t)))
        self._decimators.clear()
        if sum(len(s.t) for s in resp.series) > 200_000:
            # Once this answer is dropped (after this slot returns), its millions of floats
            # are garbage: hand the heap back to the OS then.
            QTimer.singleShot(0, release_free_memory)
        self._show_temperatures(
            any(len(self.buffers[ln.series]) for ln in self._lines if ln.plot == "temp")
        )
        self._show_room(
            any(len(self.buffers[ln.series]) for ln in self._lines if ln.plot == "room")
        )
        self._update_band(resp)
        self._last_today_kwh = None
        if not self.live:
            wait = max(REFRESH_MIN_S, resp.resolution_s / 2)
            self._refresh.start(round(wait * 1000))
        self._dirty = True
        self._repaint_if_dirty()

    def history_failed(self, request_id: int, message: str) -> None:
        if request_id == self._pending:
            self._pending = None
            self.note.setText(f"History not available: {message}")
            self._refresh.start(round(REFRESH_MIN_S * 1000 / 4))

    def _update_band(self, resp: HistoryResponse) -> None:
        """A min–max band behind the heat curve where the agent sent rollups."""
        heat = next((s for s in resp.series if s.name == S.HEAT_POWER), None)
        plot = self.plots["power"]
        if self._band is not None:
            plot.removeItem(self._band)
            self._band = None
            self._band_curves = None
        if heat is None or heat.min is None or heat.max is None or resp.resolution_s <= 1:
            return
        t = np.asarray(heat.t, dtype=np.float64)
        lo = np.array([np.nan if x is None else x for x in heat.min], dtype=np.float64)
        hi = np.array([np.nan if x is None else x for x in heat.max], dtype=np.float64)
        keep = np.isfinite(lo) & np.isfinite(hi)
        if not keep.any():
            return
        # Broken where the line is (see _repaint_if_dirty): the fill pairs the two edges'
        # pieces, so no band spans time nobody sampled.
        gap_s = max(GAP_MIN_S, 3.0 * resp.resolution_s)
        bt, blo, connect = break_gaps(t[keep], lo[keep], gap_s)
        _, bhi, _ = break_gaps(t[keep], hi[keep], gap_s)
        lo_curve = pg.PlotDataItem(bt, blo, skipFiniteCheck=True, connect=connect)
        hi_curve = pg.PlotDataItem(bt, bhi, skipFiniteCheck=True, connect=connect)
        self._band_curves = (lo_curve, hi_curve)
        self._band = pg.FillBetweenItem(lo_curve, hi_curve)
        self._band.setZValue(-10)
        plot.addItem(self._band)
        self._apply_colours()

    # -- live ----------------------------------------------------------------------------

    def append_status(self, status: AgentStatus) -> None:
        """Add one status's readings to the buffers (drawn at the next coalesced repaint)."""
        self.set_gpus([g.index for g in status.gpus])
        if not self.live or status.sample_time is None:
            return
        t = status.sample_time.timestamp()
        values = status_values(status)
        for name, value in values.items():
            buf = self.buffers.get(name)
            if buf is None or value is None or not math.isfinite(value):
                continue
            if name.endswith("temp_c") and not self._temp_shown:
                self._show_temperatures(True)
            if name in (ROOM_TEMP, SETPOINT) and not self._room_shown:
                self._show_room(True)
            last = buf.last_t()
            if last is not None and t <= last:
                continue  # the same sample again (the agent has not sampled since)
            buf.append(t, value)
            self._dirty = True
        self._append_energy(t, status.heat_today_kwh)

    def _append_energy(self, t: float, today_kwh: float) -> None:
        # The status carries today's total, not the cumulative series: its change between
        # two samples is the heat delivered in between (at midnight it starts from zero).
        buf = self.buffers.get(S.HEAT_ENERGY)
        previous = self._last_today_kwh
        self._last_today_kwh = today_kwh
        if buf is None or previous is None:
            return
        last_t = buf.last_t()
        if last_t is not None and t <= last_t:
            return
        delta = today_kwh - previous if today_kwh >= previous else today_kwh
        base = buf.last_v() or 0.0
        buf.append(t, base + delta)
        self._dirty = True

    # -- painting ------------------------------------------------------------------------

    def set_active(self, active: bool) -> None:
        """Repaint only while the window shows; hidden or minimised, no work at all."""
        if active == self._active:
            return
        self._active = active
        if active:
            self._timer.start()
            self._repaint_if_dirty()
            if (
                not self.live
                and self._loaded_at
                and self._clock() - self._loaded_at > (REFRESH_MIN_S)
            ):
                self.reload()
        else:
            self._timer.stop()

    def set_temperature_unit(self, unit: Literal["C", "F"]) -> None:
        if unit != self.temperature_unit:
            self.temperature_unit = unit
            for key in ("temp", "room"):
                self.plots[key].setLabel("left", units="°F" if unit == "F" else "°C")
            self._dirty = True
            self._repaint_if_dirty()

    def _repaint_if_dirty(self) -> None:
        if not self._dirty or not self._active:
            return
        self._dirty = False
        now = self._clock()
        horizon = now - self.range_s
        if self._follow:
            # A history younger than the range (a new install) fills the width rather than
            # sitting in a sliver at the right edge; the full range shows once it is there.
            firsts = [float(b.t[0]) for b in self.buffers.values() if len(b)]
            if firsts and now - min(firsts) >= 30.0:
                horizon = max(horizon, min(firsts))
            # Move the window first, and only by a pixel or more: each move makes every
            # curve recompute its clipped, downsampled data, so a sub-pixel move would
            # double the work of an update for nothing visible.
            pixel_s = self.range_s / max(1.0, self.plots["power"].getViewBox().width())
            (x0, x1), _ = self.plots["power"].getViewBox().viewRange()
            if abs(x1 - now) >= pixel_s or abs(x0 - horizon) >= pixel_s:
                self.plots["power"].setXRange(horizon, now, padding=0.0)
        width = max(1.0, self.plots["power"].getViewBox().width())
        # Following "now" over many points: decimate here, incrementally (see decimate.py).
        # Panned or zoomed: pyqtgraph clips and downsamples the full data itself.
        bucket_s = float(max(1, round(self.range_s / width)))
        shown: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        # A longer step between two points is time nobody sampled (the agent stopped, the
        # machine slept): a gap in the line, not a straight line that invents readings.
        gap_s = max(GAP_MIN_S, 3.0 * (self.resolution_s or 1))
        for line in self._lines:
            buf = self.buffers[line.series]
            if self.live:
                buf.trim_before(horizon)
            x: np.ndarray = buf.t
            y: np.ndarray = buf.v
            if self.live and self._follow and len(buf) > 4 * width:
                dec = self._decimators.get(line.series)
                if dec is None or dec.bucket_s != bucket_s:
                    dec = self._decimators[line.series] = PeakDecimator(bucket_s)
                x, y = dec.update(buf.t, buf.v)
            if line.plot in ("temp", "room") and self.temperature_unit == "F" and len(y):
                y = y * 9.0 / 5.0 + 32.0  # as domain.units.c_to_f, elementwise
            elif line.plot == "energy":
                # Heat delivered since the oldest point shown, so trimming keeps it right.
                y = self._energy_scaled(y - buf.v[0] if len(buf) else y)
            x, y, connect = break_gaps(x, y, max(gap_s, 2.5 * bucket_s))
            curve = self.curves[line.series]
            if curve.opts["connect"] == connect:
                curve.setData(x, y)
            else:  # a style change to pyqtgraph, with its cost: only when it changes
                curve.setData(x, y, connect=connect)
            shown.setdefault(line.plot, []).append((x, y))
        self._fit_y(shown)
        self.repaint_count += 1
        self.repainted.emit()

    def _fit_y(self, shown: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> None:
        """Each plot's y range from the data in view, moved only when the data leaves it.

        pyqtgraph's own auto-range asks every curve for its bounds and redraws the axis on
        every update; fitting here over the arrays just set (decimated), with hysteresis,
        keeps a 1 s update cheap and the axis still while the data stays inside it.
        """
        for curve in self._band_curves or ():
            bx, by = curve.getData()
            if bx is not None and by is not None:
                shown.setdefault("power", []).append((bx, by))
        (x0, x1), _ = self.plots["power"].getViewBox().viewRange()
        for key, arrays in shown.items():
            lo, hi = math.inf, -math.inf
            for x, y in arrays:
                i0, i1 = np.searchsorted(x, (x0, x1))
                seg = y[max(0, i0 - 1) : i1 + 1]  # the points just outside draw lines in
                seg = seg[np.isfinite(seg)]
                if seg.size:
                    lo, hi = min(lo, float(seg.min())), max(hi, float(seg.max()))
            if lo > hi:
                continue
            box = self.plots[key].getViewBox()
            y0, y1 = box.viewRange()[1]
            need = max(hi - lo, abs(hi) * 0.02, 1e-9)
            loose = (y1 - y0) > 4 * need
            if self._refit_y.pop(key, False) or lo < y0 or hi > y1 or loose:
                pad = need * 0.1
                box.setYRange(lo - pad, hi + pad, padding=0.0)

    def _energy_scaled(self, kwh: np.ndarray) -> np.ndarray:
        # Less than a kWh reads better in Wh than as 8e-05 kWh on the axis.
        unit = "Wh" if len(kwh) == 0 or float(kwh.max(initial=0.0)) < 1.0 else "kWh"
        if unit != self.energy_unit:
            self.energy_unit = unit
            self.plots["energy"].setLabel("left", units=unit)
        return kwh * 1000.0 if unit == "Wh" else kwh

    def _show_temperatures(self, shown: bool) -> None:
        """Fold the temperature plot away on a machine without a readable sensor."""
        if shown == self._temp_shown:
            return
        self._temp_shown = shown
        plot = self.plots["temp"]
        if shown:
            plot.setTitle("Temperatures", justify="left")
            plot.setMaximumHeight(16_777_215)
            plot.showAxis("left")
        else:
            plot.setTitle("Temperatures: no sensor readable on this machine", justify="left")
            plot.setMaximumHeight(40)
            plot.hideAxis("left")
        self._apply_colours()

    def _show_room(self, shown: bool) -> None:
        """Fold the room's plot away where the agent has no room reading and no target."""
        if shown == self._room_shown:
            return
        self._room_shown = shown
        plot = self.plots["room"]
        if shown:
            plot.setTitle(ROOM_TITLE, justify="left")
            plot.setMaximumHeight(16_777_215)
            plot.showAxis("left")
        else:
            plot.setTitle(f"{ROOM_TITLE}: no room thermometer", justify="left")
            plot.setMaximumHeight(40)
            plot.hideAxis("left")
        self._apply_colours()

    def stop(self) -> None:
        """Stop both timers (teardown)."""
        self._timer.stop()
        self._refresh.stop()


def break_gaps(x: np.ndarray, y: np.ndarray, gap_s: float) -> tuple[np.ndarray, np.ndarray, str]:
    """``x, y`` with a NaN point in each step longer than ``gap_s``, and how to connect them.

    Without gaps the arrays come back as they are, drawn with ``connect="all"`` (the fast
    path); with gaps the NaNs break the line (``connect="finite"``).
    """
    if len(x) < 2:
        return x, y, "all"
    after = np.flatnonzero(np.diff(x) > gap_s) + 1
    if not after.size:
        return x, y, "all"
    mid = (x[after - 1] + x[after]) / 2.0
    return np.insert(x, after, mid), np.insert(y, after, np.nan), "finite"


def _resolution_note(resp: HistoryResponse) -> str:
    if resp.resolution_s <= 1:
        return "every second, live"
    if resp.resolution_s < 3600:
        return f"{resp.resolution_s // 60}-minute averages; band shows min–max"
    return f"{resp.resolution_s // 3600}-hour averages; band shows min–max"

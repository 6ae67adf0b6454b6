"""The weekly schedule editor: a grid of the week's comfort periods, drawn and edited by mouse.

Each row is a day, each column half an hour. Drag across the grid to paint comfort periods (or,
starting on a comfort cell, to clear them); a click toggles one half hour. The rest of the week
is eco. The week is kept minute by minute, so periods that do not fall on half hours (set from
the command line, say) survive an edit of another day unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFocusEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from heatshare.protocol.heating import ComfortPeriod, default_periods

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DAY_SHORT = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_MIN = 1440
CELL_MIN = 30  # what one click or drag step edits
CELLS = DAY_MIN // CELL_MIN
MAX_PERIODS = 200  # HeatingSettings.periods holds at most this many

COMFORT = QColor("#E69F00")  # warm: the hours the room is kept at comfort
LABEL_W = 44
HEADER_H = 18
ROW_H = 26

Week = list[bytearray]  # 7 days × 1440 minutes; 1 = comfort


def empty_week() -> Week:
    return [bytearray(DAY_MIN) for _ in range(7)]


def week_from_periods(periods: Sequence[ComfortPeriod]) -> Week:
    week = empty_week()
    for p in periods:
        week[p.day][p.start_min : p.end_min] = b"\x01" * (p.end_min - p.start_min)
    return week


def day_runs(day: bytearray) -> list[tuple[int, int]]:
    """The day's comfort periods as (start, end) minutes, in order."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for minute in range(DAY_MIN + 1):
        on = minute < DAY_MIN and day[minute] == 1
        if on and start is None:
            start = minute
        elif not on and start is not None:
            runs.append((start, minute))
            start = None
    return runs


def periods_from_week(week: Week) -> list[ComfortPeriod]:
    """Merged, ordered periods: adjacent or overlapping ones become one."""
    return [
        ComfortPeriod(day=d, start_min=s, end_min=e) for d in range(7) for s, e in day_runs(week[d])
    ]


def normalised(periods: Sequence[ComfortPeriod]) -> list[ComfortPeriod]:
    return periods_from_week(week_from_periods(periods))


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def day_summary(day: bytearray) -> str:
    runs = day_runs(day)
    if not runs:
        return "eco all day"
    return ", ".join(f"{hhmm(s)}–{hhmm(e)}" for s, e in runs)


class WeekGrid(QWidget):
    """The week as a grid; emits ``changed`` after each edit.

    Signals:
        changed(): the week was edited by the user.
    """

    changed = Signal()

    def __init__(
        self, parent: QWidget | None = None, *, now: Callable[[], datetime] = datetime.now
    ) -> None:
        super().__init__(parent)
        self.setObjectName("weekGrid")
        self.week: Week = week_from_periods(default_periods())
        self._now = now
        self._anchor: tuple[int, int] | None = None  # (day, cell) where a drag began
        self._cursor: tuple[int, int] | None = None
        self._paint_on = True  # a drag paints comfort (True) or clears it
        self.cursor_cell = (0, 0)  # the keyboard's place: arrows move it, Space toggles
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Weekly schedule")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(LABEL_W + CELLS * 9)
        self.setToolTip(
            "Drag to mark comfort periods; start on a comfort period to clear. "
            "A click changes one half hour; so do the arrow keys and Space."
        )

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(LABEL_W + CELLS * 16, HEADER_H + 7 * ROW_H + 1)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(LABEL_W + CELLS * 9, HEADER_H + 7 * ROW_H + 1)

    # -- the model -------------------------------------------------------------------------

    def set_periods(self, periods: Sequence[ComfortPeriod]) -> None:
        self.week = week_from_periods(periods)
        self.update()

    def periods(self) -> list[ComfortPeriod]:
        return periods_from_week(self.week)

    def set_cells(self, days: range, cells: range, on: bool) -> None:
        """Set comfort (``on``) or eco for these days' half-hour cells."""
        value = b"\x01" if on else b"\x00"
        start, end = cells.start * CELL_MIN, cells.stop * CELL_MIN
        for d in days:
            self.week[d][start:end] = value * (end - start)
        self.update()

    # -- geometry --------------------------------------------------------------------------

    def _cell_w(self) -> float:
        return (self.width() - LABEL_W - 1) / CELLS

    def cell_at(self, pos: QPointF) -> tuple[int, int] | None:
        """(day, cell) under a point, clamped to the grid; None above or left of it."""
        x, y = pos.x() - LABEL_W, pos.y() - HEADER_H
        if x < 0 or y < 0:
            return None
        day = min(6, int(y // ROW_H))
        cell = min(CELLS - 1, max(0, int(x // self._cell_w())))
        return day, cell

    def cell_rect(self, day: int, cell: int) -> QRectF:
        w = self._cell_w()
        return QRectF(LABEL_W + cell * w, HEADER_H + day * ROW_H, w, ROW_H)

    def _selection(self) -> tuple[range, range] | None:
        if self._anchor is None or self._cursor is None:
            return None
        (d0, c0), (d1, c1) = self._anchor, self._cursor
        return range(min(d0, d1), max(d0, d1) + 1), range(min(c0, c1), max(c0, c1) + 1)

    # -- mouse -----------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() is not Qt.MouseButton.LeftButton:
            return
        cell = self.cell_at(event.position())
        if cell is None:
            return
        day, c = cell
        self.cursor_cell = cell
        start = c * CELL_MIN
        # Starting on a cell that is all comfort clears; anywhere else paints.
        self._paint_on = not all(self.week[day][start : start + CELL_MIN])
        self._anchor = self._cursor = cell
        self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        cell = self.cell_at(event.position())
        if cell is not None:
            day, c = cell
            self.setToolTip(
                f"{DAY_NAMES[day]} {hhmm(c * CELL_MIN)}–{hhmm((c + 1) * CELL_MIN)}: "
                f"{'comfort' if self.week[day][c * CELL_MIN] else 'eco'}"
            )
        if self._anchor is not None and cell is not None and cell != self._cursor:
            self._cursor = cell
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        selection = self._selection()
        self._anchor = self._cursor = None
        if selection is None or event.button() is not Qt.MouseButton.LeftButton:
            return
        self.set_cells(*selection, self._paint_on)
        self.changed.emit()

    # -- keyboard --------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        day, cell = self.cursor_cell
        moves = {
            Qt.Key.Key_Left: (0, -1),
            Qt.Key.Key_Right: (0, 1),
            Qt.Key.Key_Up: (-1, 0),
            Qt.Key.Key_Down: (1, 0),
        }
        key = Qt.Key(event.key())
        if key in moves:
            dd, dc = moves[key]
            self.cursor_cell = (min(6, max(0, day + dd)), min(CELLS - 1, max(0, cell + dc)))
            self.update()
        elif key in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            start = cell * CELL_MIN
            on = not all(self.week[day][start : start + CELL_MIN])
            self.set_cells(range(day, day + 1), range(cell, cell + 1), on)
            self.changed.emit()
        else:
            super().keyPressEvent(event)

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt override)
        super().focusInEvent(event)
        self.update()

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt override)
        super().focusOutEvent(event)
        self.update()

    # -- painting --------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()

    def _paint(self, p: QPainter) -> None:
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.Text)
        muted = QColor(text)
        muted.setAlphaF(0.55)
        faint = QColor(text)
        faint.setAlphaF(0.12)
        w = self._cell_w()
        grid_w = w * CELLS
        p.setPen(muted)
        font = p.font()
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        p.setFont(font)
        for hour in range(0, 25, 3):
            x = LABEL_W + hour * 2 * w
            # The last label ends at the grid's edge rather than past it.
            box = (
                QRectF(x - 40, 0, 40, HEADER_H - 2)
                if hour == 24
                else QRectF(x - 20, 0, 40, HEADER_H - 2)
            )
            align = Qt.AlignmentFlag.AlignRight if hour == 24 else Qt.AlignmentFlag.AlignHCenter
            p.drawText(box, align | Qt.AlignmentFlag.AlignBottom, f"{hour:02d}")
        eco = pal.color(QPalette.ColorRole.Base)
        sel = self._selection()
        for day in range(7):
            y = HEADER_H + day * ROW_H
            p.setPen(text)
            p.drawText(
                QRectF(0, y, LABEL_W - 6, ROW_H),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                DAY_SHORT[day],
            )
            p.fillRect(QRectF(LABEL_W, y, grid_w, ROW_H), eco)
            for s, e in day_runs(self.week[day]):
                p.fillRect(
                    QRectF(LABEL_W + s / CELL_MIN * w, y + 2, (e - s) / CELL_MIN * w, ROW_H - 4),
                    COMFORT,
                )
            if sel is not None and day in sel[0]:
                preview = QColor(COMFORT if self._paint_on else eco)
                preview.setAlphaF(0.75)
                r0 = self.cell_rect(day, sel[1].start)
                r1 = self.cell_rect(day, sel[1].stop - 1)
                area = QRectF(r0.topLeft(), r1.bottomRight()).adjusted(0, 2, 0, -2)
                p.fillRect(area, preview)
                p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 1))
                p.drawRect(area)
        # Hour lines over the cells, a stronger one every six hours.
        for hour in range(25):
            x = LABEL_W + hour * 2 * w
            p.setPen(QPen(muted if hour % 6 == 0 else faint, 1))
            p.drawLine(QPointF(x, HEADER_H), QPointF(x, HEADER_H + 7 * ROW_H))
        for day in range(8):
            y = HEADER_H + day * ROW_H
            p.setPen(QPen(faint, 1))
            p.drawLine(QPointF(LABEL_W, y), QPointF(LABEL_W + grid_w, y))
        if self.hasFocus():
            p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 2))
            p.drawRect(self.cell_rect(*self.cursor_cell).adjusted(1, 1, -1, -1))
        # Now: a line on today's row, so the grid reads against the clock.
        now = self._now()
        x = LABEL_W + (now.hour * 60 + now.minute) / CELL_MIN * w
        y = HEADER_H + now.weekday() * ROW_H
        p.setPen(QPen(QColor("#C62828"), 2))
        p.drawLine(QPointF(x, y - 2), QPointF(x, y + ROW_H + 2))


class ScheduleEditor(QWidget):
    """The grid, its day-by-day summary, and quick copies between days.

    Signals:
        changed(): the user edited the schedule.
    """

    changed = Signal()

    def __init__(
        self, parent: QWidget | None = None, *, now: Callable[[], datetime] = datetime.now
    ) -> None:
        super().__init__(parent)
        self.setObjectName("scheduleEditor")
        self.grid = WeekGrid(now=now)
        self.grid.changed.connect(self._edited)
        legend_box = QLabel()
        legend_box.setFixedSize(14, 14)
        legend_box.setStyleSheet(f"background: {COMFORT.name()}; border-radius: 3px;")
        legend = QLabel("comfort temperature; the rest of the week is eco")
        legend.setObjectName("hint")
        self.copy_weekdays = QPushButton("Copy Monday to Tuesday–Friday")
        self.copy_weekdays.clicked.connect(lambda: self.copy_day(0, range(1, 5)))
        self.copy_weekend = QPushButton("Copy Saturday to Sunday")
        self.copy_weekend.clicked.connect(lambda: self.copy_day(5, range(6, 7)))
        self.reset_button = QPushButton("Usual times")
        self.reset_button.setToolTip("Mornings 06:30–08:30 and evenings 17:00–22:30, every day")
        self.reset_button.clicked.connect(self.reset)
        key = QHBoxLayout()
        key.setSpacing(8)
        key.addWidget(legend_box)
        key.addWidget(legend)
        key.addStretch(1)
        tools = QHBoxLayout()
        tools.setSpacing(8)
        tools.addWidget(self.copy_weekdays)
        tools.addWidget(self.copy_weekend)
        tools.addWidget(self.reset_button)
        tools.addStretch(1)
        self.summary = QLabel()
        self.summary.setObjectName("hint")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.grid)
        layout.addLayout(key)
        layout.addWidget(self.summary)
        layout.addLayout(tools)
        self._summarise()

    def set_periods(self, periods: Sequence[ComfortPeriod]) -> None:
        self.grid.set_periods(periods)
        self._summarise()

    def periods(self) -> list[ComfortPeriod]:
        return self.grid.periods()

    def copy_day(self, source: int, targets: range) -> None:
        for d in targets:
            self.grid.week[d][:] = self.grid.week[source]
        self.grid.update()
        self._edited()

    def reset(self) -> None:
        self.grid.set_periods(default_periods())
        self._edited()

    def problem(self) -> str | None:
        """A sentence when the schedule cannot be saved as it is."""
        n = len(self.periods())
        if n > MAX_PERIODS:
            return (
                f"The schedule has {n} separate comfort periods; at most {MAX_PERIODS} can be "
                "saved. Join some of them."
            )
        return None

    def _edited(self) -> None:
        self._summarise()
        self.changed.emit()

    def _summarise(self) -> None:
        days = self.grid.week
        lines: list[str] = []
        groups: list[tuple[list[int], str]] = []
        for d in range(7):
            text = day_summary(days[d])
            if groups and groups[-1][1] == text and groups[-1][0][-1] == d - 1:
                groups[-1][0].append(d)
            else:
                groups.append(([d], text))
        for members, text in groups:
            name = (
                DAY_SHORT[members[0]]
                if len(members) == 1
                else f"{DAY_SHORT[members[0]]}–{DAY_SHORT[members[-1]]}"
            )
            lines.append(f"{name}: {text}")
        self.summary.setText("Comfort: " + " · ".join(lines))

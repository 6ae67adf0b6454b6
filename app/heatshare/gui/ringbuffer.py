"""A bounded, append-only series buffer whose data is always one contiguous float64 view.

pyqtgraph wants contiguous arrays; a classic circular buffer would need a concatenate on
every repaint. Here the arrays hold the capacity plus a quarter: appends write at the end,
and when the end is reached the live part is copied into fresh arrays (amortised O(1) per
append: one copy of ``capacity`` points per ``capacity / 4`` appends).
Fresh arrays, not an in-place shift, so views already handed to a curve stay consistent.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def _room(capacity: int) -> int:
    return capacity + max(16, capacity // 4)


class SeriesBuffer:
    """Timestamps and values of one series, at most ``capacity`` points."""

    __slots__ = ("_end", "_start", "_t", "_v", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._t: F64 = np.empty(_room(capacity), dtype=np.float64)
        self._v: F64 = np.empty(_room(capacity), dtype=np.float64)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def t(self) -> F64:
        return self._t[self._start : self._end]

    @property
    def v(self) -> F64:
        return self._v[self._start : self._end]

    def last_t(self) -> float | None:
        return float(self._t[self._end - 1]) if self._end > self._start else None

    def last_v(self) -> float | None:
        return float(self._v[self._end - 1]) if self._end > self._start else None

    def replace(self, t: npt.ArrayLike, v: npt.ArrayLike, *, capacity: int | None = None) -> None:
        """Drop everything and hold the last ``capacity`` points of ``t``/``v``."""
        ta = np.asarray(t, dtype=np.float64)
        va = np.asarray(v, dtype=np.float64)
        if ta.shape != va.shape:
            raise ValueError("t and v differ in length")
        if capacity is not None and capacity != self.capacity:
            if capacity < 1:
                raise ValueError("capacity must be at least 1")
            self.capacity = capacity
        ta = ta[-self.capacity :]
        va = va[-self.capacity :]
        self._t = np.empty(_room(self.capacity), dtype=np.float64)
        self._v = np.empty(_room(self.capacity), dtype=np.float64)
        n = len(ta)
        self._t[:n] = ta
        self._v[:n] = va
        self._start, self._end = 0, n

    def append(self, t: float, v: float) -> None:
        if self._end == len(self._t):
            n = len(self)
            fresh_t = np.empty_like(self._t)
            fresh_v = np.empty_like(self._v)
            fresh_t[:n] = self._t[self._start : self._end]
            fresh_v[:n] = self._v[self._start : self._end]
            self._t, self._v, self._start, self._end = fresh_t, fresh_v, 0, n
        self._t[self._end] = t
        self._v[self._end] = v
        self._end += 1
        if self._end - self._start > self.capacity:
            self._start += 1

    def trim_before(self, t0: float) -> None:
        """Forget points older than ``t0`` (timestamps are ascending)."""
        cut = int(np.searchsorted(self.t, t0, side="left"))
        self._start += cut

    def clear(self) -> None:
        self._start = self._end = 0

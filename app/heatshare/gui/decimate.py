"""Incremental min/max decimation of a growing 1 s series, for long live charts.

A 24 h chart at 1 s holds 86,400 points per series, but its plot is about a thousand pixels
wide. Handing pyqtgraph all the points on every append makes it clip, downsample and bound
the whole array again (eight times per update); here the series is cut into buckets of
fixed width in time (aligned to the epoch, so a bucket never moves), each complete bucket is
reduced to its min and max once, and only the last, partial bucket is recomputed on an
append. The curve then gets about two points per pixel, the same picture pyqtgraph's
``peak`` downsampling draws.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


class PeakDecimator:
    """Min/max per time bucket of ``bucket_s`` seconds, kept up to date incrementally."""

    __slots__ = ("_done_hi", "_done_lo", "_done_t", "_done_until", "bucket_s")

    def __init__(self, bucket_s: float) -> None:
        if bucket_s <= 0:
            raise ValueError("bucket_s must be positive")
        self.bucket_s = float(bucket_s)
        self._done_t: F64 = np.empty(0)  # bucket start times of the complete buckets
        self._done_lo: F64 = np.empty(0)
        self._done_hi: F64 = np.empty(0)
        self._done_until = -np.inf  # the end of the last complete bucket

    def reset(self) -> None:
        self._done_t = np.empty(0)
        self._done_lo = np.empty(0)
        self._done_hi = np.empty(0)
        self._done_until = -np.inf

    def update(self, t: F64, v: F64) -> tuple[F64, F64]:
        """Decimated (x, y) of ascending ``t``/``v``: two points per bucket, max then min."""
        if len(t) == 0:
            self.reset()
            return np.empty(0), np.empty(0)
        b = self.bucket_s
        # Forget buckets that fell off the front of the buffer.
        first_bucket = np.floor(t[0] / b) * b
        if len(self._done_t) and self._done_t[0] < first_bucket:
            keep = int(np.searchsorted(self._done_t, first_bucket, side="left"))
            self._done_t = self._done_t[keep:]
            self._done_lo = self._done_lo[keep:]
            self._done_hi = self._done_hi[keep:]
        # The front bucket lost its oldest points to trimming: reduce what is left of it.
        if len(self._done_t) and self._done_t[0] == first_bucket and t[0] > first_bucket:
            end = int(np.searchsorted(t, first_bucket + b, side="left"))
            if end > 0:
                self._done_hi = self._done_hi.copy()
                self._done_lo = self._done_lo.copy()
                self._done_hi[0] = float(v[:end].max())
                self._done_lo[0] = float(v[:end].min())
        # Reduce the buckets completed since the last call.
        last_complete_end = np.floor(t[-1] / b) * b  # the current bucket starts here
        if last_complete_end > self._done_until:
            lo_i = int(np.searchsorted(t, max(self._done_until, first_bucket), side="left"))
            hi_i = int(np.searchsorted(t, last_complete_end, side="left"))
            if hi_i > lo_i:
                seg_t = t[lo_i:hi_i]
                seg_v = v[lo_i:hi_i]
                keys = np.floor(seg_t / b)
                starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
                self._done_t = np.concatenate((self._done_t, keys[starts] * b))
                self._done_hi = np.concatenate((self._done_hi, np.maximum.reduceat(seg_v, starts)))
                self._done_lo = np.concatenate((self._done_lo, np.minimum.reduceat(seg_v, starts)))
            self._done_until = last_complete_end
        # The partial bucket at the end, recomputed each time (a few dozen points at most).
        tail_i = int(np.searchsorted(t, self._done_until, side="left"))
        tail_v = v[tail_i:]
        n_done = len(self._done_t)
        n = n_done + (1 if len(tail_v) else 0)
        x = np.empty(2 * n)
        y = np.empty(2 * n)
        mid = b / 2
        x[0 : 2 * n_done : 2] = self._done_t + mid
        x[1 : 2 * n_done : 2] = self._done_t + mid
        y[0 : 2 * n_done : 2] = self._done_hi
        y[1 : 2 * n_done : 2] = self._done_lo
        if len(tail_v):
            x[-2] = x[-1] = t[-1]
            y[-2] = float(tail_v.max())
            y[-1] = float(tail_v.min())
        return x, y

"""Incremental min/max decimation equals a brute-force reduction, append after append."""

from __future__ import annotations

import numpy as np
import pytest

from heatshare.gui.decimate import PeakDecimator
from heatshare.gui.ringbuffer import SeriesBuffer


def brute(t: np.ndarray, v: np.ndarray, b: float) -> tuple[list[float], list[float]]:
    keys = np.floor(t / b)
    hi, lo = [], []
    last_key = keys[-1]
    for k in np.unique(keys):
        sel = v[keys == k]
        hi.append(float(sel.max()))
        lo.append(float(sel.min()))
    assert last_key == np.unique(keys)[-1]
    return hi, lo


def test_matches_brute_force_while_growing_and_trimming() -> None:
    rng = np.random.default_rng(3)
    buf = SeriesBuffer(500)
    dec = PeakDecimator(7.0)
    t0 = 1_767_614_400.0
    for i in range(1200):
        buf.append(t0 + i, float(rng.normal()))
        if i % 97 == 0:
            buf.trim_before(t0 + i - 300)
        x, y = dec.update(buf.t, buf.v)
        hi, lo = brute(buf.t, buf.v, 7.0)
        assert y[0::2].tolist() == pytest.approx(hi)
        assert y[1::2].tolist() == pytest.approx(lo)
        assert np.all(np.diff(x) >= 0)
        assert x[-1] == buf.t[-1]  # the line reaches the newest sample


def test_empty_and_bad_bucket() -> None:
    dec = PeakDecimator(5.0)
    x, y = dec.update(np.empty(0), np.empty(0))
    assert len(x) == len(y) == 0
    with pytest.raises(ValueError, match="positive"):
        PeakDecimator(0)

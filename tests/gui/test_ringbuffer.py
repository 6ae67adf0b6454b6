"""The charts' bounded buffer: contiguous float64 views, a hard bound, trimming by time."""

from __future__ import annotations

import numpy as np
import pytest

from heatshare.gui.ringbuffer import SeriesBuffer


def test_append_beyond_capacity_keeps_the_newest() -> None:
    buf = SeriesBuffer(4)
    for i in range(11):
        buf.append(float(i), float(i * 10))
    assert len(buf) == 4
    assert buf.t.tolist() == [7.0, 8.0, 9.0, 10.0]
    assert buf.v.tolist() == [70.0, 80.0, 90.0, 100.0]
    assert buf.t.dtype == np.float64
    assert buf.t.flags.c_contiguous


def test_views_already_handed_out_stay_consistent_across_compaction() -> None:
    buf = SeriesBuffer(3)
    for i in range(6):
        buf.append(float(i), float(i))
    before = buf.t  # a view a curve may still hold
    snapshot = before.copy()
    for i in range(6, 12):
        buf.append(float(i), float(i))
    assert before.tolist() == snapshot.tolist()
    assert buf.t.tolist() == [9.0, 10.0, 11.0]


def test_replace_trims_to_capacity_and_can_grow_it() -> None:
    buf = SeriesBuffer(2)
    buf.replace(np.arange(5.0), np.arange(5.0) * 2)
    assert buf.t.tolist() == [3.0, 4.0]
    buf.replace(np.arange(5.0), np.arange(5.0), capacity=10)
    assert len(buf) == 5
    assert buf.last_t() == 4.0
    assert buf.last_v() == 4.0


def test_trim_before_drops_old_points() -> None:
    buf = SeriesBuffer(10)
    buf.replace([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    buf.trim_before(2.5)
    assert buf.t.tolist() == [3.0, 4.0]
    buf.clear()
    assert len(buf) == 0
    assert buf.last_t() is None


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="differ"):
        SeriesBuffer(3).replace([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="capacity"):
        SeriesBuffer(0)

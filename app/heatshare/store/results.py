"""What a history query returns: frozen records, ready for the local API."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SeriesResult:
    """One series at the query's resolution.

    ``t`` holds UTC seconds since the epoch: the sample time for raw samples, the start of
    the bucket for rollups. Raw samples carry no ``min``/``max`` (both ``None``).
    """

    name: str
    t: list[float]
    mean: list[float | None]
    min: list[float | None] | None
    max: list[float | None] | None


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Several series over ``[start, end]`` at one resolution (1, 60 or 3600 s)."""

    start: float
    end: float
    resolution_s: int
    series: list[SeriesResult]

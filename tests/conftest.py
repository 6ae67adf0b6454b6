"""Shared test discipline: an unexpected log record at WARNING or above fails the test.

A test that expects one says so: ``expect_log(r"pattern")``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator

import pytest


class _LogFail(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.expected: list[re.Pattern[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def unexpected(self) -> list[logging.LogRecord]:
        return [r for r in self.records if not any(p.search(r.getMessage()) for p in self.expected)]


@pytest.fixture(autouse=True)
def _logfail() -> Iterator[_LogFail]:
    handler = _LogFail()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
    bad = handler.unexpected()
    if bad:
        lines = "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}" for r in bad)
        pytest.fail(f"unexpected log records:\n{lines}", pytrace=False)


@pytest.fixture
def expect_log(_logfail: _LogFail) -> Callable[[str], None]:
    """Declare a WARNING-or-above record this test expects (a regex on its message)."""

    def expect(pattern: str) -> None:
        _logfail.expected.append(re.compile(pattern))

    return expect

"""TaskRunner: work on named worker threads, results and errors back on the UI thread."""

from __future__ import annotations

import threading

import pytest
from pytestqt.qtbot import QtBot

from heatshare.gui.tasks import TaskRunner


def test_result_arrives_on_the_ui_thread_from_a_named_worker(qtbot: QtBot) -> None:
    runner = TaskRunner()
    seen: dict[str, str] = {}

    def work() -> int:
        seen["worker"] = threading.current_thread().name
        return 42

    def done(value: int) -> None:
        seen["callback"] = threading.current_thread().name
        seen["value"] = str(value)

    runner.run("agent-poll", work, done)
    qtbot.waitUntil(lambda: "value" in seen, timeout=3000)
    runner.shutdown()
    assert seen["worker"].startswith("agent-poll")
    assert seen["callback"] == threading.main_thread().name
    assert seen["value"] == "42"


def test_errors_come_back_as_exceptions(qtbot: QtBot) -> None:
    runner = TaskRunner()
    errors: list[BaseException] = []

    def boom() -> None:
        raise ValueError("no")

    runner.run("agent-query", boom, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=3000)
    runner.shutdown()
    assert isinstance(errors[0], ValueError)


def test_a_pool_of_one_serialises(qtbot: QtBot) -> None:
    runner = TaskRunner()
    order: list[int] = []
    lock = threading.Lock()
    active = [0]
    overlap = [False]

    def work(i: int) -> int:
        with lock:
            active[0] += 1
            overlap[0] |= active[0] > 1
        threading.Event().wait(0.01)
        with lock:
            active[0] -= 1
        return i

    for i in range(5):
        runner.run("agent-query", lambda i=i: work(i), order.append)
    qtbot.waitUntil(lambda: len(order) == 5, timeout=3000)
    runner.shutdown()
    assert order == [0, 1, 2, 3, 4]
    assert not overlap[0]


def test_after_shutdown_nothing_runs_or_arrives(qtbot: QtBot) -> None:
    runner = TaskRunner()
    runner.shutdown()
    assert runner.run("agent-poll", lambda: 1, pytest.fail) is None


def test_immediate_mode_calls_back_before_returning() -> None:
    runner = TaskRunner(immediate=True)
    got: list[int] = []
    runner.run("any", lambda: 7, got.append)
    assert got == [7]

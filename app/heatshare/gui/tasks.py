"""Work off the UI thread: run a function on a named pool, get the result back on the UI thread.

In the manner of Picard's ``run_task``: each pool is a single worker thread, so the calls
sent to one pool run one after another (no locks needed for what they share), and a slow
call on one pool (a 30-day history query) never delays another (the 1 s status poll).

The pools are plain Python threads (``concurrent.futures``), not ``QThread``: nothing Qt
lives on them, so there is no Qt object to destroy on a foreign thread at exit. A result
crosses back to the UI thread through a queued signal on a ``QObject`` that lives there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

log = logging.getLogger(__name__)

ResultCallback = Callable[[Any], None]
ErrorCallback = Callable[[BaseException], None]


@dataclass(frozen=True, slots=True)
class _Delivery:
    on_result: ResultCallback | None
    on_error: ErrorCallback | None
    result: Any
    error: BaseException | None


class TaskRunner(QObject):
    """Runs callables on named single-thread pools and calls back on the UI thread.

    Args:
        immediate: run each task at once on the calling thread and call back before
            ``run`` returns (the deterministic mode tests use, like Picard's FakeThreadPool).

    Signals:
        _delivered(_Delivery): internal; crosses from a worker thread to the UI thread.
    """

    _delivered = Signal(object)

    def __init__(self, parent: QObject | None = None, *, immediate: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("task-runner")
        self._immediate = immediate
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._closed = False
        self._delivered.connect(self._deliver)

    def run(
        self,
        pool: str,
        fn: Callable[[], Any],
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> Future[Any] | None:
        """Run ``fn()`` on ``pool``; ``on_result(value)`` or ``on_error(exc)`` on the UI thread.

        Returns the future, or None once the runner is shut down (the task is dropped).
        """
        if self._closed:
            return None
        if self._immediate:
            self._deliver(self._call(fn, on_result, on_error))
            done: Future[Any] = Future()
            done.set_result(None)
            return done
        executor = self._pools.get(pool)
        if executor is None:
            # The thread name shows in logs and debuggers, so a stuck call says where it is.
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=pool)
            self._pools[pool] = executor
        return executor.submit(self._work, fn, on_result, on_error)

    def shutdown(self, *, wait: bool = True) -> None:
        """Drop queued tasks, wait for the running ones, and refuse new ones."""
        self._closed = True
        for executor in self._pools.values():
            executor.shutdown(wait=wait, cancel_futures=True)
        self._pools.clear()

    @staticmethod
    def _call(
        fn: Callable[[], Any], on_result: ResultCallback | None, on_error: ErrorCallback | None
    ) -> _Delivery:
        try:
            return _Delivery(on_result, on_error, fn(), None)
        except Exception as exc:  # handed to the caller's on_error on the UI thread
            return _Delivery(on_result, on_error, None, exc)

    def _work(
        self,
        fn: Callable[[], Any],
        on_result: ResultCallback | None,
        on_error: ErrorCallback | None,
    ) -> None:
        delivery = self._call(fn, on_result, on_error)
        if not self._closed:
            self._delivered.emit(delivery)

    @Slot(object)
    def _deliver(self, delivery: _Delivery) -> None:
        if self._closed and not self._immediate:
            return
        if delivery.error is None:
            if delivery.on_result is not None:
                delivery.on_result(delivery.result)
        elif delivery.on_error is not None:
            delivery.on_error(delivery.error)
        else:
            log.error("Background task failed", exc_info=delivery.error)

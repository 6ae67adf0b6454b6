"""A small HTTP/1.1 load generator on asyncio streams: keep-alive connections, open/closed loops.

Why not requests or httpx: on a 2-core machine the generator shares the CPU with the server it
measures. This client costs a few tens of microseconds a request (one write of the request
line, headers and body; one read of the status line and headers; the body by its
``Content-Length``), so the figures are the server's and not the client's.

Latency is taken with ``time.perf_counter_ns``. In an open loop it runs from the moment a
request was *due*, not from when it was sent: a generator or a server that falls behind shows
up in the figures instead of hiding in them (no coordinated omission). The scheduling lag (due
to actually started) is reported too, so a generator that is itself too slow is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The head of a response may not be larger than this (the stream's line limit).
MAX_HEAD_BYTES = 64 * 1024


class HttpError(Exception):
    """The server broke the protocol, closed mid-answer, or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def header_lines(headers: dict[str, str]) -> bytes:
    """Pre-encoded header lines, built once per client and reused for every request."""
    return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time.

    A connection that was idle may have been closed by the server (keep-alive timeout); when
    the request then meets a closed socket before a single byte of answer, it is sent again
    once on a fresh connection. A server closes an idle connection only before reading a
    request, so nothing is done twice.
    """

    def __init__(self, host: str, port: int, timeout_s: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.opened = 0
        self.requests = 0
        self._uses = 0  # requests answered on the current socket
        self._host_line = f"Host: {host}:{port}\r\n".encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            self.host, self.port, limit=MAX_HEAD_BYTES
        )
        self.opened += 1
        self._uses = 0

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: bytes = b""
    ) -> Response:
        """Send one request and read its whole answer.

        Args:
            method: ``GET``, ``POST``, ``PUT``…
            path: the request target, already percent-encoded.
            body: sent with its ``Content-Length`` (also 0, so a POST is well formed).
            headers: extra header lines, each ending in CRLF (see :func:`header_lines`).
        """
        data = b"".join(
            (
                f"{method} {path} HTTP/1.1\r\n".encode("latin-1"),
                self._host_line,
                b"Content-Length: %d\r\n" % len(body),
                headers,
                b"\r\n",
                body,
            )
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                try:
                    if not self.is_open:
                        await self._open()
                    return await self._exchange(data, method)
                except _StaleConnectionError:
                    await self.close()
                    await self._open()
                    return await self._exchange(data, method)
        except TimeoutError as exc:
            await self.close()
            raise HttpError(f"no answer to {method} {path} within {self.timeout_s:g} s") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            await self.close()
            raise HttpError(f"{method} {path}: {type(e).__name__}: {e}") from e
        except _StaleConnectionError as exc:
            await self.close()
            raise HttpError(f"{method} {path}: the server closed the connection") from exc
        except BaseException:
            await self.close()  # cancelled mid-answer: the stream is out of step
            raise

    async def _exchange(self, data: bytes, method: str) -> Response:
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        used_before = self._uses > 0
        try:
            writer.write(data)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError) as exc:
            if not used_before:
                raise
            raise _StaleConnectionError from exc
        except asyncio.IncompleteReadError as exc:
            if exc.partial or not used_before:
                raise
            raise _StaleConnectionError from exc
        self.requests += 1
        self._uses += 1
        lines = head[:-4].split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        code, _, _reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise HttpError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(code)
        hdrs: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise HttpError(f"a header line without a colon: {line[:80]!r}")
            hdrs[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")

        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in hdrs.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        elif "content-length" in hdrs:
            body = await reader.readexactly(int(hdrs["content-length"]))
        else:  # delimited by the end of the connection
            body = await reader.read()
            hdrs["connection"] = "close"

        keep = hdrs.get("connection", "").lower() != "close" and version != b"HTTP/1.0"
        if not keep:
            await self.close()
        return Response(status, hdrs, body)

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise HttpError("a chunk did not end in CRLF")


class _StaleConnectionError(Exception):
    """A reused connection was closed by the server before it answered."""


class Pool:
    """Up to ``size`` keep-alive connections shared by many tasks; new ones go round the targets.

    Several targets are several app servers of one network (they share the database), as
    behind a load balancer.
    """

    def __init__(self, targets: Sequence[tuple[str, int]], size: int, timeout_s: float = 30.0):
        if not targets:
            raise ValueError("a pool needs at least one server")
        self.targets = list(targets)
        self.size = size
        self.timeout_s = timeout_s
        self._idle: list[Connection] = []
        self._all: list[Connection] = []
        self._slots = asyncio.Semaphore(size)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: bytes = b""
    ) -> Response:
        async with self._slots:
            if self._idle:
                conn = self._idle.pop()
            else:
                host, port = self.targets[len(self._all) % len(self.targets)]
                conn = Connection(host, port, self.timeout_s)
                self._all.append(conn)
            try:
                return await conn.request(method, path, body, headers)
            finally:
                # A failed request closed its connection; the next use opens it again.
                self._idle.append(conn)

    @property
    def connections_opened(self) -> int:
        return sum(c.opened for c in self._all)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._idle.clear()
        self._all.clear()


# --- loops -----------------------------------------------------------------------------------

#: One request of a loop: given its sequence number, send it and say whether it went well
#: (``None``) or what went wrong (a short label counted in ``LoopResult.errors``).
Send = Callable[[int], Awaitable[str | None]]


@dataclass(slots=True)
class LoopResult:
    """What one timed loop did; latencies in nanoseconds, sorted."""

    planned: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ns: list[int] = field(default_factory=list)
    lags_ns: list[int] = field(default_factory=list)  # open loop: due → started
    wall_s: float = 0.0
    unfinished: int = 0  # still unanswered when the drain time ran out
    target_rate: float = 0.0  # open loop: starts a second

    @property
    def done(self) -> int:
        return self.ok + sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        return percentile(self.latencies_ns, q) / 1e6

    def lag_ms(self, q: float) -> float:
        return percentile(self.lags_ns, q) / 1e6


def percentile(sorted_values: Sequence[int], q: float) -> float:
    """The ``q``-quantile (0..1) by the nearest-rank rule; NaN when there is nothing."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q * len(sorted_values) - 1e-9)))
    return float(sorted_values[rank - 1])


async def open_loop(
    rate: float, duration_s: float, send: Send, drain_s: float = 10.0
) -> LoopResult:
    """Start requests at a fixed ``rate`` for ``duration_s``, whatever the answers take.

    Each request's latency counts from when it was due. After the last start, answers are
    awaited for at most ``drain_s``; what is still open then is cancelled, counted as
    ``unfinished``, and its latency is the time it had waited (a lower bound).
    """
    result = LoopResult(planned=int(rate * duration_s), target_rate=rate)
    period_ns = 1e9 / rate
    pending: set[asyncio.Task[None]] = set()
    perf = time.perf_counter_ns

    async def one(seq: int, due_ns: int) -> None:
        result.lags_ns.append(perf() - due_ns)
        try:
            err = await send(seq)
        except HttpError as exc:
            err = _label(exc)
        except asyncio.CancelledError:
            # Unanswered when the drain ran out: it counts with what it waited so far (a lower
            # bound), so a saturated server's percentiles are not computed over the lucky ones.
            result.latencies_ns.append(perf() - due_ns)
            raise
        if err is None:
            result.latencies_ns.append(perf() - due_ns)
            result.ok += 1
        else:
            result.errors[err] += 1

    t0 = perf()
    k = 0
    while k < result.planned:
        due_now = min(result.planned, int((perf() - t0) / period_ns) + 1)
        while k < due_now:
            task = asyncio.create_task(one(k, t0 + int(k * period_ns)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            k += 1
        next_ns = t0 + int(k * period_ns)
        await asyncio.sleep(max(0.0, (next_ns - perf()) / 1e9))
    if pending:
        _done, still = await asyncio.wait(set(pending), timeout=drain_s)
        result.unfinished = len(still)
        for task in still:
            task.cancel()
        await asyncio.gather(*still, return_exceptions=True)
    result.wall_s = (perf() - t0) / 1e9
    result.latencies_ns.sort()
    result.lags_ns.sort()
    return result


async def closed_loop(
    concurrency: int,
    duration_s: float,
    send: Send,
    stop: Callable[[], bool] = lambda: False,
) -> LoopResult:
    """``concurrency`` workers, each sending its next request as soon as the last is answered.

    Runs for ``duration_s`` or until ``stop()`` says so; ``wall_s`` ends at the last answer.
    """
    result = LoopResult()
    perf = time.perf_counter_ns
    t0 = perf()
    end_ns = t0 + int(duration_s * 1e9)
    counter = iter(range(1 << 62))
    last = t0

    async def worker() -> None:
        nonlocal last
        while perf() < end_ns and not stop():
            seq = next(counter)
            start = perf()
            try:
                err = await send(seq)
            except HttpError as exc:
                err = _label(exc)
            now = perf()
            last = max(last, now)
            if err is None:
                result.latencies_ns.append(now - start)
                result.ok += 1
            else:
                result.errors[err] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.planned = result.done
    result.wall_s = (last - t0) / 1e9
    result.latencies_ns.sort()
    return result


def _label(exc: HttpError) -> str:
    text = str(exc)
    return "timeout" if "no answer" in text else "connection error"

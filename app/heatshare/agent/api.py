"""The agent's local API: JSON over HTTP on loopback, behind a bearer token (``/v1``).

The standard library's threading HTTP server keeps the agent small (no ASGI stack for a
handful of routes called once a second). Every answer is a ``protocol.local_api`` model; every
error is an :class:`~heatshare.protocol.local_api.ErrorResponse` whose ``error`` is a sentence
the app shows as it is. A traceback never reaches a client: it goes to the agent's log.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import ipaddress
import json
import logging
import math
import mimetypes
import os
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ValidationError

from heatshare.__about__ import __version__
from heatshare.agent.service import AgentService, NetworkPort, RequestError, validation_lines
from heatshare.protocol import PROTOCOL_VERSION
from heatshare.protocol.discovery import (
    DEFAULT_PORT,
    Paths,
    RuntimeInfo,
    read_runtime,
    write_runtime,
)
from heatshare.protocol.energy import (
    CostsResponse,
    EnergySettings,
    PlugProbeRequest,
    PlugProbeResponse,
    PriceListImport,
    PriceListInfo,
    StatementResponse,
)
from heatshare.protocol.heating import (
    BoostRequest,
    HeatingSettings,
    HeatingStatus,
    ModeRequest,
    RoomProbeRequest,
    RoomProbeResponse,
    SetpointRequest,
)
from heatshare.protocol.local_api import (
    AgentStatus,
    EarningsResponse,
    EnrolLocal,
    ErrorResponse,
    HistoryResponse,
    JobsResponse,
    NetworkStatus,
    Ok,
    PauseRequest,
    SeriesList,
    Settings,
    SettingsPatch,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024
# A price list of a year of half hours as JSON is about 3 MB; the model takes 5 million chars.
MAX_PRICE_LIST_BODY_BYTES = 12 * 1024 * 1024
MAX_POINTS_LIMIT = 20_000
OPENAPI_PATH = "/v1/openapi.json"
# An idle keep-alive connection gives its thread back after this long.
IDLE_TIMEOUT_S = 30.0
# The query parameters each route takes (by its template); the others take none.
_PARAMS = {
    "/v1/history": frozenset({"series", "start", "end", "max_points"}),
    "/v1/jobs": frozenset({"limit"}),
    "/v1/jobs/{attempt_id}/files": frozenset({"name"}),
    "/v1/energy/statement": frozenset({"month", "format"}),
}
DEFAULT_JOBS_LIMIT = 50
MAX_JOBS_LIMIT = 1000
# A job's log is served from its end: what a person reads is how it finished.
MAX_LOG_BYTES = 256 * 1024
_INTERNAL_ERROR = (
    "The agent could not answer this request because of an internal error; "
    "the details are in its log."
)


def _bad(message: str, status: int = 400, detail: Sequence[str] = ()) -> RequestError:
    return RequestError(message, status=status, detail=detail)


def _error_body(message: str, detail: Sequence[str] = ()) -> bytes:
    return ErrorResponse(error=message, detail=list(detail)).model_dump_json().encode()


@dataclass(frozen=True)
class _Raw:
    """An answer that is not JSON: a job's log or one of its files."""

    body: bytes
    content_type: str


def _log_tail(text: str) -> bytes:
    """The last :data:`MAX_LOG_BYTES` of a log, cut at a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_LOG_BYTES:
        return data
    tail = data[-MAX_LOG_BYTES:]
    # Skip the continuation bytes of a character the cut split.
    start = 0
    while start < len(tail) and tail[start] & 0xC0 == 0x80:
        start += 1
    return tail[start:]


def _content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in ("application/json", "application/xml"):
        return f"{guessed}; charset=utf-8"
    return guessed


_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def enrol_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a network's address, as a sentence; None when it can be.

    The engine would only find out by failing to connect, and say the network cannot be
    reached: a malformed address is the householder's typing, and says so.
    """
    bad = f"The network address {url!r} is not a valid web address"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return f"{bad}: its port is not a number from 1 to 65535."
    if parts.scheme not in ("http", "https"):
        return f"{bad}: it must start with https:// (or http:// on a home network)."
    if parts.username is not None or parts.password is not None:
        return f"{bad}: it must not carry a user name or password."
    if any(c.isspace() for c in url):
        return f"{bad}: it contains spaces."
    host = parts.hostname or ""
    if not _valid_host(host):
        return f"{bad}: {host!r} is not a host name." if host else f"{bad}: it names no host."
    return None


def _valid_host(host: str) -> bool:
    if ":" in host:  # an IPv6 literal, given in brackets
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


def _network_error_status(exc: Exception) -> int | None:
    """The HTTP status of the job engine's refusal, or None for any other exception."""
    from heatshare.agent.work import NetworkError

    if isinstance(exc, NetworkError):
        status = int(exc.status)
        return status if 400 <= status <= 599 else 502
    return None


class _Server(ThreadingHTTPServer):
    """The HTTP server, carrying what handlers need; one named daemon thread per connection."""

    daemon_threads = True
    # On Windows SO_REUSEADDR lets a second socket steal a port in use; elsewhere it only
    # allows rebinding past TIME_WAIT, which a restarted agent wants.
    allow_reuse_address = os.name != "nt"

    def __init__(
        self,
        address: tuple[str, int],
        service: AgentService,
        token: str,
        on_shutdown: Callable[[], None],
    ) -> None:
        self.service = service
        self.token = token.encode()
        self.on_shutdown = on_shutdown
        self.openapi: bytes | None = None
        self._openapi_lock = threading.Lock()
        self._connections = 0
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._connections += 1
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"api-conn-{self._connections}",
            daemon=True,
        )
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints these to stderr; a client that hung up is not news.
        log.debug("Connection from %s ended with an error", client_address, exc_info=True)

    def openapi_document(self) -> bytes:
        with self._openapi_lock:
            if self.openapi is None:
                self.openapi = json.dumps(build_openapi(), separators=(",", ":")).encode()
            return self.openapi


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: the app polls once a second
    timeout = IDLE_TIMEOUT_S
    # (path) -> (method -> handler)
    ROUTES: ClassVar[dict[str, dict[str, str]]] = {
        "/v1/status": {"GET": "_status"},
        "/v1/series": {"GET": "_series"},
        "/v1/history": {"GET": "_history"},
        "/v1/settings": {"GET": "_settings", "PATCH": "_patch_settings"},
        "/v1/pause": {"POST": "_pause"},
        "/v1/resume": {"POST": "_resume"},
        "/v1/shutdown": {"POST": "_shutdown"},
        "/v1/network": {"GET": "_network"},
        "/v1/network/enrol": {"POST": "_enrol"},
        "/v1/network/demo": {"POST": "_demo"},
        "/v1/network/leave": {"POST": "_leave"},
        "/v1/jobs": {"GET": "_jobs"},
        "/v1/earnings": {"GET": "_earnings"},
        "/v1/heating": {"GET": "_heating"},
        "/v1/heating/settings": {"GET": "_heating_settings", "PUT": "_put_heating_settings"},
        "/v1/heating/mode": {"POST": "_heating_mode"},
        "/v1/heating/boost": {"POST": "_heating_boost"},
        "/v1/heating/setpoint": {"POST": "_heating_setpoint"},
        "/v1/heating/room-probe": {"POST": "_room_probe"},
        "/v1/energy/settings": {"GET": "_energy_settings", "PUT": "_put_energy_settings"},
        "/v1/energy/plug-probe": {"POST": "_plug_probe"},
        "/v1/energy/prices": {"GET": "_price_list", "POST": "_import_prices"},
        "/v1/energy/costs": {"GET": "_costs"},
        "/v1/energy/statement": {"GET": "_statement"},
        OPENAPI_PATH: {"GET": "_openapi"},
    }
    # Routes with a parameter in the path: (template, pattern, method -> handler).
    PATTERN_ROUTES: ClassVar[list[tuple[str, re.Pattern[str], dict[str, str]]]] = [
        ("/v1/jobs/{attempt_id}/log", re.compile(r"^/v1/jobs/([^/]*)/log$"), {"GET": "_job_log"}),
        (
            "/v1/jobs/{attempt_id}/files",
            re.compile(r"^/v1/jobs/([^/]*)/files$"),
            {"GET": "_job_file"},
        ),
    ]

    # -- plumbing --------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK hold the second one back for 40 ms on every keep-alive request.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self) -> str:
        return f"heatshare-agent/{__version__}"  # not the Python version: no need to tell

    def log_message(self, format: str, *args: Any) -> None:
        # No line on stderr per request: the app polls every second.
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    # Methods no route takes still get a JSON 405 (not the stdlib's HTML 501).
    def do_HEAD(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def do_TRACE(self) -> None:
        self._dispatch()

    def do_CONNECT(self) -> None:
        self._dispatch()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own errors (a malformed request line, headers too long) as JSON."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        text = f"The request was not understood: {message or phrase}."
        self.close_connection = True
        self._send(code, _error_body(text), close=True)

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        headers: Sequence[tuple[str, str]] = (),
        close: bool = False,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        if close or self._unread_body():
            self.send_header("Connection", "close")  # also sets close_connection
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _unread_body(self) -> bool:
        if getattr(self, "_body_read", False):
            return False
        length = self.headers.get("Content-Length") if self.headers else None
        chunked = self.headers and "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        return bool(chunked) or (length not in (None, "", "0"))

    def _send_error(self, status: int, message: str, detail: Sequence[str] = (), **kw: Any) -> None:
        self._send(status, _error_body(message, detail), **kw)

    def _authorised(self) -> bool:
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8", "replace"), self.server.token)

    def _dispatch(self) -> None:
        self._body_read = False
        self._after: Callable[[], None] | None = None
        method = self.command
        url = urlsplit(self.path)
        path = url.path
        try:
            if path.startswith("/v1/") and path != OPENAPI_PATH and not self._authorised():
                self._send_error(
                    401,
                    "The agent refused the request: it needs the agent's token "
                    "(Authorization: Bearer …, from the agent-token file).",
                    headers=[("WWW-Authenticate", 'Bearer realm="heatshare-agent"')],
                )
                return
            template, route, self._path_args = self._route(path)
            if route is None:
                self._send_error(
                    404, f"There is no API route {path}; GET {OPENAPI_PATH} lists them."
                )
                return
            handler_name = route.get(method)
            if handler_name is None:
                allowed = ", ".join(sorted(route))
                self._send_error(
                    405,
                    f"The route {path} does not take {method} requests; it takes {allowed}.",
                    headers=[("Allow", allowed)],
                    close=method == "HEAD",
                )
                return
            handler: Callable[[dict[str, list[str]]], BaseModel | bytes | _Raw] = getattr(
                self, handler_name
            )
            query = self._query(url.query, template)
            result = handler(query)
            if isinstance(result, _Raw):
                self._send(
                    200,
                    result.body,
                    content_type=result.content_type,
                    headers=[("X-Content-Type-Options", "nosniff")],
                )
            else:
                body = result if isinstance(result, bytes) else result.model_dump_json().encode()
                self._send(200, body, close=self._after is not None)
        except RequestError as exc:
            self._send_error(exc.status, str(exc), exc.detail)
        except (BrokenPipeError, ConnectionResetError):
            log.debug("The client of %s %s hung up", method, path)
            self.close_connection = True
            return
        except Exception:
            log.exception("Unexpected error answering %s %s", method, path)
            try:
                self._send_error(500, _INTERNAL_ERROR, close=True)
            except OSError:
                self.close_connection = True
        if self._after is not None:
            self._after()

    def _route(self, path: str) -> tuple[str, dict[str, str] | None, tuple[str, ...]]:
        """The route's template, its methods (None: no such route) and its path arguments."""
        route = self.ROUTES.get(path)
        if route is not None:
            return path, route, ()
        for template, pattern, methods in self.PATTERN_ROUTES:
            match = pattern.match(path)
            if match is not None:
                return template, methods, match.groups()
        return path, None, ()

    def _query(self, raw: str, path: str) -> dict[str, list[str]]:
        try:
            query = parse_qs(raw, keep_blank_values=True, max_num_fields=16)
        except ValueError as exc:
            raise _bad(f"The query string was not understood: {exc}.") from exc
        allowed = _PARAMS.get(path, frozenset())
        unknown = sorted(set(query) - allowed)
        if unknown:
            takes = f"it takes {', '.join(sorted(allowed))}" if allowed else "it takes none"
            raise _bad(
                f"The route {path} does not take the query parameter(s) {', '.join(unknown)}; "
                f"{takes}."
            )
        for key, values in query.items():
            if len(values) > 1:
                raise _bad(f"The query parameter {key} was given more than once.")
        return query

    def _body(
        self, model: type[M], what: str, *, required: bool, limit: int = MAX_BODY_BYTES
    ) -> M | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _bad("Send the request body with a Content-Length header.", 411)
        raw_length = self.headers.get("Content-Length", "0").strip() or "0"
        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0:
            raise _bad("The request's Content-Length header is not a byte count.")
        if length > limit:
            raise _bad(
                f"The request body is too large ({length} bytes; the agent takes at most "
                f"{limit // 1024} KiB).",
                413,
            )
        if length == 0:
            self._body_read = True
            if required:
                raise _bad(f"{what.capitalize()} needs a JSON body.")
            return None
        if self.headers.get_content_type() != "application/json":
            raise _bad("Send the request body as JSON (Content-Type: application/json).", 415)
        data = self.rfile.read(length)
        self._body_read = True
        if len(data) < length:
            self.close_connection = True
            raise _bad("The request body ended before its Content-Length.")
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise _bad(f"The body of {what} is not valid JSON.") from exc
            lines = validation_lines(exc)
            raise _bad(
                f"{what.capitalize()} was not accepted: {'; '.join(lines)}.", 422, lines
            ) from exc

    # -- routes ----------------------------------------------------------------------------

    def _status(self, query: dict[str, list[str]]) -> AgentStatus:
        return self.server.service.status()

    def _series(self, query: dict[str, list[str]]) -> SeriesList:
        return self.server.service.series()

    def _history(self, query: dict[str, list[str]]) -> HistoryResponse:
        series_param = query.get("series", [""])[0]
        names = [n.strip() for n in series_param.split(",") if n.strip()]
        if not names:
            raise _bad("Name at least one series, for example ?series=heat.power_w.")
        start = _number(query, "start")
        end = _number(query, "end")
        max_points = _integer(query, "max_points", 1, MAX_POINTS_LIMIT)
        return self.server.service.history(names, start, end, max_points)

    def _settings(self, query: dict[str, list[str]]) -> Settings:
        return self.server.service.settings()

    def _patch_settings(self, query: dict[str, list[str]]) -> Settings:
        patch = self._body(SettingsPatch, "the settings change", required=True)
        assert patch is not None
        return self.server.service.update_settings(patch)

    def _pause(self, query: dict[str, list[str]]) -> AgentStatus:
        request = self._body(PauseRequest, "the pause request", required=False)
        return self.server.service.pause(request.duration_s if request is not None else None)

    def _resume(self, query: dict[str, list[str]]) -> AgentStatus:
        self._body(Ok, "the resume request", required=False)  # no body expected; drain it
        return self.server.service.resume()

    def _shutdown(self, query: dict[str, list[str]]) -> Ok:
        self._body(Ok, "the shutdown request", required=False)
        self._after = self.server.on_shutdown  # after the answer is sent
        return Ok()

    def _openapi(self, query: dict[str, list[str]]) -> bytes:
        return self.server.openapi_document()

    # -- the compute network ---------------------------------------------------------------

    def _net(self, call: Callable[[NetworkPort], T]) -> T:
        """``call`` on the job engine; its refusals become answers with their own status."""
        network = self.server.service.network()
        try:
            return call(network)
        except Exception as exc:
            status = _network_error_status(exc)
            if status is None:
                raise
            raise _bad(str(exc), status) from exc

    def _network(self, query: dict[str, list[str]]) -> NetworkStatus:
        return self._net(lambda n: n.network_status())

    def _enrol(self, query: dict[str, list[str]]) -> NetworkStatus:
        request = self._body(EnrolLocal, "the enrolment request", required=True)
        assert request is not None
        problem = enrol_url_problem(request.url)
        if problem is not None:
            raise _bad(problem, 422)
        return self._net(lambda n: n.enrol(request.url, request.code))

    def _demo(self, query: dict[str, list[str]]) -> NetworkStatus:
        self._body(Ok, "the demo request", required=False)  # no body expected; drain it
        return self._net(lambda n: n.start_demo())

    def _leave(self, query: dict[str, list[str]]) -> NetworkStatus:
        self._body(Ok, "the leave request", required=False)
        return self._net(lambda n: n.leave())

    def _jobs(self, query: dict[str, list[str]]) -> JobsResponse:
        limit = _integer(query, "limit", 1, MAX_JOBS_LIMIT)
        return self._net(lambda n: n.jobs(DEFAULT_JOBS_LIMIT if limit is None else limit))

    def _attempt_id(self) -> int:
        raw = self._path_args[0]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
            raise _bad(f"The job attempt in the path must be a whole number, not {raw!r}.")
        return int(raw)

    def _job_log(self, query: dict[str, list[str]]) -> _Raw:
        attempt_id = self._attempt_id()
        try:
            text = self._net(lambda n: n.job_log(attempt_id))
        except KeyError as exc:
            raise _bad(f"This agent has no job attempt {attempt_id}.", 404) from exc
        return _Raw(_log_tail(text), "text/plain; charset=utf-8")

    def _job_file(self, query: dict[str, list[str]]) -> _Raw:
        attempt_id = self._attempt_id()
        name = query.get("name", [""])[0]
        if not name.strip():
            raise _bad("Name the output file, for example ?name=tile-0.png.")
        try:
            data = self._net(lambda n: n.job_file(attempt_id, name))
        except KeyError as exc:
            raise _bad(
                f"Job attempt {attempt_id} on this agent has no output file {name!r}.", 404
            ) from exc
        except ValueError as exc:
            raise _bad(
                f"The name {name!r} is not an output file name: name a file of the job's "
                "outputs, as the job's list of files gives it."
            ) from exc
        return _Raw(data, _content_type(name))

    def _earnings(self, query: dict[str, list[str]]) -> EarningsResponse:
        return self._net(lambda n: n.earnings())

    # -- heating ---------------------------------------------------------------------------

    def _heating(self, query: dict[str, list[str]]) -> HeatingStatus:
        return self.server.service.heating_status()

    def _heating_settings(self, query: dict[str, list[str]]) -> HeatingSettings:
        return self.server.service.heating_settings()

    def _put_heating_settings(self, query: dict[str, list[str]]) -> HeatingSettings:
        settings = self._body(HeatingSettings, "the heating settings", required=True)
        assert settings is not None
        return self.server.service.put_heating_settings(settings)

    def _heating_mode(self, query: dict[str, list[str]]) -> HeatingStatus:
        request = self._body(ModeRequest, "the mode request", required=True)
        assert request is not None
        return self.server.service.heating_mode(request)

    def _heating_boost(self, query: dict[str, list[str]]) -> HeatingStatus:
        request = self._body(BoostRequest, "the boost request", required=False)
        return self.server.service.heating_boost(request or BoostRequest())

    def _heating_setpoint(self, query: dict[str, list[str]]) -> HeatingStatus:
        request = self._body(SetpointRequest, "the setpoint request", required=True)
        assert request is not None
        return self.server.service.heating_setpoint(request)

    def _room_probe(self, query: dict[str, list[str]]) -> RoomProbeResponse:
        request = self._body(RoomProbeRequest, "the room source to try", required=True)
        assert request is not None
        return self.server.service.room_probe(request)

    # -- energy ----------------------------------------------------------------------------

    def _energy_settings(self, query: dict[str, list[str]]) -> EnergySettings:
        return self.server.service.energy_settings()

    def _put_energy_settings(self, query: dict[str, list[str]]) -> EnergySettings:
        settings = self._body(EnergySettings, "the energy settings", required=True)
        assert settings is not None
        return self.server.service.put_energy_settings(settings)

    def _plug_probe(self, query: dict[str, list[str]]) -> PlugProbeResponse:
        request = self._body(PlugProbeRequest, "the plug to find", required=True)
        assert request is not None
        return self.server.service.plug_probe(request)

    def _price_list(self, query: dict[str, list[str]]) -> PriceListInfo:
        return self.server.service.price_list()

    def _import_prices(self, query: dict[str, list[str]]) -> PriceListInfo:
        request = self._body(
            PriceListImport, "the price list", required=True, limit=MAX_PRICE_LIST_BODY_BYTES
        )
        assert request is not None
        return self.server.service.import_prices(request)

    def _costs(self, query: dict[str, list[str]]) -> CostsResponse:
        return self.server.service.costs()

    def _statement(self, query: dict[str, list[str]]) -> StatementResponse | _Raw:
        month = query.get("month", [""])[0].strip()
        if not month:
            raise _bad("Name the month, for example ?month=2026-11.")
        fmt = query.get("format", ["json"])[0].strip() or "json"
        if fmt not in ("json", "csv"):
            raise _bad(f"The format must be json or csv, not {fmt!r}.")
        if fmt == "csv":
            text = self.server.service.statement_csv(month)
            return _Raw(text.encode("utf-8"), "text/csv; charset=utf-8")
        return self.server.service.statement(month)


def _number(query: dict[str, list[str]], key: str) -> float | None:
    raw = query.get(key, [""])[0].strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _bad(f"The query parameter {key} must be a time in UTC seconds, not {raw!r}.")
    return value


def _integer(query: dict[str, list[str]], key: str, low: int, high: int) -> int | None:
    raw = query.get(key, [""])[0].strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _bad(
            f"The query parameter {key} must be a whole number from {low} to {high}, not {raw!r}."
        )
    return value


class ApiServer:
    """The local API on ``host:port``, served on a thread named ``api``.

    Args:
        service: what the routes read and change.
        token: the bearer token every ``/v1`` route but the OpenAPI document requires.
        host: the address to listen on (loopback by default).
        port: a port, 0 for one the OS picks, or None for :data:`DEFAULT_PORT` with the OS's
            pick as the fallback when that one is taken.
        paths: where to publish the runtime file (``agent.json``); None publishes nothing.
        on_shutdown: called after ``POST /v1/shutdown`` has been answered (the composition
            root stops the agent; the handler thread must not).
    """

    def __init__(
        self,
        service: AgentService,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        on_shutdown: Callable[[], None],
        paths: Paths | None = None,
    ) -> None:
        self._paths = paths
        self._published: RuntimeInfo | None = None
        self._thread: threading.Thread | None = None
        cls = _Server6 if ":" in host else _Server
        if port is None:
            try:
                self._server = cls((host, DEFAULT_PORT), service, token, on_shutdown)
            except OSError as exc:
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise
                log.info("Port %d is taken; listening on a port the OS picks", DEFAULT_PORT)
                self._server = cls((host, 0), service, token, on_shutdown)
        else:
            self._server = cls((host, port), service, token, on_shutdown)

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return self._runtime_info().base_url

    def _wake(self) -> None:
        # serve_forever notices a shutdown only when its select returns: a connection makes it
        # return now rather than at the next poll. The connection itself is never served.
        info = self._runtime_info()
        with contextlib.suppress(OSError), socket.create_connection((info.host, info.port), 1.0):
            pass

    def _runtime_info(self) -> RuntimeInfo:
        # A client cannot connect to the wildcard address; point it at loopback instead.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)  # noqa: S104 (compared, not bound)
        return RuntimeInfo(host=host, port=self.port, pid=os.getpid(), version=__version__)

    def start(self) -> None:
        """Serve on the ``api`` thread, then publish the runtime file."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.5},
            name="api",
            daemon=True,
        )
        self._thread.start()
        log.info("Local API on %s (protocol %d)", self.base_url, PROTOCOL_VERSION)
        if self._paths is not None:
            info = self._runtime_info()
            write_runtime(self._paths, info)
            self._published = info

    def stop(self) -> None:
        """Stop serving and remove the runtime file if it is still ours. Safe to call twice."""
        if self._thread is not None:
            stopper = threading.Thread(target=self._server.shutdown, name="api-stop", daemon=True)
            stopper.start()
            self._wake()
            stopper.join(timeout=2.0)
            self._thread.join(timeout=2.0)
            self._thread = None
        self._server.server_close()
        if self._paths is not None and self._published is not None:
            current = read_runtime(self._paths)
            # Another agent (a second profile user, a restart) may have written it since.
            if current is not None and (current.pid, current.port) == (
                self._published.pid,
                self._published.port,
            ):
                with contextlib.suppress(FileNotFoundError):
                    self._paths.runtime_file.unlink()
            self._published = None


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``/v1``, from the protocol models' JSON schemas."""
    from pydantic.json_schema import models_json_schema

    inputs: list[type[BaseModel]] = [
        SettingsPatch,
        PauseRequest,
        EnrolLocal,
        HeatingSettings,
        ModeRequest,
        BoostRequest,
        SetpointRequest,
        RoomProbeRequest,
        EnergySettings,
        PlugProbeRequest,
        PriceListImport,
    ]
    outputs: list[type[BaseModel]] = [
        AgentStatus,
        SeriesList,
        HistoryResponse,
        Settings,
        Ok,
        ErrorResponse,
        NetworkStatus,
        JobsResponse,
        EarningsResponse,
        HeatingStatus,
        HeatingSettings,
        RoomProbeResponse,
        EnergySettings,
        PlugProbeResponse,
        PriceListInfo,
        CostsResponse,
        StatementResponse,
    ]
    keys: list[tuple[type[BaseModel], Any]] = [(m, "validation") for m in inputs]
    keys += [(m, "serialization") for m in outputs]
    refs, top = models_json_schema(keys, ref_template="#/components/schemas/{model}")

    def out(model: type[BaseModel]) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": refs[(model, "serialization")]}}}

    def body(model: type[BaseModel], required: bool) -> dict[str, Any]:
        return {
            "required": required,
            "content": {"application/json": {"schema": refs[(model, "validation")]}},
        }

    error = {"description": "An error; `error` is a sentence fit to show", **out(ErrorResponse)}

    def op(summary: str, model: type[BaseModel], **extra: Any) -> dict[str, Any]:
        return {
            "summary": summary,
            "responses": {
                "200": {"description": "OK", **out(model)},
                "401": error,
                "4XX": error,
                "500": error,
            },
            **extra,
        }

    def param(
        name: str,
        schema: dict[str, Any],
        description: str,
        required: bool = False,
        where: str = "query",
    ) -> dict[str, Any]:
        return {
            "name": name,
            "in": where,
            "required": required,
            "schema": schema,
            "description": description,
        }

    def raw(summary: str, content: dict[str, Any], parameters: list[dict[str, Any]]) -> Any:
        return {
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK", "content": content},
                "401": error,
                "4XX": error,
                "500": error,
            },
        }

    attempt = param(
        "attempt_id",
        {"type": "integer", "minimum": 0},
        "The job attempt, as GET /v1/jobs lists it",
        required=True,
        where="path",
    )
    binary = {"schema": {"type": "string", "format": "binary"}}

    paths = {
        "/v1/status": {"get": op("The heater now", AgentStatus)},
        "/v1/series": {"get": op("The series recorded", SeriesList)},
        "/v1/history": {
            "get": op(
                "History of some series over a range; the agent picks the resolution",
                HistoryResponse,
                parameters=[
                    param("series", {"type": "string"}, "Comma-separated series names", True),
                    param("start", {"type": "number"}, "UTC seconds; default end - 3600"),
                    param("end", {"type": "number"}, "UTC seconds; default now"),
                    param(
                        "max_points",
                        {"type": "integer", "minimum": 1, "maximum": MAX_POINTS_LIMIT},
                        "At most this many points per series (default 4000)",
                    ),
                ],
            )
        },
        "/v1/settings": {
            "get": op("The settings", Settings),
            "patch": op(
                "Change some settings", Settings, requestBody=body(SettingsPatch, required=True)
            ),
        },
        "/v1/pause": {
            "post": op(
                "Pause heating, for a while or until resumed",
                AgentStatus,
                requestBody=body(PauseRequest, required=False),
            )
        },
        "/v1/resume": {"post": op("Resume heating", AgentStatus)},
        "/v1/shutdown": {"post": op("Stop the agent cleanly", Ok)},
        "/v1/network": {"get": op("Whether this machine is enrolled, and the link", NetworkStatus)},
        "/v1/network/enrol": {
            "post": op(
                "Join a network with a pairing code, checked with the network on the spot",
                NetworkStatus,
                requestBody=body(EnrolLocal, required=True),
            )
        },
        "/v1/network/demo": {
            "post": op("Start the embedded demo network and join it", NetworkStatus)
        },
        "/v1/network/leave": {
            "post": op("Leave the network (running jobs are stopped first)", NetworkStatus)
        },
        "/v1/jobs": {
            "get": op(
                "Jobs in progress, then the most recent ones",
                JobsResponse,
                parameters=[
                    param(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_JOBS_LIMIT},
                        f"At most this many past jobs (default {DEFAULT_JOBS_LIMIT})",
                    )
                ],
            )
        },
        "/v1/jobs/{attempt_id}/log": {
            "get": raw(
                f"The job's output, its last {MAX_LOG_BYTES // 1024} KiB",
                {"text/plain": {"schema": {"type": "string"}}},
                [attempt],
            )
        },
        "/v1/jobs/{attempt_id}/files": {
            "get": raw(
                "One of the job's output files; the content type follows its extension",
                {"application/octet-stream": binary, "image/png": binary},
                [
                    attempt,
                    param(
                        "name",
                        {"type": "string", "minLength": 1},
                        "The file's name, as the job's list of files gives it",
                        required=True,
                    ),
                ],
            )
        },
        "/v1/earnings": {
            "get": op("This machine's earnings (cached while offline)", EarningsResponse)
        },
        "/v1/heating": {"get": op("What the thermostat sees and decides", HeatingStatus)},
        "/v1/heating/settings": {
            "get": op(
                "The heating settings (the Home Assistant token and MQTT password as null)",
                HeatingSettings,
            ),
            "put": op(
                "Replace the heating settings; a null token or password keeps the stored one",
                HeatingSettings,
                requestBody=body(HeatingSettings, required=True),
            ),
        },
        "/v1/heating/mode": {
            "post": op(
                "Heat first, earn first, quiet or off",
                HeatingStatus,
                requestBody=body(ModeRequest, required=True),
            )
        },
        "/v1/heating/boost": {
            "post": op(
                "Full heat for a while (0 minutes ends a boost; default 60)",
                HeatingStatus,
                requestBody=body(BoostRequest, required=False),
            )
        },
        "/v1/heating/setpoint": {
            "post": op(
                "A temporary setpoint, a nudge of the current one, or back to the schedule",
                HeatingStatus,
                requestBody=body(SetpointRequest, required=True),
            )
        },
        "/v1/heating/room-probe": {
            "post": op(
                "Try a room thermometer before saving it (answers within 10 s)",
                RoomProbeResponse,
                requestBody=body(RoomProbeRequest, required=True),
            )
        },
        "/v1/energy/settings": {
            "get": op(
                "The plug, tariff and usual heating (the plug's password as null)", EnergySettings
            ),
            "put": op(
                "Replace the energy settings; a null plug password keeps the stored one",
                EnergySettings,
                requestBody=body(EnergySettings, required=True),
            ),
        },
        "/v1/energy/plug-probe": {
            "post": op(
                "Find a smart plug at an address and read it once (never stored)",
                PlugProbeResponse,
                requestBody=body(PlugProbeRequest, required=True),
            )
        },
        "/v1/energy/prices": {
            "get": op("The dynamic price list held", PriceListInfo),
            "post": op(
                "Import a price list (CSV or JSON); 422 names the row that is wrong",
                PriceListInfo,
                requestBody=body(PriceListImport, required=True),
            ),
        },
        "/v1/energy/costs": {
            "get": op(
                "The cost of heat today, this month and this season, and the plan ahead",
                CostsResponse,
            )
        },
        "/v1/energy/statement": {
            "get": {
                **op(
                    "A month's statement: a line a day and the total (format=csv: its CSV text)",
                    StatementResponse,
                    parameters=[
                        param(
                            "month",
                            {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
                            "The month, YYYY-MM",
                            required=True,
                        ),
                        param(
                            "format",
                            {"type": "string", "enum": ["json", "csv"]},
                            "json (default) or csv",
                        ),
                    ],
                ),
            }
        },
        OPENAPI_PATH: {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 document"}},
            }
        },
    }
    statement_ok = paths["/v1/energy/statement"]["get"]["responses"]["200"]
    statement_ok["content"] = {
        **statement_ok["content"],
        "text/csv": {"schema": {"type": "string"}},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Heatshare agent local API",
            "version": f"{PROTOCOL_VERSION}",
            "description": f"Served by heatshare-agent {__version__}.",
        },
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }

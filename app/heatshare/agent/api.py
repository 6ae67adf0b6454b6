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
import json
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ValidationError

from heatshare.__about__ import __version__
from heatshare.agent.service import AgentService, RequestError, validation_lines
from heatshare.protocol import PROTOCOL_VERSION
from heatshare.protocol.discovery import (
    DEFAULT_PORT,
    Paths,
    RuntimeInfo,
    read_runtime,
    write_runtime,
)
from heatshare.protocol.local_api import (
    AgentStatus,
    ErrorResponse,
    HistoryResponse,
    Ok,
    PauseRequest,
    SeriesList,
    Settings,
    SettingsPatch,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 64 * 1024
MAX_POINTS_LIMIT = 20_000
OPENAPI_PATH = "/v1/openapi.json"
# An idle keep-alive connection gives its thread back after this long.
IDLE_TIMEOUT_S = 30.0
_HISTORY_PARAMS = frozenset({"series", "start", "end", "max_points"})
_INTERNAL_ERROR = (
    "The agent could not answer this request because of an internal error; "
    "the details are in its log."
)


def _bad(message: str, status: int = 400, detail: Sequence[str] = ()) -> RequestError:
    return RequestError(message, status=status, detail=detail)


def _error_body(message: str, detail: Sequence[str] = ()) -> bytes:
    return ErrorResponse(error=message, detail=list(detail)).model_dump_json().encode()


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
        OPENAPI_PATH: {"GET": "_openapi"},
    }

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
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
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
            route = self.ROUTES.get(path)
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
            handler: Callable[[dict[str, list[str]]], BaseModel | bytes] = getattr(
                self, handler_name
            )
            query = self._query(url.query, path)
            result = handler(query)
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

    def _query(self, raw: str, path: str) -> dict[str, list[str]]:
        try:
            query = parse_qs(raw, keep_blank_values=True, max_num_fields=16)
        except ValueError as exc:
            raise _bad(f"The query string was not understood: {exc}.") from exc
        allowed = _HISTORY_PARAMS if path == "/v1/history" else frozenset()
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

    def _body(self, model: type[M], what: str, *, required: bool) -> M | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _bad("Send the request body with a Content-Length header.", 411)
        raw_length = self.headers.get("Content-Length", "0").strip() or "0"
        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0:
            raise _bad("The request's Content-Length header is not a byte count.")
        if length > MAX_BODY_BYTES:
            raise _bad(
                f"The request body is too large ({length} bytes; the agent takes at most "
                f"{MAX_BODY_BYTES // 1024} KiB).",
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

    inputs: list[type[BaseModel]] = [SettingsPatch, PauseRequest]
    outputs: list[type[BaseModel]] = [
        AgentStatus,
        SeriesList,
        HistoryResponse,
        Settings,
        Ok,
        ErrorResponse,
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
        name: str, schema: dict[str, Any], description: str, required: bool = False
    ) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": required,
            "schema": schema,
            "description": description,
        }

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
        OPENAPI_PATH: {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 document"}},
            }
        },
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

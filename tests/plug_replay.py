"""A smart plug on loopback answering as the real devices do, for the plug and energy tests.

The answers under tests/data/plugs/ are modelled on the devices' documented answers (see
tests/integration/test_plugs_replay.py for which); the server fills in the live figures (power,
the energy counter, the relay), and can go away (every connection closed, the port refusing)
and come back on the same port. A module of its own name at the top of tests/, as
``agent_process``, so the integration and GUI tests replay the same plug.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mosquitto_broker import free_port

DATA = Path(__file__).parent / "data" / "plugs"
SHELLY_ERRORS = json.loads((DATA / "shelly_errors.json").read_text())
TASMOTA_ERRORS = json.loads((DATA / "tasmota_errors.json").read_text())


class FakePlug:
    """One plug on 127.0.0.1 from a recording: ``shelly_*``, ``tasmota_*``, ``gen1`` (a
    first-generation Shelly) or ``none`` (a web server that is no plug).

    ``power_w`` and ``total`` (the counter: Wh for a Shelly, kWh for Tasmota) and ``output``
    (the relay) are what it says now; ``password`` protects it; ``hang`` holds every answer.
    """

    def __init__(self, recording: str, *, password: str | None = None) -> None:
        self.recording = recording
        self.answers: dict[str, Any] = (
            json.loads((DATA / f"{recording}.json").read_text())
            if recording.startswith(("shelly_", "tasmota_"))
            else {}
        )
        self.password = password
        self.port = free_port()
        self.power_w: float | None = None
        self.total: float | None = None
        self.output = True
        self.status8: dict[str, Any] | None = None  # a replacement Status 8 answer
        self.switch_ids = {"0"}  # the Shelly's component instances
        self.password_answer = "need_password"  # Tasmota's answer to a missing password
        self.hang = threading.Event()
        self.released = threading.Event()
        self.requests: list[tuple[str, str | None]] = []
        self.nonces: set[str] = set()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if recording == "shelly_pro_1pm" and password is None:
            self.answers["Shelly.GetDeviceInfo"]["auth_en"] = False
            self.answers["Shelly.GetDeviceInfo"]["auth_domain"] = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- what the device answers -----------------------------------------------------------

    def answer(self, method: str, path: str, auth: str | None) -> tuple[int, Any, dict[str, str]]:
        url = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if self.recording == "gen1":
            if url.path == "/shelly":
                return 200, SHELLY_ERRORS["gen1_shelly"], {}
            return 404, b"Not Found", {}
        if self.recording.startswith("shelly_") and url.path.startswith("/rpc/"):
            return self._shelly(method, url.path.removeprefix("/rpc/"), query, path, auth)
        if self.recording.startswith("tasmota_") and url.path == "/cm":
            return self._tasmota(query)
        return 404, b"Not Found", {}

    def _shelly(
        self, http_method: str, method: str, query: dict[str, str], uri: str, auth: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "Shelly.GetDeviceInfo":
            return 200, self.answers[method], {}
        if self.password is not None and not self._digest_ok(http_method, uri, auth):
            nonce = secrets.token_hex(8)
            self.nonces.add(nonce)
            challenge = SHELLY_ERRORS["unauthorized"]
            header = challenge["www_authenticate"].replace("{nonce}", nonce)
            return challenge["status"], challenge["body"], {"WWW-Authenticate": header}
        if method not in self.answers:
            error = copy.deepcopy(SHELLY_ERRORS["no_handler"])
            error["body"]["message"] = f"No handler for {method}"
            return error["status"], error["body"], {}
        if query.get("id") not in self.switch_ids:
            error = copy.deepcopy(SHELLY_ERRORS["no_instance"])
            error["body"]["message"] = f"Argument 'id', value {query.get('id')} not found!"
            return error["status"], error["body"], {}
        status = copy.deepcopy(self.answers[method])
        if "output" in status:
            status["output"] = self.output
            if not self.output:
                status["apower"] = 0.0
                status["current"] = 0.0
        if self.power_w is not None and self.output:
            status["apower"] = self.power_w
        if self.total is not None:
            status["aenergy"]["total"] = self.total
        return 200, status, {}

    def _digest_ok(self, method: str, uri: str, auth: str | None) -> bool:
        """RFC 7616 digest with SHA-256, user admin, as a Shelly checks it."""
        if auth is None or not auth.startswith("Digest "):
            return False
        fields = {k: a or b for k, a, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', auth)}

        def h(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        realm = self.answers["Shelly.GetDeviceInfo"]["id"]
        ha1 = h(f"admin:{realm}:{self.password}")
        ha2 = h(f"{method}:{fields.get('uri')}")
        expected = h(
            f"{ha1}:{fields.get('nonce')}:{fields.get('nc')}:{fields.get('cnonce')}:"
            f"{fields.get('qop')}:{ha2}"
        )
        return (
            fields.get("username") == "admin"
            and fields.get("realm") == realm
            and fields.get("algorithm") == "SHA-256"
            and fields.get("uri") == uri
            and fields.get("nonce") in self.nonces
            and hmac.compare_digest(expected, fields.get("response", ""))
        )

    def _tasmota(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if self.password is not None and (
            query.get("user") != "admin" or query.get("password") != self.password
        ):
            need = TASMOTA_ERRORS[self.password_answer]
            return need["status"], need["body"], {}
        command = query.get("cmnd", "")
        if command not in ("Status 0", "Status 8"):
            unknown = TASMOTA_ERRORS["unknown_command"]
            return unknown["status"], unknown["body"], {}
        if command == "Status 8" and self.status8 is not None:
            return 200, self.status8, {}
        status = copy.deepcopy(self.answers[command])
        energy = status["StatusSNS"].get("ENERGY")
        if energy is not None:
            if not self.output:
                energy["Power"] = 0
                energy["Current"] = 0.0
            elif self.power_w is not None:
                energy["Power"] = self.power_w
            if self.total is not None:
                energy["Total"] = self.total
        if "StatusSTS" in status:
            status["StatusSTS"]["POWER"] = "ON" if self.output else "OFF"
        return 200, status, {}

    # -- the server ----------------------------------------------------------------------------

    def start(self) -> None:
        plug = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # kept-alive connections, as the devices keep them
            server_version = "plug"

            def setup(self) -> None:
                super().setup()
                with plug._lock:
                    plug._conns.add(self.connection)

            def finish(self) -> None:
                with plug._lock:
                    plug._conns.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization")
                plug.requests.append((self.path, auth))
                if plug.hang.is_set():
                    plug.released.wait(10)
                status, body, headers = plug.answer("GET", self.path, auth)
                if isinstance(body, bytes):
                    data, ctype = body, "text/plain"
                else:
                    data = b"" if body is None else json.dumps(body).encode()
                    ctype = "application/json"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up while a held answer waited: nothing to report

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-plug-{self.recording}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Gone: the port refuses, and every open connection is closed."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._conns.clear()

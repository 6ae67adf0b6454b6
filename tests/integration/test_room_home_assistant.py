"""The Home Assistant room thermometer against a local HTTP server that answers as Home
Assistant's REST API does.

tests/data/home_assistant/states.json is a ``GET /api/states`` answer in Home Assistant's own
serialisation of a State (entity_id, state as a string, attributes, last_changed,
last_reported, last_updated, context), with the entities a home typically has: a Zigbee
thermometer in °C, an Ecobee in °F, an unavailable sensor, the processor's temperature, a met.no
weather entity, and others that are not thermometers. A refused token is answered as Home
Assistant's aiohttp does (401, ``401: Unauthorized`` as text), an unknown entity with
``{"message": "Entity not found."}``.
"""

from __future__ import annotations

import copy
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from heatshare.protocol.heating import (
    HeatingSettings,
    HomeAssistantSource,
    RoomProbeRequest,
    RoomSourceKind,
)
from heatshare.sensors.room import HomeAssistantRoom, RoomSample, open_room_source, probe
from mosquitto_broker import free_port, wait_until

TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.heatshare-test.token"
STATES = json.loads(
    (Path(__file__).parent.parent / "data" / "home_assistant" / "states.json").read_text()
)
STUDY = "sensor.study_thermometer_temperature"


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that refused our certificate: what the test wants, not a trace


class FakeHomeAssistant:
    """Home Assistant's ``/api/states`` routes on 127.0.0.1, from the recorded states."""

    def __init__(self, port: int | None = None, cert: tuple[Path, Path] | None = None) -> None:
        self.states: dict[str, dict[str, Any]] = {s["entity_id"]: copy.deepcopy(s) for s in STATES}
        self.requests: list[tuple[str, str | None]] = []
        self.port = port or free_port()
        self.cert = cert  # (certificate, key): serve HTTPS
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        ha = self

        class Handler(BaseHTTPRequestHandler):
            server_version: ClassVar[str] = "Python/3.12 aiohttp/3.11.11"

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization")
                ha.requests.append((self.path, auth))
                if auth != f"Bearer {TOKEN}":
                    self._send(401, b"401: Unauthorized", "text/plain; charset=utf-8")
                elif self.path == "/api/states":
                    self._json(200, list(ha.states.values()))
                elif self.path.startswith("/api/states/"):
                    state = ha.states.get(self.path.removeprefix("/api/states/"))
                    if state is None:
                        self._json(404, {"message": "Entity not found."})
                    else:
                        self._json(200, state)
                else:
                    self._send(404, b"404: Not Found", "text/plain; charset=utf-8")

            def _json(self, code: int, body: object) -> None:
                self._send(code, json.dumps(body).encode(), "application/json")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.cert)
            # The handshake in the request's thread, so a refused one closes its socket there.
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-home-assistant", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def set(self, entity_id: str, state: str, **attrs: Any) -> None:
        entry = self.states[entity_id]
        entry["state"] = state
        entry["attributes"].update(attrs)
        now = datetime.now().astimezone().isoformat()
        entry["last_reported"] = entry["last_updated"] = now


@pytest.fixture
def ha() -> Iterator[FakeHomeAssistant]:
    server = FakeHomeAssistant()
    server.start()
    yield server
    server.stop()


def _cfg(ha: FakeHomeAssistant, **kw: Any) -> HomeAssistantSource:
    fields = {"url": ha.url, "token": TOKEN, "entity_id": STUDY, **kw}
    return HomeAssistantSource.model_validate(fields)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def rooms() -> Iterator[list[HomeAssistantRoom]]:
    started: list[HomeAssistantRoom] = []
    yield started
    for r in started:
        r.stop()


def _room(
    rooms: list[HomeAssistantRoom], cfg: HomeAssistantSource, period_s: float = 0.1
) -> HomeAssistantRoom:
    room = HomeAssistantRoom(cfg, period_s=period_s, timeout_s=2.0)
    rooms.append(room)
    room.start()
    return room


def _settled(room: HomeAssistantRoom, check: Any, what: str) -> RoomSample:
    def ready() -> RoomSample | None:
        sample = room.latest()
        return sample if check(sample) else None

    try:
        found: RoomSample = wait_until(ready, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last sample: {room.latest()}") from None
    return found


def test_open_room_source_picks_home_assistant(ha: FakeHomeAssistant) -> None:
    settings = HeatingSettings(room_source=RoomSourceKind.HOME_ASSISTANT, home_assistant=_cfg(ha))
    assert isinstance(open_room_source(settings), HomeAssistantRoom)


def test_reads_the_room_and_the_weather(
    ha: FakeHomeAssistant, rooms: list[HomeAssistantRoom]
) -> None:
    room = _room(rooms, _cfg(ha, outdoor_entity_id="weather.forecast_home"))
    sample = _settled(room, lambda s: s.temp_c is not None and s.outdoor_c is not None, "a reading")
    assert sample == RoomSample(
        temp_c=21.34,
        outdoor_c=7.4,
        # Home Assistant's last report of the sensor (also when its value did not change).
        wall=_epoch(STATES[2]["last_reported"]),
        error=None,
        outdoor_error=None,
    )
    assert ha.requests[0] == (f"/api/states/{STUDY}", f"Bearer {TOKEN}")
    assert ("/api/states/weather.forecast_home", f"Bearer {TOKEN}") in ha.requests


def test_fahrenheit_is_converted(ha: FakeHomeAssistant, rooms: list[HomeAssistantRoom]) -> None:
    room = _room(rooms, _cfg(ha, entity_id="sensor.living_room_current_temperature"))
    sample = _settled(room, lambda s: s.temp_c is not None, "a reading")
    assert sample.temp_c == pytest.approx(21.5, abs=0.01)  # 70.7 °F


def test_unavailable_then_back(ha: FakeHomeAssistant, rooms: list[HomeAssistantRoom]) -> None:
    room = _room(rooms, _cfg(ha))
    good = _settled(room, lambda s: s.temp_c == 21.34, "a reading")
    ha.set(STUDY, "unavailable")
    bad = _settled(room, lambda s: s.error is not None, "the error")
    assert bad.error == (
        f"Home Assistant reports {STUDY} as unavailable: the thermometer is not reporting."
    )
    assert (bad.temp_c, bad.wall) == (21.34, good.wall)  # the last good one, with its own time
    ha.set(STUDY, "unknown")
    _settled(room, lambda s: "as unknown" in (s.error or ""), "unknown")
    ha.set(STUDY, "21.9")
    back = _settled(room, lambda s: s.temp_c == 21.9 and s.error is None, "back")
    assert back.wall is not None
    assert back.wall > (good.wall or 0)


def test_wrong_token_missing_entity_and_wrong_unit(
    ha: FakeHomeAssistant, rooms: list[HomeAssistantRoom]
) -> None:
    room = _room(rooms, _cfg(ha, token="not-the-token"))
    refused = _settled(room, lambda s: s.error is not None, "an error")
    assert refused.error == (
        f"Home Assistant at {ha.url} answered 401: the token was refused. Create a long-lived "
        "access token in your Home Assistant profile (Security) and paste it here."
    )
    assert refused.temp_c is None

    missing = _room(rooms, _cfg(ha, entity_id="sensor.attic_temperature"))
    assert _settled(missing, lambda s: s.error is not None, "an error").error == (
        "Home Assistant has no entity sensor.attic_temperature; pick one from the list."
    )
    humidity = _room(rooms, _cfg(ha, entity_id="sensor.study_thermometer_humidity"))
    assert _settled(humidity, lambda s: s.error is not None, "an error").error == (
        "sensor.study_thermometer_humidity is measured in %, not in °C or °F."
    )
    weather = _room(rooms, _cfg(ha, outdoor_entity_id="sensor.study_thermometer_humidity"))
    sample = _settled(weather, lambda s: s.outdoor_error is not None, "an outdoor error")
    assert sample.temp_c == 21.34 and sample.error is None  # the room is fine all the same


def test_a_server_that_goes_away(ha: FakeHomeAssistant, rooms: list[HomeAssistantRoom]) -> None:
    room = _room(rooms, _cfg(ha))
    good = _settled(room, lambda s: s.temp_c == 21.34, "a reading")
    ha.stop()
    gone = _settled(room, lambda s: "connection refused" in (s.error or ""), "the error")
    assert gone.error == (
        f"Home Assistant at {ha.url} cannot be reached (connection refused); check the address "
        "and that Home Assistant is running."
    )
    assert (gone.temp_c, gone.wall) == (21.34, good.wall)
    ha.start()  # back on the same port
    ha.set(STUDY, "20.8")
    _settled(room, lambda s: s.temp_c == 20.8 and s.error is None, "back")


def test_a_server_that_does_not_answer(rooms: list[HomeAssistantRoom]) -> None:
    import socket

    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        room = HomeAssistantRoom(
            HomeAssistantSource(url=url, token=TOKEN, entity_id=STUDY), timeout_s=0.5
        )
        rooms.append(room)
        started = time.monotonic()
        room.start()
        sample = _settled(room, lambda s: s.error is not None, "the error")
        assert sample.error == f"Home Assistant at {url} did not answer within 0.5 s."
        assert time.monotonic() - started < 3.0


def test_polls_on_its_own_period(ha: FakeHomeAssistant, rooms: list[HomeAssistantRoom]) -> None:
    room = _room(rooms, _cfg(ha), period_s=0.5)
    _settled(room, lambda s: s.temp_c is not None, "a reading")
    time.sleep(1.2)
    polls = sum(1 for path, _ in ha.requests if path == f"/api/states/{STUDY}")
    assert polls in (3, 4)  # at 0, 0.5, 1.0 s (and 1.5 on a slow machine)
    stopped = time.monotonic()
    room.stop()
    assert time.monotonic() - stopped < 1.0  # the wait ends at once, not at the next poll


def test_no_token_stored(ha: FakeHomeAssistant, rooms: list[HomeAssistantRoom]) -> None:
    room = _room(rooms, _cfg(ha, token=None))
    sample = _settled(room, lambda s: s.error is not None, "the error")
    assert sample.error == "No Home Assistant token is stored; paste a long-lived access token."
    assert ha.requests == []


# --- probe --------------------------------------------------------------------------------------


def _probe(cfg: HomeAssistantSource, stored: HeatingSettings | None = None):  # type: ignore[no-untyped-def]
    req = RoomProbeRequest(room_source=RoomSourceKind.HOME_ASSISTANT, home_assistant=cfg)
    return probe(req, stored or HeatingSettings(), timeout_s=4.0)


def test_probe_lists_the_thermometers(ha: FakeHomeAssistant) -> None:
    got = _probe(_cfg(ha, entity_id=None))
    assert not got.ok
    assert got.error == "Connected to Home Assistant: pick the room's thermometer."
    assert [(e.entity_id, e.name, e.state, e.unit) for e in got.entities] == [
        ("sensor.bedroom_temperature", "Bedroom Temperature", "unavailable", "°C"),
        ("sensor.living_room_current_temperature", "Living Room Current Temperature", "70.7", "°F"),
        ("sensor.study_thermometer_temperature", "Study thermometer Temperature", "21.34", "°C"),
        (
            "sensor.system_monitor_processor_temperature",
            "System Monitor Processor temperature",
            "47.0",
            "°C",
        ),
        ("weather.forecast_home", "Forecast Home", "7.4", "°C"),  # outdoor only: listed last
    ]
    assert ha.requests == [("/api/states", f"Bearer {TOKEN}")]


def test_probe_reads_the_picked_entities(ha: FakeHomeAssistant) -> None:
    got = _probe(_cfg(ha, outdoor_entity_id="weather.forecast_home"))
    assert (got.ok, got.room_c, got.outdoor_c, got.error) == (True, 21.34, 7.4, None)
    assert len(got.entities) == 5
    bad = _probe(_cfg(ha, entity_id="sensor.bedroom_temperature"))
    assert not bad.ok
    assert bad.error == (
        "Home Assistant reports sensor.bedroom_temperature as unavailable: the thermometer is "
        "not reporting."
    )


def test_probe_errors_are_sentences(ha: FakeHomeAssistant) -> None:
    assert "the token was refused" in str(_probe(_cfg(ha, token="nope")).error)
    port = free_port()
    gone = _probe(HomeAssistantSource(url=f"http://127.0.0.1:{port}", token=TOKEN))
    assert gone.error == (
        f"Home Assistant at http://127.0.0.1:{port} cannot be reached (connection refused); "
        "check the address and that Home Assistant is running."
    )
    not_ha = _probe(_cfg(ha, url=f"{ha.url}/lovelace"))
    assert not_ha.error == (
        f"There is no Home Assistant API at {ha.url}/lovelace; give the address you open Home "
        "Assistant at, such as http://homeassistant.local:8123."
    )
    unknown_host = _probe(HomeAssistantSource(url="http://no-such-host.invalid:8123", token="t"))
    assert "cannot be reached (the name is not known)" in str(unknown_host.error)


def test_probe_takes_the_stored_token_only_for_the_same_server(ha: FakeHomeAssistant) -> None:
    stored = HeatingSettings(room_source=RoomSourceKind.HOME_ASSISTANT, home_assistant=_cfg(ha))
    same = _probe(_cfg(ha, url=ha.url + "/", token=None), stored)
    assert (same.ok, same.room_c) == (True, 21.34)
    other = FakeHomeAssistant()
    other.start()
    try:
        moved = _probe(HomeAssistantSource(url=other.url, entity_id=STUDY), stored)
        assert moved.error == f"Paste a long-lived access token for Home Assistant at {other.url}."
        assert other.requests == []  # the stored token never went to the new address
    finally:
        other.stop()


def test_a_self_signed_certificate(tmp_path: Path, rooms: list[HomeAssistantRoom]) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate to serve")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=homeassistant.local",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server = FakeHomeAssistant(cert=(cert, key))
    server.start()
    try:
        checked = _room(rooms, _cfg(server), period_s=30.0)
        error = _settled(checked, lambda s: s.error is not None, "the error").error
        assert error is not None
        assert error.startswith(f"The TLS certificate of {server.url} was not accepted (")
        assert error.endswith(
            "; for a self-signed certificate you trust, turn off the certificate check."
        )
        trusted = _room(rooms, _cfg(server, verify_tls=False), period_s=30.0)
        # No warning on each poll either (warnings are errors here).
        sample = _settled(trusted, lambda s: s.temp_c is not None, "a reading")
        assert (sample.temp_c, sample.error) == (21.34, None)
        for room in rooms:  # before the server, so no request is left half done
            room.stop()
    finally:
        server.stop()

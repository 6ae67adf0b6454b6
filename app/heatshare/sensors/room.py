"""Room thermometers: a Home Assistant sensor (REST API) or an MQTT topic (Zigbee2MQTT…).

A source runs on its own thread and keeps the last good reading with the wall time it was
measured; :meth:`RoomSource.latest` only reads that (no I/O), so the heating loop may call it at
any rate. A reading is never made up: a payload that is not a temperature, an entity Home
Assistant reports as unavailable, a unit that is not one of temperature, each is an error
sentence, and the last good reading stays with its own (aging) time, for the thermostat to judge
stale.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import requests
import urllib3

from heatshare.protocol.heating import (
    HeatingSettings,
    HomeAssistantSource,
    MqttSource,
    RoomProbeRequest,
    RoomProbeResponse,
    RoomSourceKind,
    SensorEntity,
)
from heatshare.sensors import mqtt_broker
from heatshare.sensors.net_reason import socket_reason

log = logging.getLogger(__name__)

HA_POLL_S = 30.0  # Home Assistant is asked this often; thermometers report every minute or so
HA_TIMEOUT_S = 10.0
# Outside these a "temperature" is a fault or a wrong entity, not a room or the weather.
ROOM_RANGE_C = (-30.0, 60.0)
OUTDOOR_RANGE_C = (-70.0, 65.0)
MAX_PAYLOAD = 64 * 1024  # a thermometer's message is a few hundred bytes
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_UNITS = {"°C": "C", "C": "C", "℃": "C", "°F": "F", "F": "F", "℉": "F", "K": "K"}
_NOT_REPORTING = ("unavailable", "unknown")


@dataclass(frozen=True)
class RoomSample:
    """What a room source knows now.

    Attributes:
        temp_c: the last good room reading, however old (``wall`` says when); None before one.
        outdoor_c: the last good outdoor reading, where an outdoor sensor is set; None otherwise.
        wall: UTC epoch seconds when ``temp_c`` was measured (received, or Home Assistant's
            last report of it).
        error: a sentence while the room reading has trouble (the source unreachable, a bad
            payload, the sensor unavailable); None when the last attempt was good.
        outdoor_error: the same for the outdoor reading.
    """

    temp_c: float | None
    outdoor_c: float | None
    wall: float | None
    error: str | None
    outdoor_error: str | None = None


class RoomSource(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...

    def latest(self) -> RoomSample: ...


class ReadingError(Exception):
    """A reading that could not be taken; the message is a sentence for the householder."""


def open_room_source(
    settings: HeatingSettings, *, wall: Callable[[], float] = time.time
) -> RoomSource | None:
    """The room source the settings name, not yet started; None for no thermometer."""
    if settings.room_source is RoomSourceKind.HOME_ASSISTANT and settings.home_assistant:
        return HomeAssistantRoom(settings.home_assistant, wall=wall)
    if settings.room_source is RoomSourceKind.MQTT and settings.mqtt:
        return MqttRoom(settings.mqtt, wall=wall)
    return None


# --- values -------------------------------------------------------------------------------------


def to_celsius(value: Any, unit: str | None, what: str, valid: tuple[float, float]) -> float:
    """A temperature in °C from a reported value and unit; ReadingError when it is not one.

    ``what`` names the source in the sentence ("sensor.study_temperature").
    """
    if isinstance(value, bool):
        raise ReadingError(f"{what} reads {value!r}, not a temperature.")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER.match(text):
            raise ReadingError(f"{what} reads {_quote(text)}, not a temperature.")
        number = float(text)
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise ReadingError(f"{what} reads {_quote(value)}, not a temperature.")
    if not math.isfinite(number):
        raise ReadingError(f"{what} reads {number}, not a temperature.")
    scale = _UNITS.get(unit.strip()) if unit is not None else "C"
    if scale is None:
        raise ReadingError(f"{what} is measured in {unit}, not in °C or °F.")
    celsius = (number - 32.0) * 5.0 / 9.0 if scale == "F" else number
    if scale == "K":
        celsius = number - 273.15
    if not valid[0] <= celsius <= valid[1]:
        raise ReadingError(
            f"{what} reads {celsius:.1f} °C, which is not a plausible temperature here; "
            "check that it is the right sensor."
        )
    return round(celsius, 2)


def parse_payload(
    payload: bytes, field: str | None, what: str, valid: tuple[float, float]
) -> float:
    """The temperature in an MQTT message: the number itself, or a JSON object's field.

    A bare number is taken even where a field is set (a plain thermometer topic); a field may
    be a dotted path into nested objects (Tasmota: ``DS18B20.Temperature``).
    """
    if len(payload) > MAX_PAYLOAD:
        raise ReadingError(f"The message on {what} is too long to be a thermometer's.")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ReadingError(f"The message on {what} is not text.") from None
    if _NUMBER.match(text):
        return to_celsius(text, None, f"The thermometer on {what}", valid)
    if field is None:
        raise ReadingError(f"The message on {what} is {_quote(text)}, not a number.")
    obj = _json_value(text, what)
    if isinstance(obj, int | float) and not isinstance(obj, bool):  # NaN, Infinity
        return to_celsius(obj, None, f"The thermometer on {what}", valid)
    if not isinstance(obj, dict):
        raise ReadingError(f"The message on {what} is {_quote(text)}, not a JSON object.")
    value = _field(obj, field)
    if value is None:
        raise ReadingError(f"The message on {what} has no {field!r} field.")
    return to_celsius(value, None, f"The thermometer on {what}", valid)


def payload_time(payload: bytes, received: float) -> float:
    """When an MQTT reading was measured: Zigbee2MQTT's ``last_seen`` where it says, else now.

    A retained message may be old; ``last_seen`` (when the device was last heard) tells how old.
    A time after receipt (clock skew) counts as the receipt.
    """
    try:
        obj = json.loads(payload)
    except ValueError:
        return received
    seen = obj.get("last_seen") if isinstance(obj, dict) else None
    when: float | None = None
    if isinstance(seen, int | float) and not isinstance(seen, bool) and math.isfinite(seen):
        when = seen / 1000.0  # Zigbee2MQTT's "epoch" format is milliseconds
    elif isinstance(seen, str):
        when = _iso_epoch(seen)
    return received if when is None else min(when, received)


def device_offline(payload: bytes) -> bool:
    """Whether a Zigbee2MQTT availability message says offline (``{"state": "offline"}``, or
    plain ``offline`` before Zigbee2MQTT 1.22)."""
    try:
        obj = json.loads(payload)
    except ValueError:
        return payload.strip() == b"offline"
    return isinstance(obj, dict) and obj.get("state") == "offline"


def _json_value(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ReadingError(f"The message on {what} is {_quote(text)}, not JSON.") from None


def _field(obj: dict[str, Any], path: str) -> Any:
    if path in obj:
        return obj[path]
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _iso_epoch(text: str) -> float | None:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:  # a local time without its offset: the receipt is surer
        return None
    return when.timestamp()


def _quote(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:40] + "…")


# --- Home Assistant -----------------------------------------------------------------------------


class HomeAssistantApi:
    """Home Assistant's REST API with a long-lived token; every failure a ReadingError sentence."""

    def __init__(
        self, url: str, token: str, *, verify_tls: bool = True, timeout_s: float = HA_TIMEOUT_S
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.headers["Content-Type"] = "application/json"
        # Given with each request: a session's verify=False loses to REQUESTS_CA_BUNDLE.
        self._verify = verify_tls
        if not verify_tls:
            # The householder turned the check off for a certificate they trust; urllib3 would
            # warn on every poll.
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

    def close(self) -> None:
        self._session.close()

    def state(self, entity_id: str) -> dict[str, Any]:
        """``GET /api/states/<entity_id>``."""
        data = self._get(f"/api/states/{entity_id}", entity_id)
        if not isinstance(data, dict):
            raise ReadingError(f"Home Assistant at {self.url} gave an answer it never gives.")
        return data

    def states(self) -> list[dict[str, Any]]:
        """``GET /api/states``: every entity."""
        data = self._get("/api/states", None)
        if not isinstance(data, list):
            raise ReadingError(f"Home Assistant at {self.url} gave an answer it never gives.")
        return [s for s in data if isinstance(s, dict)]

    def _get(self, path: str, entity_id: str | None) -> Any:
        try:
            try:
                resp = self._session.get(
                    self.url + path,
                    timeout=self.timeout_s,
                    allow_redirects=False,
                    verify=self._verify,
                )
            except requests.exceptions.ConnectionError as exc:
                if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.Timeout):
                    raise
                # Once more on a new connection: a kept-alive one dies when Home Assistant
                # restarts, and that alone is no reason for an error.
                self._session.close()
                resp = self._session.get(
                    self.url + path,
                    timeout=self.timeout_s,
                    allow_redirects=False,
                    verify=self._verify,
                )
        except requests.exceptions.SSLError as exc:
            raise ReadingError(
                f"The TLS certificate of {self.url} was not accepted "
                f"({socket_reason(exc)}); for a self-signed certificate you trust, "
                "turn off the certificate check."
            ) from None
        except requests.exceptions.Timeout:
            raise ReadingError(
                f"Home Assistant at {self.url} did not answer within {self.timeout_s:g} s."
            ) from None
        except requests.exceptions.ConnectionError as exc:
            raise ReadingError(
                f"Home Assistant at {self.url} cannot be reached "
                f"({socket_reason(exc)}); check the address and that Home Assistant "
                "is running."
            ) from None
        except requests.RequestException as exc:
            raise ReadingError(f"The address {self.url} cannot be used ({exc}).") from None
        with resp:
            if resp.status_code in (401, 403):
                raise ReadingError(
                    f"Home Assistant at {self.url} answered {resp.status_code}: the token was "
                    "refused. Create a long-lived access token in your Home Assistant profile "
                    "(Security) and paste it here."
                )
            if resp.status_code == 404 and entity_id is not None:
                raise ReadingError(
                    f"Home Assistant has no entity {entity_id}; pick one from the list."
                )
            if resp.status_code == 404:
                raise ReadingError(
                    f"There is no Home Assistant API at {self.url}; give the address you open "
                    "Home Assistant at, such as http://homeassistant.local:8123."
                )
            if resp.status_code != 200:
                raise ReadingError(
                    f"Home Assistant at {self.url} answered {resp.status_code} {resp.reason}."
                )
            try:
                return resp.json()
            except ValueError:
                raise ReadingError(
                    f"The answer from {self.url} is not Home Assistant's (not JSON); check the "
                    "address."
                ) from None


def ha_temperature(state: dict[str, Any], valid: tuple[float, float]) -> float:
    """The temperature of a Home Assistant state: a sensor's state, or a weather entity's
    ``temperature`` attribute; in its unit, converted to °C."""
    entity_id = str(state.get("entity_id", "the entity"))
    attrs = state.get("attributes")
    attrs = attrs if isinstance(attrs, dict) else {}
    value = state.get("state")
    if value in _NOT_REPORTING or value is None:
        raise ReadingError(
            f"Home Assistant reports {entity_id} as {value or 'unknown'}: the thermometer is "
            "not reporting."
        )
    if entity_id.startswith("weather."):
        value, unit = attrs.get("temperature"), attrs.get("temperature_unit")
        if value is None:
            raise ReadingError(f"The weather entity {entity_id} gives no temperature.")
    else:
        unit = attrs.get("unit_of_measurement")
    if unit is None:
        raise ReadingError(f"{entity_id} has no unit; pick a temperature sensor (°C or °F).")
    return to_celsius(value, str(unit), entity_id, valid)


def ha_time(state: dict[str, Any], received: float) -> float:
    """When Home Assistant last heard the sensor: ``last_reported`` (HA 2024.3 and later: also
    when the value did not change), else ``last_updated``; never after the receipt (clock skew)."""
    for key in ("last_reported", "last_updated"):
        text = state.get(key)
        when = _iso_epoch(text) if isinstance(text, str) else None
        if when is not None:
            return min(when, received)
    return received


def ha_entities(states: list[dict[str, Any]]) -> list[SensorEntity]:
    """The entities a room or outdoor thermometer can be picked from: sensors of temperature
    (device class, or a °C/°F unit), then weather entities (outdoor only), each by name."""
    sensors: list[SensorEntity] = []
    weather: list[SensorEntity] = []
    for s in states:
        entity_id = s.get("entity_id")
        attrs = s.get("attributes")
        if not isinstance(entity_id, str) or not isinstance(attrs, dict):
            continue
        name = str(attrs.get("friendly_name") or entity_id)
        if entity_id.startswith("sensor."):
            unit = attrs.get("unit_of_measurement")
            is_temp = attrs.get("device_class") == "temperature" or (
                isinstance(unit, str) and _UNITS.get(unit) in ("C", "F")
            )
            if is_temp:
                sensors.append(
                    SensorEntity(
                        entity_id=entity_id,
                        name=name,
                        state=str(s.get("state")),
                        unit=unit if isinstance(unit, str) else None,
                    )
                )
        elif entity_id.startswith("weather.") and attrs.get("temperature") is not None:
            unit = attrs.get("temperature_unit")
            weather.append(
                SensorEntity(
                    entity_id=entity_id,
                    name=name,
                    state=str(attrs.get("temperature")),
                    unit=unit if isinstance(unit, str) else None,
                )
            )

    def by_name(e: SensorEntity) -> tuple[str, str]:
        return e.name.casefold(), e.entity_id

    return sorted(sensors, key=by_name) + sorted(weather, key=by_name)


class _Reporter:
    """Holds the sample behind a lock and logs each change of trouble once (INFO: the app shows
    the sentence; the heating loop decides what a missing reading means)."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._lock = threading.Lock()
        self._sample = RoomSample(temp_c=None, outdoor_c=None, wall=None, error=None)

    def latest(self) -> RoomSample:
        with self._lock:
            return self._sample

    def room(self, temp_c: float, wall: float) -> None:
        with self._lock:
            before = self._sample
            self._sample = replace(before, temp_c=temp_c, wall=wall, error=None)
        if before.error is not None or before.temp_c is None:
            log.info("%s: room %.1f °C", self._label, temp_c)

    def room_error(self, error: str) -> None:
        with self._lock:
            before = self._sample
            self._sample = replace(before, error=error)
        if before.error != error:
            log.info("%s: %s", self._label, error)

    def outdoor(self, temp_c: float) -> None:
        with self._lock:
            before = self._sample
            self._sample = replace(before, outdoor_c=temp_c, outdoor_error=None)
        if before.outdoor_error is not None or before.outdoor_c is None:
            log.info("%s: outdoor %.1f °C", self._label, temp_c)

    def outdoor_error(self, error: str) -> None:
        with self._lock:
            before = self._sample
            self._sample = replace(before, outdoor_error=error)
        if before.outdoor_error != error:
            log.info("%s: %s", self._label, error)

    def both_errors(self, error: str, outdoor: bool) -> None:
        self.room_error(error)
        if outdoor:
            self.outdoor_error(error)


class HomeAssistantRoom:
    """Polls a Home Assistant sensor every ``period_s`` on its own thread, "room-home-assistant"."""

    def __init__(
        self,
        cfg: HomeAssistantSource,
        *,
        wall: Callable[[], float] = time.time,
        period_s: float = HA_POLL_S,
        timeout_s: float = HA_TIMEOUT_S,
    ) -> None:
        self._cfg = cfg
        self._wall = wall
        self._period_s = period_s
        self._timeout_s = timeout_s
        self._report = _Reporter("Home Assistant thermometer")
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def latest(self) -> RoomSample:
        return self._report.latest()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="room-home-assistant", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            # A request in flight ends within its timeout; the settings change that stops this
            # source need not wait for it (the thread is a daemon and reads nothing after).
            self._thread.join(1.0)
            self._thread = None

    def _run(self) -> None:
        api = self._api()
        try:
            while not self._stopped.is_set():
                try:
                    self.poll(api)
                except Exception:  # ours: say so, and keep polling
                    log.exception("Polling Home Assistant failed")
                    self._report.room_error("Reading Home Assistant failed; see the log.")
                self._stopped.wait(self._period_s)
        finally:
            if api is not None:
                api.close()

    def _api(self) -> HomeAssistantApi | None:
        if self._cfg.token is None:
            return None
        return HomeAssistantApi(
            self._cfg.url,
            self._cfg.token,
            verify_tls=self._cfg.verify_tls,
            timeout_s=self._timeout_s,
        )

    def poll(self, api: HomeAssistantApi | None) -> None:
        """One reading of the room (and the outdoor entity, where set)."""
        outdoor = self._cfg.outdoor_entity_id
        if api is None:
            self._report.both_errors(
                "No Home Assistant token is stored; paste a long-lived access token.", bool(outdoor)
            )
            return
        if self._cfg.entity_id is None:
            self._report.room_error("No room thermometer is picked from Home Assistant yet.")
        else:
            try:
                state = api.state(self._cfg.entity_id)
                temp = ha_temperature(state, ROOM_RANGE_C)
            except ReadingError as exc:
                self._report.room_error(str(exc))
            else:
                self._report.room(temp, ha_time(state, self._wall()))
        if outdoor:
            try:
                self._report.outdoor(ha_temperature(api.state(outdoor), OUTDOOR_RANGE_C))
            except ReadingError as exc:
                self._report.outdoor_error(str(exc))


# --- MQTT ---------------------------------------------------------------------------------------


def _topic_problem(topic: str) -> str | None:
    if "+" in topic or "#" in topic:
        return f"The topic {topic} must name one thermometer: no + or # wildcards."
    return None


class MqttRoom:
    """Listens to a thermometer's MQTT topic on paho's network thread, reconnecting by itself.

    Retained messages count (a thermometer that publishes rarely still gives a reading at once);
    a reading's time is when it arrived, or Zigbee2MQTT's ``last_seen`` where it is earlier.
    """

    def __init__(
        self,
        cfg: MqttSource,
        *,
        wall: Callable[[], float] = time.time,
        client_id: str | None = None,
    ) -> None:
        self._cfg = cfg
        self._wall = wall
        self._client_id = client_id or f"heatshare-room-{uuid.uuid4().hex[:12]}"
        self._report = _Reporter("MQTT thermometer")
        self._client: Any = None
        self._stopping = False
        self._connacked = False  # the broker accepted this connection (CONNACK)

    def latest(self) -> RoomSample:
        return self._report.latest()

    def start(self) -> None:
        if self._client is not None:
            return
        problem = _topic_problem(self._cfg.topic) or (
            _topic_problem(self._cfg.outdoor_topic) if self._cfg.outdoor_topic else None
        )
        if problem:
            self._report.both_errors(problem, bool(self._cfg.outdoor_topic))
            return
        self._report.both_errors(
            f"Connecting to the MQTT broker at {mqtt_broker.where(self._cfg)}…",
            bool(self._cfg.outdoor_topic),
        )
        self._stopping = False
        self._connacked = False
        client = mqtt_broker.new_client(self._cfg, self._client_id)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.connect_async(self._cfg.host, self._cfg.port, keepalive=mqtt_broker.KEEPALIVE_S)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self._stopping = True
        client.disconnect()
        client.loop_stop()

    # paho's thread from here on

    def _on_connect(self, client: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._report.both_errors(
                mqtt_broker.refused(self._cfg, reason), bool(self._cfg.outdoor_topic)
            )
            return
        self._connacked = True
        log.info("MQTT thermometer: connected to %s", mqtt_broker.where(self._cfg))
        # Zigbee2MQTT says on <topic>/availability when a device drops off the network: the
        # room then has trouble at once, not only once its last reading grows stale.
        topics = [(self._cfg.topic, 1), (self._availability, 1)]
        if self._cfg.outdoor_topic:
            topics.append((self._cfg.outdoor_topic, 1))
        client.subscribe(topics)

    def _on_subscribe(self, _client: Any, _ud: Any, _mid: Any, reasons: Any, _props: Any) -> None:
        if reasons and reasons[0].is_failure:  # the thermometer's own topic
            self._report.both_errors(
                f"The MQTT broker at {mqtt_broker.where(self._cfg)} does not let us read "
                f"{self._cfg.topic}; check the user's rights on the broker.",
                bool(self._cfg.outdoor_topic),
            )
            return
        # Retained messages come after this; until one does, the room is unknown.
        self._report.both_errors(
            f"Waiting for a message on {self._cfg.topic}…", bool(self._cfg.outdoor_topic)
        )

    def _on_connect_fail(self, _client: Any, _ud: Any) -> None:
        self._report.both_errors(
            mqtt_broker.connect_failed(self._cfg) + " Retrying.", bool(self._cfg.outdoor_topic)
        )

    def _on_disconnect(self, _client: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        was, self._connacked = self._connacked, False
        if self._stopping:
            return
        self._report.both_errors(
            mqtt_broker.lost(self._cfg, reason, was_connected=was), bool(self._cfg.outdoor_topic)
        )

    @property
    def _availability(self) -> str:
        return f"{self._cfg.topic}/availability"

    def _on_message(self, _client: Any, _ud: Any, msg: Any) -> None:
        received = self._wall()
        if msg.topic == self._availability:
            if device_offline(msg.payload):
                self._report.room_error(
                    f"Zigbee2MQTT reports {self._cfg.topic} offline: the thermometer is not "
                    "reporting."
                )
            return
        outdoor = msg.topic == self._cfg.outdoor_topic and msg.topic != self._cfg.topic
        valid = OUTDOOR_RANGE_C if outdoor else ROOM_RANGE_C
        try:
            temp = parse_payload(msg.payload, self._cfg.json_field, msg.topic, valid)
        except ReadingError as exc:
            if outdoor:
                self._report.outdoor_error(str(exc))
            else:
                self._report.room_error(str(exc))
            return
        if outdoor:
            self._report.outdoor(temp)
        else:
            self._report.room(temp, payload_time(msg.payload, received))
            if msg.topic == self._cfg.outdoor_topic:  # one topic for both: odd, but honest
                self._report.outdoor(temp)


# --- probe --------------------------------------------------------------------------------------


def probe(
    req: RoomProbeRequest, stored: HeatingSettings, timeout_s: float = 8.0
) -> RoomProbeResponse:
    """Try a room source before it is saved: a reading, or why there is none.

    A token or password left out is taken from the stored settings only for the same server
    (and user), so a stored secret is never sent to a new address.
    """
    if req.room_source is RoomSourceKind.NONE:
        return RoomProbeResponse(ok=True)
    if req.room_source is RoomSourceKind.HOME_ASSISTANT:
        if req.home_assistant is None:
            return RoomProbeResponse(ok=False, error="Give Home Assistant's address and a token.")
        return _probe_ha(_with_stored_token(req.home_assistant, stored), timeout_s)
    if req.mqtt is None:
        return RoomProbeResponse(ok=False, error="Give the MQTT broker's address and a topic.")
    return _probe_mqtt(_with_stored_password(req.mqtt, stored), timeout_s)


def _with_stored_token(cfg: HomeAssistantSource, stored: HeatingSettings) -> HomeAssistantSource:
    old = stored.home_assistant
    if cfg.token is None and old is not None and old.url.rstrip("/") == cfg.url.rstrip("/"):
        return cfg.model_copy(update={"token": old.token})
    return cfg


def _with_stored_password(cfg: MqttSource, stored: HeatingSettings) -> MqttSource:
    old = stored.mqtt
    same = old is not None and (old.host, old.port, old.username) == (
        cfg.host,
        cfg.port,
        cfg.username,
    )
    if cfg.password is None and cfg.username and same and old is not None:
        return cfg.model_copy(update={"password": old.password})
    return cfg


def _probe_ha(cfg: HomeAssistantSource, timeout_s: float) -> RoomProbeResponse:
    if cfg.token is None:
        return RoomProbeResponse(
            ok=False, error=f"Paste a long-lived access token for Home Assistant at {cfg.url}."
        )
    api = HomeAssistantApi(
        cfg.url, cfg.token, verify_tls=cfg.verify_tls, timeout_s=max(1.0, timeout_s / 2)
    )
    try:
        try:
            states = api.states()
        except ReadingError as exc:
            return RoomProbeResponse(ok=False, error=str(exc))
        entities = ha_entities(states)
        by_id = {str(s.get("entity_id")): s for s in states}
        outdoor_c: float | None = None
        problems: list[str] = []
        if cfg.outdoor_entity_id:
            try:
                outdoor_c = ha_temperature(_known(by_id, cfg.outdoor_entity_id), OUTDOOR_RANGE_C)
            except ReadingError as exc:
                problems.append(str(exc))
        room_c: float | None = None
        if cfg.entity_id is None:
            problems.insert(0, "Connected to Home Assistant: pick the room's thermometer.")
        else:
            try:
                room_c = ha_temperature(_known(by_id, cfg.entity_id), ROOM_RANGE_C)
            except ReadingError as exc:
                problems.insert(0, str(exc))
        return RoomProbeResponse(
            ok=not problems,
            room_c=room_c,
            outdoor_c=outdoor_c,
            error=" ".join(problems) or None,
            entities=entities,
        )
    finally:
        api.close()


def _known(by_id: dict[str, dict[str, Any]], entity_id: str) -> dict[str, Any]:
    state = by_id.get(entity_id)
    if state is None:
        raise ReadingError(f"Home Assistant has no entity {entity_id}; pick one from the list.")
    return state


def _probe_mqtt(cfg: MqttSource, timeout_s: float) -> RoomProbeResponse:
    problem = _topic_problem(cfg.topic) or (
        _topic_problem(cfg.outdoor_topic) if cfg.outdoor_topic else None
    )
    if problem:
        return RoomProbeResponse(ok=False, error=problem)
    try:
        connack, got = _listen(cfg, timeout_s)
    except OSError as exc:
        return RoomProbeResponse(ok=False, error=mqtt_broker.unreachable(cfg, exc))
    except ValueError as exc:  # paho's word for an address it cannot use
        return RoomProbeResponse(ok=False, error=f"The broker address cannot be used ({exc}).")
    if connack is None:
        return RoomProbeResponse(
            ok=False, error=f"The MQTT broker at {mqtt_broker.where(cfg)} did not answer in time."
        )
    if connack.is_failure:
        return RoomProbeResponse(ok=False, error=mqtt_broker.refused(cfg, connack))
    problems: list[str] = []
    room_c: float | None = None
    outdoor_c: float | None = None
    if cfg.topic not in got:
        problems.append(
            f"Connected to the broker, but nothing arrived on {cfg.topic} within "
            f"{timeout_s:g} s; check the topic (Zigbee2MQTT: zigbee2mqtt/<device name>)."
        )
    else:
        try:
            room_c = parse_payload(got[cfg.topic], cfg.json_field, cfg.topic, ROOM_RANGE_C)
        except ReadingError as exc:
            problems.append(str(exc))
    if cfg.outdoor_topic:
        if cfg.outdoor_topic not in got:
            problems.append(f"Nothing arrived on the outdoor topic {cfg.outdoor_topic} in time.")
        else:
            try:
                outdoor_c = parse_payload(
                    got[cfg.outdoor_topic], cfg.json_field, cfg.outdoor_topic, OUTDOOR_RANGE_C
                )
            except ReadingError as exc:
                problems.append(str(exc))
    return RoomProbeResponse(
        ok=not problems, room_c=room_c, outdoor_c=outdoor_c, error=" ".join(problems) or None
    )


def _listen(cfg: MqttSource, timeout_s: float) -> tuple[Any, dict[str, bytes]]:
    """Connect, subscribe and wait for the first message on each topic (retained ones come at
    once): the broker's CONNACK (None when it never came) and topic -> payload."""
    deadline = time.monotonic() + timeout_s
    client = mqtt_broker.new_client(cfg, f"heatshare-probe-{uuid.uuid4().hex[:12]}")
    lock = threading.Lock()
    got: dict[str, bytes] = {}
    connack: list[Any] = []
    done = threading.Event()
    wanted = {cfg.topic} | ({cfg.outdoor_topic} if cfg.outdoor_topic else set())

    def on_connect(c: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        connack.append(reason)
        if reason.is_failure:
            done.set()
        else:
            c.subscribe([(t, 1) for t in sorted(wanted)])

    def on_message(_c: Any, _ud: Any, msg: Any) -> None:
        with lock:
            got.setdefault(msg.topic, msg.payload)
            if wanted <= got.keys():
                done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect_timeout = max(1.0, min(5.0, timeout_s / 2))
    client.connect(cfg.host, cfg.port, keepalive=mqtt_broker.KEEPALIVE_S)
    client.loop_start()
    try:
        while not done.wait(0.05) and time.monotonic() < deadline:
            with lock:
                room_only = cfg.topic in got
            if room_only and cfg.outdoor_topic:
                # The room answered; an outdoor topic that is not retained may take a moment.
                done.wait(min(2.0, max(0.0, deadline - time.monotonic())))
                break
    finally:
        client.disconnect()
        client.loop_stop()
    with lock:
        return (connack[0] if connack else None), dict(got)

"""The MQTT room thermometer against a real mosquitto broker: Zigbee2MQTT payloads, retained
messages, bad payloads, a broker that goes away and comes back, and the set-up probe."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heatshare.protocol.heating import (
    HeatingSettings,
    MqttSource,
    RoomProbeRequest,
    RoomSourceKind,
)
from heatshare.sensors.room import MqttRoom, RoomSample, open_room_source, probe
from mosquitto_broker import Mosquitto, Watcher, require_mosquitto, wait_until

TOPIC = "zigbee2mqtt/Study thermometer"
# What Zigbee2MQTT publishes for an Aqara WSDCGQ11LM (its exposes, in its own order).
Z2M = {
    "battery": 100,
    "humidity": 48.51,
    "linkquality": 87,
    "power_outage_count": 4,
    "pressure": 1012.3,
    "temperature": 21.3,
    "voltage": 3025,
}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(require_mosquitto(), tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def z2m(broker: Mosquitto) -> Iterator[Watcher]:
    """A client in the role of the Zigbee2MQTT bridge (and a witness)."""
    w = Watcher(broker.port)
    yield w
    w.close()


def _cfg(broker: Mosquitto, **kw: object) -> MqttSource:
    fields: dict[str, object] = {"host": "127.0.0.1", "port": broker.port, "topic": TOPIC, **kw}
    return MqttSource.model_validate(fields)


@pytest.fixture
def sources() -> Iterator[list[MqttRoom]]:
    started: list[MqttRoom] = []
    yield started
    for s in started:
        s.stop()


def _start(sources: list[MqttRoom], cfg: MqttSource) -> MqttRoom:
    source = MqttRoom(cfg)
    sources.append(source)
    source.start()
    return source


def _reading(source: MqttRoom, temp: float, timeout: float = 10.0) -> RoomSample:
    return wait_until(
        lambda: (s := source.latest()).temp_c == temp and s.error is None and s,
        timeout,
        f"a reading of {temp} °C; last {source.latest()}",
    )


def test_open_room_source_picks_mqtt(broker: Mosquitto) -> None:
    settings = HeatingSettings(room_source=RoomSourceKind.MQTT, mqtt=_cfg(broker))
    assert isinstance(open_room_source(settings), MqttRoom)
    assert open_room_source(HeatingSettings()) is None


def test_retained_zigbee2mqtt_payload_is_read_at_once(
    broker: Mosquitto, z2m: Watcher, sources: list[MqttRoom]
) -> None:
    z2m.publish(TOPIC, json.dumps(Z2M), retain=True)
    before = time.time()
    source = _start(sources, _cfg(broker))
    sample = _reading(source, 21.3)
    assert sample.outdoor_c is None
    assert sample.wall is not None
    assert before <= sample.wall <= time.time()  # when it arrived: the payload has no last_seen


def test_live_readings_bad_payloads_and_plain_numbers(
    broker: Mosquitto, z2m: Watcher, sources: list[MqttRoom]
) -> None:
    source = _start(sources, _cfg(broker))
    wait_until(lambda: "Waiting for a message" in (source.latest().error or ""), what="subscribed")
    z2m.publish(TOPIC, json.dumps({**Z2M, "temperature": 19.87}))
    good = _reading(source, 19.87)

    # A message without the field is an error; the last good reading stays, with its own time.
    z2m.publish(TOPIC, json.dumps({"battery": 99, "linkquality": 60}))
    bad = wait_until(lambda: (s := source.latest()).error and s)
    assert bad.error == f"The message on {TOPIC} has no 'temperature' field."
    assert (bad.temp_c, bad.wall) == (19.87, good.wall)

    for payload, error in (
        (json.dumps({**Z2M, "temperature": None}), "has no 'temperature' field"),
        (json.dumps({**Z2M, "temperature": "warm"}), "reads 'warm', not a temperature"),
        (json.dumps({**Z2M, "temperature": 250}), "250.0 °C, which is not a plausible"),
        ("NaN", "reads nan, not a temperature"),
        ('{"temperature": NaN}', "reads nan, not a temperature"),
        ("[21.3]", "not a JSON object"),
        (b"\xff\xfe", "is not text"),
    ):
        z2m.publish(TOPIC, payload)
        sample = wait_until(
            lambda e=error: e in (source.latest().error or "") and source.latest(),
            what=f"{error!r} for {payload!r}; last {source.latest()}",
        )
        assert sample.temp_c == 19.87, payload

    z2m.publish(TOPIC, "20.5")  # a bare number is taken even where a field is set
    _reading(source, 20.5)


def test_plain_number_topic_and_outdoor_topic(
    broker: Mosquitto, z2m: Watcher, sources: list[MqttRoom]
) -> None:
    cfg = _cfg(broker, topic="house/study/temperature", json_field=None, outdoor_topic="w/out")
    z2m.publish("house/study/temperature", " 22.25\n", retain=True)
    z2m.publish("w/out", "-3.5", retain=True)
    source = _start(sources, cfg)
    sample = _reading(source, 22.25)
    wait_until(lambda: source.latest().outdoor_c == -3.5, what="the outdoor reading")
    assert sample.outdoor_error is None or "Waiting" in sample.outdoor_error

    z2m.publish("house/study/temperature", json.dumps(Z2M))  # JSON, but no field is set
    wait_until(lambda: "not a number" in (source.latest().error or ""), what="an error")
    z2m.publish("w/out", "-100")
    wait_until(
        lambda: "not a plausible" in (source.latest().outdoor_error or ""), what="outdoor error"
    )
    assert source.latest().outdoor_c == -3.5


def test_last_seen_dates_a_retained_reading(
    broker: Mosquitto, z2m: Watcher, sources: list[MqttRoom]
) -> None:
    seen = datetime.now(UTC) - timedelta(minutes=20)
    z2m.publish(TOPIC, json.dumps({**Z2M, "last_seen": seen.isoformat()}), retain=True)
    source = _start(sources, _cfg(broker))
    sample = _reading(source, 21.3)
    assert sample.wall == pytest.approx(seen.timestamp(), abs=0.01)


def test_survives_a_broker_restart(
    broker: Mosquitto, z2m: Watcher, sources: list[MqttRoom]
) -> None:
    source = _start(sources, _cfg(broker))
    wait_until(lambda: "Waiting for a message" in (source.latest().error or ""), what="subscribed")
    z2m.publish(TOPIC, json.dumps(Z2M))
    first = _reading(source, 21.3)
    z2m.close()

    broker.stop()
    lost = wait_until(lambda: (s := source.latest()).error and s, what="the loss noticed")
    assert "Lost the MQTT broker at 127.0.0.1" in str(lost.error)
    assert (lost.temp_c, lost.wall) == (21.3, first.wall)  # the old reading, with its old time

    time.sleep(1.5)  # down long enough for at least one failed reconnection
    broker.start()
    again = Watcher(broker.port)
    try:
        # Subscribed again on its own (the broker kept no session: persistence is off).
        wait_until(
            lambda: "Waiting for a message" in (source.latest().error or ""),
            timeout=40,
            what=f"reconnected; last {source.latest()}",
        )
        again.publish(TOPIC, json.dumps({**Z2M, "temperature": 21.9}))
        _reading(source, 21.9)
    finally:
        again.close()


def test_broker_down_at_start_then_up(tmp_path: Path, sources: list[MqttRoom]) -> None:
    broker = Mosquitto(require_mosquitto(), tmp_path)  # not started yet
    source = _start(sources, _cfg(broker))
    down = wait_until(lambda: "Retrying" in (e := source.latest().error or "") and e)
    assert down == (
        f"The MQTT broker at 127.0.0.1:{broker.port} cannot be reached (connection refused); "
        "check the address and that the broker is running. Retrying."
    )
    assert source.latest().temp_c is None
    broker.start()
    try:
        w = Watcher(broker.port)
        w.publish(TOPIC, json.dumps(Z2M), retain=True)
        w.close()
        _reading(source, 21.3, timeout=40)
    finally:
        broker.stop()


def test_a_port_that_does_not_speak_mqtt(sources: list[MqttRoom]) -> None:
    with socket.socket() as other:  # accepts, and closes at once
        other.bind(("127.0.0.1", 0))
        other.listen()
        other.settimeout(0.1)  # a close from another thread does not end a blocked accept
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = other.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        port = other.getsockname()[1]
        source = _start(sources, MqttSource(host="127.0.0.1", port=port, topic=TOPIC))
        error = wait_until(lambda: "accepts connections" in (source.latest().error or ""))
        assert error
        assert source.latest().error == (
            f"The MQTT broker at 127.0.0.1:{port} accepts connections, but not MQTT without "
            "TLS; check the port and the TLS setting. Retrying."
        )
        stop.set()
        source.stop()
        thread.join(5)


def test_wildcard_topic_is_refused(broker: Mosquitto, sources: list[MqttRoom]) -> None:
    source = _start(sources, _cfg(broker, topic="zigbee2mqtt/+"))
    assert source.latest().error == (
        "The topic zigbee2mqtt/+ must name one thermometer: no + or # wildcards."
    )


# --- probe --------------------------------------------------------------------------------------


def _probe(cfg: MqttSource, stored: HeatingSettings | None = None, timeout_s: float = 8.0):  # type: ignore[no-untyped-def]
    req = RoomProbeRequest(room_source=RoomSourceKind.MQTT, mqtt=cfg)
    return probe(req, stored or HeatingSettings(), timeout_s=timeout_s)


def test_probe_reads_a_retained_reading(broker: Mosquitto, z2m: Watcher) -> None:
    z2m.publish(TOPIC, json.dumps(Z2M), retain=True)
    started = time.monotonic()
    got = _probe(_cfg(broker))
    assert (got.ok, got.room_c, got.error) == (True, 21.3, None)
    assert time.monotonic() - started < 2.0


def test_probe_says_what_is_wrong(broker: Mosquitto, z2m: Watcher) -> None:
    started = time.monotonic()
    silent = _probe(_cfg(broker, topic="zigbee2mqtt/nothing"), timeout_s=1.5)
    assert not silent.ok
    assert silent.error is not None
    assert silent.error.startswith(
        "Connected to the broker, but nothing arrived on zigbee2mqtt/nothing within 1.5 s"
    )
    assert time.monotonic() - started < 4.0

    z2m.publish(TOPIC, '{"humidity": 50}', retain=True)
    assert _probe(_cfg(broker)).error == f"The message on {TOPIC} has no 'temperature' field."

    closed = _probe(_cfg(broker).model_copy(update={"port": _closed_port()}))
    assert closed.error is not None
    assert "cannot be reached (connection refused)" in closed.error


def test_probe_with_a_password_uses_the_stored_one_only_for_the_same_broker(
    tmp_path: Path,
) -> None:
    broker = Mosquitto(require_mosquitto(), tmp_path, users={"heater": "s3cret"})
    broker.start()
    try:
        cfg = _cfg(broker, username="heater", password="wrong")
        refused = _probe(cfg)
        assert refused.error == (
            f"The MQTT broker at 127.0.0.1:{broker.port} refused the user name or password; "
            "check them in the broker's settings."
        )
        stored = HeatingSettings(
            room_source=RoomSourceKind.MQTT, mqtt=cfg.model_copy(update={"password": "s3cret"})
        )
        kept = _probe(cfg.model_copy(update={"password": None, "topic": "t/none"}), stored, 1.0)
        assert kept.error is not None
        assert kept.error.startswith("Connected to the broker")  # the stored password was used
        other_user = cfg.model_copy(update={"password": None, "username": "someone"})
        assert "refused the user name or password" in str(_probe(other_user, stored).error)
    finally:
        broker.stop()


def _closed_port() -> int:
    from mosquitto_broker import free_port

    return free_port()


def test_zigbee2mqtt_says_the_thermometer_is_offline(
    broker: Mosquitto, z2m: Watcher, sources: list[MqttRoom]
) -> None:
    z2m.publish(TOPIC, json.dumps(Z2M), retain=True)
    source = _start(sources, _cfg(broker))
    good = _reading(source, 21.3)
    z2m.publish(f"{TOPIC}/availability", '{"state":"offline"}', retain=True)
    off = wait_until(lambda: (s := source.latest()).error and s, what="the device offline")
    assert off.error == (f"Zigbee2MQTT reports {TOPIC} offline: the thermometer is not reporting.")
    assert (off.temp_c, off.wall) == (21.3, good.wall)
    z2m.publish(f"{TOPIC}/availability", '{"state":"online"}', retain=True)
    z2m.publish(TOPIC, json.dumps({**Z2M, "temperature": 21.5}), retain=True)
    _reading(source, 21.5)

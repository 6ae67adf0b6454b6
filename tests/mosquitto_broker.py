"""A real mosquitto broker on loopback, started by the test (no system service), and a client
that watches and publishes like Home Assistant or a Zigbee2MQTT bridge would.

The tests skip only where the ``mosquitto`` binary is missing and HEATSHARE_REQUIRE_MQTT is not
set; CI sets it, so there a missing broker is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

START_TIMEOUT_S = 10.0


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    sbin = Path("/usr/sbin/mosquitto")  # Debian installs it outside a user's PATH
    return str(sbin) if sbin.exists() else None


def require_mosquitto() -> str:
    binary = mosquitto_binary()
    if binary is None:
        if os.environ.get("HEATSHARE_REQUIRE_MQTT"):
            pytest.fail("HEATSHARE_REQUIRE_MQTT is set but there is no mosquitto binary")
        pytest.skip(
            "mosquitto is not installed (Debian: apt-get install mosquitto, or run "
            "scripts/system-deps.sh test); set HEATSHARE_REQUIRE_MQTT=1 to make this a failure"
        )
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mosquitto:
    """One broker on 127.0.0.1; ``restart`` brings it back on the same port, as after an outage."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)  # user -> password; empty: anonymous
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # as root it would drop to a "mosquitto" user
        if self.users:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            passwd.chmod(0o600)
            for user, password in self.users.items():
                subprocess.run(
                    [_passwd_tool(), "-b", str(passwd), user, password],
                    check=True,
                    capture_output=True,
                )
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        conf.write_text("\n".join(lines) + "\n")
        log = (self.workdir / f"mosquitto-{self.starts}.log").open("wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mosquitto exited at start: {self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"mosquitto did not listen on {self.port}: {self.log_text()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def log_text(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("mosquitto-*.log"))
        )


def _passwd_tool() -> str:
    found = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(found).exists():
        pytest.fail("mosquitto_passwd is missing (it comes with Debian's mosquitto package)")
    return found


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()


class Watcher:
    """A plain MQTT client: records every message on its subscriptions, and publishes."""

    def __init__(self, port: int, subscriptions: tuple[str, ...] = ("#",)) -> None:
        self.messages: list[Message] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._subscriptions = subscriptions
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(5), "the watcher did not subscribe"

    def _on_connect(self, client: Any, *_a: Any) -> None:
        client.subscribe([(s, 1) for s in self._subscriptions])

    def _on_message(self, _client: Any, _ud: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(
        self, topic: str, match: Callable[[Message], bool] = lambda _m: True, timeout: float = 10
    ) -> Message:
        """The first message (already seen or to come) on ``topic`` that ``match`` accepts."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if m.topic == topic and match(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages if m.topic == topic]
                    raise AssertionError(f"nothing matching on {topic} in {timeout} s; saw {seen}")
                self._cond.wait(left)

    def last(self, topic: str) -> Message | None:
        with self._cond:
            found = [m for m in self.messages if m.topic == topic]
        return found[-1] if found else None

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)

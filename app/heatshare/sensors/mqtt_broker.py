"""One way to reach an MQTT broker (paho-mqtt 2.x), shared by the room thermometer and the bridge.

paho runs its own network thread (``loop_start``), reconnects by itself with a back-off, and
calls our callbacks on that thread; the callbacks here only record what happened.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from heatshare.protocol.heating import MqttSource
from heatshare.sensors.net_reason import socket_reason

# Seconds between reconnection attempts: the first soon (a broker restarting), then backing off.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
KEEPALIVE_S = 30


def where(cfg: MqttSource) -> str:
    """``host:port`` as the householder typed it, for sentences."""
    return f"{cfg.host}:{cfg.port}"


def new_client(cfg: MqttSource, client_id: str) -> mqtt.Client:
    """A paho client for this broker, not yet connected.

    MQTT 3.1.1 and a clean session: every broker speaks it, and nothing of a session is worth
    keeping (retained messages carry the last reading to a new session anyway).
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        client.tls_set()
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


def refused(cfg: MqttSource, reason_code: Any) -> str:
    """A sentence for a CONNACK that refused us."""
    text = str(reason_code)
    if text in ("Bad user name or password", "Not authorized"):
        return (
            f"The MQTT broker at {where(cfg)} refused the user name or password; check them in "
            "the broker's settings."
        )
    return f"The MQTT broker at {where(cfg)} refused the connection ({text})."


def unreachable(cfg: MqttSource, exc: BaseException | None = None) -> str:
    """A sentence for a broker that could not be reached (``exc`` the error, where known)."""
    if isinstance(exc, ssl.SSLError):
        return (
            f"The MQTT broker at {where(cfg)} did not pass the TLS check ({exc.reason or exc}); "
            "turn TLS off for a broker that does not offer it."
        )
    why = f" ({socket_reason(exc)})" if exc is not None else ""
    return (
        f"The MQTT broker at {where(cfg)} cannot be reached{why}; check the address and that "
        "the broker is running."
    )


def connect_failed(cfg: MqttSource) -> str:
    """A sentence for a connection paho could not make (it does not say why): look once more
    with a plain TCP connection, to tell a refused or unknown address from a broker that
    answers but not in MQTT (or TLS) as set."""
    try:
        with socket.create_connection((cfg.host, cfg.port), timeout=2.0):
            pass
    except OSError as exc:
        return unreachable(cfg, exc)
    tls = "with" if cfg.tls else "without"
    return (
        f"The MQTT broker at {where(cfg)} accepts connections, but not MQTT {tls} TLS; check "
        "the port and the TLS setting."
    )


def lost(cfg: MqttSource, reason: Any, *, was_connected: bool) -> str:
    """A sentence for a connection that closed; one closed before the broker accepted it is a
    port that speaks something else (or TLS where none was set)."""
    if not was_connected:
        return connect_failed(cfg) + " Retrying."
    return f"Lost the MQTT broker at {where(cfg)} ({reason}); reconnecting."

"""The heater in Home Assistant: MQTT discovery of a climate entity and two sensors, both ways.

Home Assistant finds the heater on its discovery prefix (``homeassistant/…/config``, retained)
and shows it as a thermostat: current and target temperature, a mode (off, heat, auto for off,
heat first, earn first), presets quiet and boost, and what it is doing (heating, idle, off);
beside it the heat output (W) and the heat today (kWh). A setpoint, mode or preset set in Home
Assistant arrives on a command topic, goes to the callback given, and the state the callback
returns is published back. The topics are listed in docs/home-assistant.md.

The bridge keeps its own connection to the broker (its last will marks the heater offline when
the agent dies) on paho's network thread; callbacks run on that thread.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from heatshare.__about__ import __app_name__, __version__
from heatshare.protocol.heating import HeatingStatus, HeatMode, MqttSource
from heatshare.sensors import mqtt_broker

log = logging.getLogger(__name__)

MIN_TEMP_C = 5.0  # the range a setpoint may take (protocol.heating.RoomC)
MAX_TEMP_C = 30.0
TEMP_STEP_C = 0.5
BOOST_MINUTES = 60
SENSOR_PERIOD_S = 10.0  # heat output and heat today are published at most this often
ONLINE, OFFLINE = "online", "offline"
_NODE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Home Assistant's words for our modes; quiet shows as heat with the preset "quiet".
_HA_MODE = {
    HeatMode.OFF: "off",
    HeatMode.HEAT_FIRST: "heat",
    HeatMode.QUIET: "heat",
    HeatMode.EARN_FIRST: "auto",
}
_FROM_HA_MODE = {"off": HeatMode.OFF, "heat": HeatMode.HEAT_FIRST, "auto": HeatMode.EARN_FIRST}


@dataclass(frozen=True)
class HaState:
    """What Home Assistant is shown.

    Attributes:
        mode: the heating mode.
        boost: a boost is running.
        current_c: the room's temperature; None when unknown.
        target_c: the setpoint; None where there is none (off, earn first, no thermometer).
        computing: the heater is computing (heating) now.
        heat_w: heat output now; None when unknown.
        heat_today_kwh: heat given off since local midnight; None when unknown.
    """

    mode: HeatMode
    boost: bool
    current_c: float | None
    target_c: float | None
    computing: bool
    heat_w: float | None
    heat_today_kwh: float | None

    @classmethod
    def from_status(
        cls, status: HeatingStatus, *, heat_w: float | None, heat_today_kwh: float | None
    ) -> HaState:
        return cls(
            mode=status.mode,
            boost=status.boost_until is not None,
            current_c=status.room_c,
            target_c=status.setpoint_c,
            computing=status.computing,
            heat_w=heat_w,
            heat_today_kwh=heat_today_kwh,
        )


# A command's callback returns the new state (published at once), or None (the caller publishes).
ModeCallback = Callable[[HeatMode], HaState | None]
SetpointCallback = Callable[[float], HaState | None]
BoostCallback = Callable[[int], HaState | None]


class HaBridge:
    """Publishes the heater to Home Assistant over MQTT discovery and takes its commands.

    Args:
        mqtt: the broker (its topic settings are not used here; ``discovery_prefix`` is).
        node_key: this heater's stable key (letters, digits, ``_``, ``-``): in topics and ids,
            so it must not change between runs.
        name: the device's name in Home Assistant.
        on_mode: called with a mode set in Home Assistant.
        on_setpoint: called with a target temperature (°C) set in Home Assistant.
        on_boost: called with minutes of boost (0 ends one); None offers no boost preset.
        mono: the monotonic clock that paces the sensor topics.
    """

    def __init__(
        self,
        mqtt: MqttSource,
        *,
        node_key: str,
        name: str,
        on_mode: ModeCallback,
        on_setpoint: SetpointCallback,
        on_boost: BoostCallback | None = None,
        mono: Callable[[], float] = time.monotonic,
        sensor_period_s: float = SENSOR_PERIOD_S,
    ) -> None:
        if not _NODE_KEY.match(node_key):
            raise ValueError(f"a node key is letters, digits, _ and - only, not {node_key!r}")
        self._cfg = mqtt
        self.node_key = node_key
        self.name = name
        self._on_mode = on_mode
        self._on_setpoint = on_setpoint
        self._on_boost = on_boost
        self._mono = mono
        self._sensor_period_s = sensor_period_s
        self.base = f"heatshare/{node_key}"
        self.availability_topic = f"{self.base}/availability"
        self.climate_config_topic = f"{mqtt.discovery_prefix}/climate/{node_key}/config"
        self.sensor_config_topics = {
            key: f"{mqtt.discovery_prefix}/sensor/{node_key}/{key}/config"
            for key in ("heat_output", "heat_today")
        }
        self.ha_status_topic = f"{mqtt.discovery_prefix}/status"
        self._lock = threading.Lock()
        self._state: HaState | None = None
        self._payloads: dict[str, str] = {}  # state topic -> last payload, republished on connect
        self._sensors_at: float | None = None
        self._client: Any = None
        self._connected = False
        self._error: str | None = None
        self._stopping = False

    # --- topics and payloads --------------------------------------------------------------------

    def topic(self, leaf: str) -> str:
        return f"{self.base}/{leaf}"

    def presets(self) -> list[str]:
        return ["quiet", "boost"] if self._on_boost is not None else ["quiet"]

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Discovery topic -> config, as Home Assistant's MQTT integration documents them."""
        device = {
            "identifiers": [f"heatshare_{self.node_key}"],
            "name": self.name,
            "manufacturer": __app_name__,
            "model": "Heater-server",
            "sw_version": __version__,
        }
        origin = {"name": __app_name__, "sw_version": __version__}
        common = {
            "device": device,
            "origin": origin,
            "availability_topic": self.availability_topic,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "qos": 1,
        }
        climate = {
            **common,
            "name": None,  # the device's name: the heater is the device's main feature
            "unique_id": f"heatshare_{self.node_key}_climate",
            "modes": ["off", "heat", "auto"],
            "mode_state_topic": self.topic("mode"),
            "mode_command_topic": self.topic("mode/set"),
            "preset_modes": self.presets(),
            "preset_mode_state_topic": self.topic("preset"),
            "preset_mode_command_topic": self.topic("preset/set"),
            "current_temperature_topic": self.topic("current_temperature"),
            "temperature_state_topic": self.topic("target_temperature"),
            "temperature_command_topic": self.topic("target_temperature/set"),
            "action_topic": self.topic("action"),
            "min_temp": MIN_TEMP_C,
            "max_temp": MAX_TEMP_C,
            "temp_step": TEMP_STEP_C,
            "precision": 0.1,
            "temperature_unit": "C",
            "optimistic": False,
        }
        heat_output = {
            **common,
            "name": "Heat output",
            "unique_id": f"heatshare_{self.node_key}_heat_output",
            "state_topic": self.topic("heat_output"),
            "device_class": "power",
            "state_class": "measurement",
            "unit_of_measurement": "W",
        }
        heat_today = {
            **common,
            "name": "Heat today",
            "unique_id": f"heatshare_{self.node_key}_heat_today",
            "state_topic": self.topic("heat_today"),
            "device_class": "energy",
            "state_class": "total_increasing",  # falls to 0 at midnight: a new cycle for HA
            "unit_of_measurement": "kWh",
        }
        return {
            self.climate_config_topic: climate,
            self.sensor_config_topics["heat_output"]: heat_output,
            self.sensor_config_topics["heat_today"]: heat_today,
        }

    @staticmethod
    def state_payloads(state: HaState) -> dict[str, str]:
        """Leaf topic -> payload for a state ("None" tells Home Assistant a value is unknown)."""
        if state.mode is HeatMode.OFF and not state.boost:
            action = "off"
        else:
            action = "heating" if state.computing else "idle"
        preset = "boost" if state.boost else ("quiet" if state.mode is HeatMode.QUIET else "none")
        return {
            "mode": _HA_MODE[state.mode],
            "preset": preset,
            "current_temperature": _number(state.current_c, 2),
            "target_temperature": _number(state.target_c, 1),
            "action": action,
        }

    @staticmethod
    def sensor_payloads(state: HaState) -> dict[str, str]:
        return {
            "heat_output": _number(state.heat_w, 0),
            "heat_today": _number(state.heat_today_kwh, 3),
        }

    # --- life -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def error(self) -> str | None:
        """A sentence while the broker is out of reach or refuses us; None when connected."""
        return self._error

    def start(self) -> None:
        """Connect in the background (paho's thread); reconnects by itself until :meth:`stop`."""
        if self._client is not None:
            return
        # A fixed client id: a connection left behind by a killed agent is taken over at once
        # (its last will fires now, before our "online"), not left to fire later over it.
        self._stopping = False
        client = mqtt_broker.new_client(self._cfg, f"heatshare-{self.node_key}")
        client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._error = f"Connecting to the MQTT broker at {mqtt_broker.where(self._cfg)}…"
        client.connect_async(self._cfg.host, self._cfg.port, keepalive=mqtt_broker.KEEPALIVE_S)
        client.loop_start()
        self._client = client

    def stop(self, *, remove: bool = False, timeout_s: float = 2.0) -> None:
        """Mark the heater offline (or, with ``remove``, delete it from Home Assistant) and
        disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        self._stopping = True
        if self._connected:
            infos = [client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)]
            if remove:  # an empty retained config removes the entity
                infos += [client.publish(t, "", qos=1, retain=True) for t in self.discovery()]
            deadline = time.monotonic() + timeout_s
            for info in infos:
                try:
                    info.wait_for_publish(max(0.0, deadline - time.monotonic()))
                except (RuntimeError, ValueError):  # the connection went meanwhile: the will
                    break  # says offline all the same
        client.disconnect()
        client.loop_stop()
        self._connected = False

    def publish(self, state: HaState) -> None:
        """Show a new state; only what changed is sent, the sensors at most every few seconds."""
        with self._lock:
            self._state = state
            sends = self._changed(self.state_payloads(state))
            now = self._mono()
            if self._sensors_at is None or now - self._sensors_at >= self._sensor_period_s:
                self._sensors_at = now
                sends.update(self._changed(self.sensor_payloads(state)))
        self._send(sends)

    def _changed(self, payloads: dict[str, str]) -> dict[str, str]:
        out = {leaf: p for leaf, p in payloads.items() if self._payloads.get(leaf) != p}
        self._payloads.update(out)
        return out

    def _send(self, payloads: dict[str, str]) -> None:
        client = self._client
        if client is None or not self._connected:
            return  # kept in _payloads: sent on connect
        for leaf, payload in payloads.items():
            client.publish(self.topic(leaf), payload, qos=1, retain=True)

    def _announce(self, client: Any) -> None:
        for topic, config in self.discovery().items():
            client.publish(topic, json.dumps(config, separators=(",", ":")), qos=1, retain=True)
        with self._lock:
            payloads = dict(self._payloads)
        for leaf, payload in payloads.items():
            client.publish(self.topic(leaf), payload, qos=1, retain=True)
        client.publish(self.availability_topic, ONLINE, qos=1, retain=True)

    # --- paho's thread --------------------------------------------------------------------------

    def _on_connect(self, client: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._error = mqtt_broker.refused(self._cfg, reason)
            log.info("Home Assistant bridge: %s", self._error)
            return
        log.info("Home Assistant bridge: connected to %s", mqtt_broker.where(self._cfg))
        client.subscribe(
            [
                (self.topic("mode/set"), 1),
                (self.topic("preset/set"), 1),
                (self.topic("target_temperature/set"), 1),
                (self.ha_status_topic, 1),
            ]
        )
        self._connected = True
        self._error = None
        self._announce(client)

    def _on_connect_fail(self, _client: Any, _ud: Any) -> None:
        error = mqtt_broker.connect_failed(self._cfg) + " Retrying."
        if error != self._error:
            log.info("Home Assistant bridge: %s", error)
        self._error = error

    def _on_disconnect(self, _client: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        was, self._connected = self._connected, False
        if self._stopping:
            return
        self._error = mqtt_broker.lost(self._cfg, reason, was_connected=was)
        log.info("Home Assistant bridge: %s", self._error)

    def _on_message(self, client: Any, _ud: Any, msg: Any) -> None:
        try:
            text = msg.payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            log.info("Home Assistant bridge: ignored a message on %s that is not text", msg.topic)
            return
        if msg.topic == self.ha_status_topic:
            if text == ONLINE:  # Home Assistant restarted: tell it about us again
                self._announce(client)
            return
        try:
            new = self._command(msg.topic, text)
        except _IgnoredError as exc:
            log.info("Home Assistant bridge: ignored %r on %s: %s", text[:40], msg.topic, exc)
            return
        except ValueError as exc:  # the agent refused it (out of range, not now)
            log.info("Home Assistant bridge: %r on %s was refused: %s", text[:40], msg.topic, exc)
            new = None
        except Exception:  # ours; paho would drop its network thread
            log.exception("Home Assistant bridge: the command %r on %s failed", text, msg.topic)
            new = None
        if new is not None:
            self.publish(new)
        else:
            self._republish(client)

    def _republish(self, client: Any) -> None:
        """Send the current state again, so Home Assistant's control falls back to the truth
        after a command that changed nothing (it shows what it sent until told otherwise)."""
        with self._lock:
            state = self._state
        if state is None or not self._connected:
            return
        for leaf, payload in self.state_payloads(state).items():
            client.publish(self.topic(leaf), payload, qos=1, retain=True)

    def _command(self, topic: str, text: str) -> HaState | None:
        state = self._state
        if topic == self.topic("target_temperature/set"):
            return self._on_setpoint(_setpoint(text))
        if topic == self.topic("mode/set"):
            mode = _FROM_HA_MODE.get(text)
            if mode is None:
                raise _IgnoredError("not one of off, heat, auto")
            if mode is HeatMode.HEAT_FIRST and state is not None and state.mode is HeatMode.QUIET:
                return None  # heat is what quiet shows as; the preset says quiet
            return self._on_mode(mode)
        if topic == self.topic("preset/set"):
            return self._preset(text, state)
        raise _IgnoredError("not a topic of ours")

    def _preset(self, text: str, state: HaState | None) -> HaState | None:
        if text == "quiet":
            return self._on_mode(HeatMode.QUIET)
        if text == "boost" and self._on_boost is not None:
            return self._on_boost(BOOST_MINUTES)
        if text == "none":
            new: HaState | None = None
            if state is not None and state.boost and self._on_boost is not None:
                new = self._on_boost(0)
            if state is not None and state.mode is HeatMode.QUIET:
                new = self._on_mode(HeatMode.HEAT_FIRST)
            return new
        raise _IgnoredError(f"not one of {', '.join([*self.presets(), 'none'])}")


class _IgnoredError(Exception):
    """A command payload that means nothing to us."""


def _setpoint(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _IgnoredError("not a number") from None
    if not math.isfinite(value) or not MIN_TEMP_C <= value <= MAX_TEMP_C:
        raise _IgnoredError(f"not between {MIN_TEMP_C:g} and {MAX_TEMP_C:g} °C")
    return round(value, 1)


def _number(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "None"
    return f"{value:.{digits}f}"

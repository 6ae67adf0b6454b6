"""Smart plugs at the wall: the machine's whole power, read over the plug's local HTTP API.

Handled:

* Shelly, second generation and later (Plus, Pro, Gen3, Gen4), by their local RPC:
  ``Shelly.GetDeviceInfo`` says what the device is; ``Switch.GetStatus?id=0`` reads a plug or
  relay that meters (Plus Plug S/UK/IT/US, Plug S Gen3, Plus 1PM, Pro 1PM, 1PM Gen3/Gen4…):
  ``apower`` in W, ``aenergy.total`` in Wh, ``voltage``, ``current`` and the relay's ``output``;
  a meter without a relay (Plus PM Mini, PM Mini Gen3) answers ``PM1.GetStatus?id=0`` instead.
  A password set on the device is sent with HTTP digest authentication (user ``admin``).
* Tasmota with an energy monitor (Sonoff Pow, Gosund/Nous/Athom plugs…), by its web commands:
  ``/cm?cmnd=Status 8`` gives ``StatusSNS.ENERGY``: ``Power`` in W, ``Total`` in kWh, ``Today``,
  ``Voltage`` and ``Current``; ``Status 0`` also says the device's name and the relay's state.
  A web password is given as ``user`` and ``password`` in the query, as Tasmota asks.

Not handled, each with its own sentence: first-generation Shelly devices (an older API), devices
of several metered channels (which one is the machine's cannot be told), and any other device.

A reading is never made up: whatever a plug did not say is None, and a plug that does not answer,
or answers what a plug never says, gives a reading with only an error sentence.
No Qt and no pydantic here (``sensors`` is imported on bare GPU machines).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.auth import HTTPDigestAuth

from heatshare.domain.heat import PLUG_MAX_POWER_W, PlugReading
from heatshare.sensors.net_reason import socket_reason

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 1.0  # read every second: a plug on the home network answers in a few tens of ms
PROBE_TIMEOUT_S = 3.0
MAX_ANSWER = 64 * 1024  # Tasmota's Status 0, the longest answer read, is about 2 kB
SHELLY_USER = "admin"  # Shelly's user is always admin
TASMOTA_USER = "admin"  # Tasmota's web user is fixed too
WH_J = 3600.0
KWH_J = 3_600_000.0
# A plug reading beyond this is a fault or not a plug: twice the most a socket passes.
MAX_PLAUSIBLE_W = 2 * PLUG_MAX_POWER_W


class PlugKind(StrEnum):
    SHELLY = "shelly"
    TASMOTA = "tasmota"


class PlugError(Exception):
    """A plug that could not be read; the message is a sentence for the householder."""


@dataclass(frozen=True, slots=True)
class PlugProbe:
    """What was found at an address: the plug and a first reading, or an error sentence.

    ``ok`` only when the plug answered with a reading that can be accounted.
    """

    address: str
    kind: PlugKind | None = None
    model: str | None = None
    name: str | None = None
    reading: PlugReading | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.reading is not None and self.reading.usable


def base_url(address: str) -> str:
    """``http://host[:port]`` from what a householder types: an IP address, a host name,
    with or without ``http://``; PlugError for anything else."""
    text = address.strip()
    if not text:
        raise PlugError("Give the plug's address, such as 192.168.1.50.")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise PlugError(f"{address.strip()!r} is not an address.") from None
    if parts.scheme != "http":
        raise PlugError(
            "Plugs answer on their home network over plain http; give the address alone, "
            "such as 192.168.1.50."
        )
    if not parts.hostname or parts.username or parts.password:
        raise PlugError(f"{address.strip()!r} is not an address.")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise PlugError("Give the plug's address alone (such as 192.168.1.50), without a path.")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}" + (f":{port}" if port is not None else "")


# --- HTTP ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any  # the decoded JSON; None when the body is not JSON


class _Http:
    """One session to one plug: no proxy from the environment (the plug is on the home
    network), no redirects, a short timeout, a size cap; every failure a PlugError."""

    def __init__(self, base: str, timeout_s: float, auth: requests.auth.AuthBase | None) -> None:
        self.base = base
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.auth = auth

    def close(self) -> None:
        self._session.close()

    def get(self, path: str, query: dict[str, str] | None = None) -> _Answer:
        url = self.base + path
        if query:
            # %20, not +, for the space in "Status 8": as Tasmota's own documentation writes it.
            url += "?" + urlencode(query, quote_via=quote)
        try:
            try:
                resp = self._fetch(url)
            except requests.exceptions.ConnectionError as exc:
                if isinstance(exc, requests.exceptions.Timeout):
                    raise
                # Once more on a new connection: a kept-alive one dies when the plug restarts.
                self._session.close()
                resp = self._fetch(url)
        except requests.exceptions.Timeout:
            raise PlugError(
                f"The plug at {self.base} did not answer within {self.timeout_s:g} s."
            ) from None
        except requests.exceptions.ConnectionError as exc:
            # The exception's own text may hold the query, and with it a Tasmota password.
            raise PlugError(
                f"The plug at {self.base} cannot be reached ({socket_reason(exc)}); check the "
                "address and that the plug is on."
            ) from None
        except requests.RequestException:
            raise PlugError(f"The plug at {self.base} gave an answer that is not HTTP.") from None
        return resp

    def _fetch(self, url: str) -> _Answer:
        with self._session.get(
            url, timeout=self.timeout_s, allow_redirects=False, stream=True
        ) as resp:
            raw = b""
            for chunk in resp.iter_content(8192):
                raw += chunk
                if len(raw) > MAX_ANSWER:
                    raise PlugError(f"The device at {self.base} answers at a length no plug does.")
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            return _Answer(resp.status_code, body)


# --- values --------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    """A finite number, or None (a field missing, null, text, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _power(value: Any) -> float | None:
    watts = _number(value)
    # A small negative figure is a meter's noise around zero; a large one is a meter wired the
    # other way, and not the machine's draw.
    if watts is None or watts < -1.0 or watts > MAX_PLAUSIBLE_W:
        return None
    return max(watts, 0.0)


def _total(value: Any, joules_per_unit: float) -> float | None:
    total = _number(value)
    if total is None or total < 0.0:
        return None
    return total * joules_per_unit


def _usable(reading: PlugReading, base: str) -> PlugReading:
    if reading.power_w is None and reading.energy_total_j is None:
        return PlugReading(error=f"The plug at {base} gave neither a power nor an energy reading.")
    return reading


# --- Shelly --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShellyInfo:
    """``Shelly.GetDeviceInfo``: what the device says it is."""

    device_id: str
    model: str
    name: str | None
    app: str | None
    generation: int
    auth: bool

    @property
    def label(self) -> str:
        return f"Shelly {self.app or self.model} ({self.model})"


def shelly_info(body: Any) -> ShellyInfo | None:
    """The device info of a Shelly of generation 2 or later; None when the body is not one."""
    if not isinstance(body, dict):
        return None
    gen = body.get("gen")
    device_id = body.get("id")
    model = body.get("model")
    if not isinstance(gen, int) or gen < 2 or not isinstance(device_id, str):
        return None
    name = body.get("name")
    app = body.get("app")
    return ShellyInfo(
        device_id=device_id,
        model=model if isinstance(model, str) else "unknown model",
        name=name if isinstance(name, str) and name.strip() else None,
        app=app if isinstance(app, str) else None,
        generation=gen,
        auth=bool(body.get("auth_en")),
    )


def shelly_reading(body: Any, base: str) -> PlugReading:
    """A ``Switch.GetStatus`` or ``PM1.GetStatus`` answer as a reading."""
    if not isinstance(body, dict):
        return PlugReading(error=f"The Shelly at {base} gave an answer it never gives.")
    if body.get("output") is False:
        return PlugReading(
            error=f"The Shelly at {base} is switched off, so this computer cannot be plugged "
            "into it; switch it on, or give the address of the plug this computer is on."
        )
    if "apower" not in body and "aenergy" not in body:
        return PlugReading(
            error=f"The Shelly at {base} does not measure power (a relay without a meter)."
        )
    energy = body.get("aenergy")
    total = _total(energy.get("total"), WH_J) if isinstance(energy, dict) else None
    reading = PlugReading(
        power_w=_power(body.get("apower")),
        energy_total_j=total,
        voltage_v=_number(body.get("voltage")),
        current_a=_number(body.get("current")),
    )
    return _usable(reading, base)


def _shelly_error(answer: _Answer) -> tuple[int, str] | None:
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("code"), int):
        return body["code"], str(body.get("message", ""))
    return None


# --- Tasmota -------------------------------------------------------------------------------------


def tasmota_reading(body: Any, base: str) -> PlugReading:
    """A ``Status 8`` (or ``Status 0``) answer as a reading, from ``StatusSNS.ENERGY``."""
    if isinstance(body, dict) and body.get("Command") == "Unknown":
        return PlugReading(
            error=f"The device at {base} does not know Tasmota's Status command: it is not "
            "Tasmota, or a build without it."
        )
    sns = body.get("StatusSNS") if isinstance(body, dict) else None
    if not isinstance(sns, dict):
        return PlugReading(error=f"The Tasmota device at {base} gave no sensor readings.")
    energy = sns.get("ENERGY")
    if not isinstance(energy, dict):
        return PlugReading(
            error=f"The Tasmota device at {base} has no energy monitor, so it cannot measure "
            "the computer's power."
        )
    if isinstance(energy.get("Power"), list):
        return PlugReading(
            error=f"The Tasmota device at {base} meters several channels; which one this "
            "computer is on cannot be told. Use a plug with one socket."
        )
    reading = PlugReading(
        power_w=_power(energy.get("Power")),
        energy_total_j=_total(energy.get("Total"), KWH_J),
        voltage_v=_number(energy.get("Voltage")),
        current_a=_number(energy.get("Current")),
    )
    return _usable(reading, base)


def _tasmota_relay_off(body: dict[str, Any]) -> bool:
    sts = body.get("StatusSTS")
    if not isinstance(sts, dict):
        return False
    state = sts.get("POWER", sts.get("POWER1"))
    return state == "OFF"


def _tasmota_warning(answer: _Answer) -> bool:
    body = answer.body
    return isinstance(body, dict) and "Need user=" in str(body.get("WARNING", ""))


def _tasmota_password_asked(answer: _Answer) -> bool:
    # Tasmota answers 401 with this warning; versions before about 12 answered 200 with it.
    return answer.status == 401 or _tasmota_warning(answer)


# --- readers -------------------------------------------------------------------------------------


class PlugReader:
    """Reads one plug, on one HTTP session, with a short timeout; :meth:`read` never raises for
    the plug's faults: a plug that does not answer gives a reading with its error sentence, and
    the next read that gets an answer gives figures again.

    Args:
        kind: what the plug is (from :func:`probe`).
        address: its address, as the householder gave it.
        password: the password set on the plug, if any.
        timeout_s: how long one reading may wait.
    """

    def __init__(
        self,
        kind: PlugKind,
        address: str,
        *,
        password: str | None = None,
        timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.kind = kind
        self.base = base_url(address)
        self._password = password or None
        auth = None
        if kind is PlugKind.SHELLY and self._password is not None:
            auth = HTTPDigestAuth(SHELLY_USER, self._password)
        self._http = _Http(self.base, timeout_s, auth)
        self._shelly_method: str | None = None  # Switch or PM1, once one has answered
        self._last_error: str | None = None

    def close(self) -> None:
        self._http.close()

    def read(self) -> PlugReading:
        """One reading now."""
        try:
            reading = self._read_shelly() if self.kind is PlugKind.SHELLY else self._read_tasmota()
        except PlugError as exc:
            reading = PlugReading(error=str(exc))
        if reading.error != self._last_error:
            # Once per change: the app shows the sentence; the heat falls back meanwhile.
            if reading.error is not None:
                log.info("Plug at %s: %s", self.base, reading.error)
            else:
                log.info("Plug at %s answers again", self.base)
            self._last_error = reading.error
        return reading

    def _read_shelly(self) -> PlugReading:
        methods = (
            (self._shelly_method,) if self._shelly_method else ("Switch.GetStatus", "PM1.GetStatus")
        )
        for method in methods:
            answer = self._http.get(f"/rpc/{method}", {"id": "0"})
            if answer.status == 200:
                self._shelly_method = method
                return shelly_reading(answer.body, self.base)
            if answer.status == 401:
                raise PlugError(self._shelly_refused())
            error = _shelly_error(answer)
            if error is not None and error[0] in (404, -105):
                continue  # no such component here (404: no handler; -105: no instance 0)
            raise PlugError(
                f"The Shelly at {self.base} answered {answer.status}: {_describe(answer)}."
            )
        raise PlugError(f"The Shelly at {self.base} has no metered switch or power meter to read.")

    def _shelly_refused(self) -> str:
        if self._password is None:
            return (
                f"The Shelly at {self.base} is protected by a password; give the password set "
                "in the Shelly app or its web page."
            )
        return f"The Shelly at {self.base} refused the password."

    def _read_tasmota(self) -> PlugReading:
        answer = self._http.get("/cm", self._tasmota_query("Status 8"))
        if _tasmota_password_asked(answer):
            raise PlugError(self._tasmota_refused())
        if answer.status != 200:
            raise PlugError(f"The Tasmota device at {self.base} answered {answer.status}.")
        return tasmota_reading(answer.body, self.base)

    def _tasmota_query(self, command: str) -> dict[str, str]:
        if self._password is None:
            return {"cmnd": command}
        return {"user": TASMOTA_USER, "password": self._password, "cmnd": command}

    def _tasmota_refused(self) -> str:
        if self._password is None:
            return (
                f"The Tasmota device at {self.base} is protected by a web password; give that "
                "password."
            )
        return f"The Tasmota device at {self.base} refused the password."


def _describe(answer: _Answer) -> str:
    error = _shelly_error(answer)
    if error is not None:
        return f"{error[1]} (code {error[0]})"
    return "no reading"


# --- finding a plug ------------------------------------------------------------------------------


def probe(
    address: str, timeout_s: float = PROBE_TIMEOUT_S, *, password: str | None = None
) -> PlugProbe:
    """Find which kind of plug answers at ``address`` and read it once, on the spot.

    Never raises for the device's faults: the answer carries an error sentence (not reachable,
    not a supported plug, a password needed or refused, the relay switched off).
    """
    try:
        base = base_url(address)
    except PlugError as exc:
        return PlugProbe(address=address, error=str(exc))
    http = _Http(base, timeout_s, None)
    try:
        return _probe(http, base, timeout_s, password or None)
    except PlugError as exc:
        return PlugProbe(address=base, error=str(exc))
    finally:
        http.close()


def _probe(http: _Http, base: str, timeout_s: float, password: str | None) -> PlugProbe:
    # Shelly first: GetDeviceInfo answers even where a password protects the rest.
    answer = http.get("/rpc/Shelly.GetDeviceInfo")
    info = shelly_info(answer.body) if answer.status == 200 else None
    if info is not None:
        return _probe_shelly(info, base, timeout_s, password)

    query = {"cmnd": "Status 0"}
    if password is not None:
        query = {"user": TASMOTA_USER, "password": password, **query}
    answer = http.get("/cm", query)
    if _tasmota_password_asked(answer) and _tasmota_warning(answer):
        error = (
            f"The Tasmota device at {base} refused the password."
            if password is not None
            else f"The Tasmota device at {base} is protected by a web password; give that password."
        )
        return PlugProbe(address=base, kind=PlugKind.TASMOTA, error=error)
    if answer.status == 200 and isinstance(answer.body, dict):
        if "Status" in answer.body:
            return _probe_tasmota(answer.body, base)
        if answer.body.get("Command") == "Unknown":
            return PlugProbe(address=base, error=tasmota_reading(answer.body, base).error)

    gen1 = http.get("/shelly")
    if gen1.status == 200 and isinstance(gen1.body, dict) and "type" in gen1.body:
        return PlugProbe(
            address=base,
            error=f"The device at {base} is a first-generation Shelly ({gen1.body['type']}); "
            "Heatshare reads Shelly plugs of the second generation and later (Plus, Pro, "
            "Gen3, Gen4) and Tasmota plugs.",
        )
    return PlugProbe(
        address=base,
        error=f"The device at {base} answers, but not as a Shelly (Plus, Pro, Gen3, Gen4) or "
        "Tasmota plug does.",
    )


def _probe_shelly(info: ShellyInfo, base: str, timeout_s: float, password: str | None) -> PlugProbe:
    found = PlugProbe(address=base, kind=PlugKind.SHELLY, model=info.label, name=info.name)
    if info.auth and password is None:
        return _with(
            found,
            error=f"The Shelly at {base} is protected by a password; give the password set in "
            "the Shelly app or its web page.",
        )
    reader = PlugReader(PlugKind.SHELLY, base, password=password, timeout_s=timeout_s)
    try:
        reading = reader.read()
    finally:
        reader.close()
    return _with(found, reading=reading, error=reading.error)


def _probe_tasmota(body: dict[str, Any], base: str) -> PlugProbe:
    status = body["Status"]
    status = status if isinstance(status, dict) else {}
    firmware = body.get("StatusFWR")
    version = firmware.get("Version") if isinstance(firmware, dict) else None
    name = status.get("DeviceName")
    if not isinstance(name, str) or not name.strip():
        friendly = status.get("FriendlyName")
        name = friendly[0] if isinstance(friendly, list) and friendly else None
    found = PlugProbe(
        address=base,
        kind=PlugKind.TASMOTA,
        model=f"Tasmota {version}" if isinstance(version, str) else "Tasmota",
        name=name if isinstance(name, str) else None,
    )
    if _tasmota_relay_off(body):
        return _with(
            found,
            error=f"The Tasmota plug at {base} is switched off, so this computer cannot be "
            "plugged into it; switch it on, or give the address of the plug this computer is on.",
        )
    reading = tasmota_reading(body, base)
    return _with(found, reading=reading, error=reading.error)


def _with(found: PlugProbe, **changes: Any) -> PlugProbe:
    return replace(found, **changes)

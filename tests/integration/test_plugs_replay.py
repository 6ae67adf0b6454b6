"""Smart plugs against a local HTTP server that answers as the devices do.

The answers under tests/data/plugs/ are modelled on the devices' documented answers: a Shelly
Plus Plug S, a Shelly Pro 1PM (password-protected: HTTP digest authentication, SHA-256, user
admin; ``Shelly.GetDeviceInfo`` stays open) and a Shelly Plus PM Mini (``PM1``, no relay), each
from its local RPC; a Tasmota plug with an energy monitor (``Status 0`` and ``Status 8``); and their
error answers: Shelly's ``{"code": -105, ...}`` for an instance that does not exist and
``{"code": 404, "message": "No handler for ..."}`` for a component the device lacks, Tasmota's
``{"Command": "Unknown"}`` and ``{"WARNING": "Need user=<username>&password=<password>"}`` (401;
200 before version 12), a first-generation Shelly's ``/shelly``. The server fills in the live
figures (power, the energy counter, the relay), and can go away (every connection closed, the
port refusing) and come back on the same port.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from heatshare.domain.heat import EstimateModel, HeatAccountant, PlugReading
from heatshare.domain.readings import HostReading, Provenance, Snapshot
from heatshare.sensors.plugs import PlugKind, PlugReader, probe
from mosquitto_broker import free_port
from plug_replay import TASMOTA_ERRORS, FakePlug

PASSWORD = "correct horse"
MODEL = EstimateModel(cpu_idle_w=10.0, cpu_max_w=65.0)
WH = 3600.0


@pytest.fixture
def plugs() -> Iterator[list[FakePlug]]:
    started: list[FakePlug] = []
    yield started
    for plug in started:
        plug.released.set()
        plug.stop()


@pytest.fixture
def make_plug(plugs: list[FakePlug]) -> Any:
    def make(recording: str, *, password: str | None = None) -> FakePlug:
        plug = FakePlug(recording, password=password)
        plug.start()
        plugs.append(plug)
        return plug

    return make


def snap(t: float) -> Snapshot:
    """A CPU-only machine at 50 %: 37.5 W from the utilisation model."""
    return Snapshot(mono_s=t, wall_ts=1_800_000_000.0 + t, host=HostReading(cpu_pct=50.0))


# --- probe: which plug, and a first reading ---------------------------------------------------


def test_probe_finds_a_shelly_plus_plug_s(make_plug: Any) -> None:
    plug = make_plug("shelly_plus_plug_s")
    found = probe(plug.address, 2.0)
    assert found.ok, found.error
    assert found.kind is PlugKind.SHELLY
    assert found.model == "Shelly PlugS (SNPL-00112EU)"
    assert found.name is None
    assert found.reading == PlugReading(
        power_w=87.4, energy_total_j=15203.473 * WH, voltage_v=231.6, current_a=0.412
    )
    assert found.address == f"http://{plug.address}"
    assert [p for p, _ in plug.requests] == [
        "/rpc/Shelly.GetDeviceInfo",
        "/rpc/Switch.GetStatus?id=0",
    ]


def test_probe_finds_a_pm_mini_by_its_power_meter(make_plug: Any) -> None:
    plug = make_plug("shelly_plus_pm_mini")
    found = probe(f"http://{plug.address}/", 2.0)
    assert found.ok, found.error
    assert found.model == "Shelly PlusPMMini (SNPM-001PCEU16)"
    assert found.reading is not None
    assert found.reading.power_w == 62.8
    assert found.reading.energy_total_j == pytest.approx(3120.447 * WH)
    # No switch on this device: Shelly says so with a 404, and the power meter is read instead.
    assert [p for p, _ in plug.requests][1:] == [
        "/rpc/Switch.GetStatus?id=0",
        "/rpc/PM1.GetStatus?id=0",
    ]


def test_probe_finds_a_tasmota_plug(make_plug: Any) -> None:
    plug = make_plug("tasmota_energy_plug")
    found = probe(plug.address, 2.0)
    assert found.ok, found.error
    assert found.kind is PlugKind.TASMOTA
    assert found.model == "Tasmota 14.3.0(release-tasmota)"
    assert found.name == "Study PC plug"
    assert found.reading == PlugReading(
        power_w=143.0, energy_total_j=412.337 * 3_600_000.0, voltage_v=234.0, current_a=0.675
    )
    assert plug.requests[-1][0] == "/cm?cmnd=Status%200"


def test_a_protected_shelly_needs_its_password_sent_by_digest(make_plug: Any) -> None:
    plug = make_plug("shelly_pro_1pm", password=PASSWORD)
    found = probe(plug.address, 2.0)
    assert not found.ok
    assert found.kind is PlugKind.SHELLY
    assert found.name == "Study heater"
    assert found.error == (
        f"The Shelly at http://{plug.address} is protected by a password; give the password "
        "set in the Shelly app or its web page."
    )

    wrong = probe(plug.address, 2.0, password="wrong")
    assert wrong.error == f"The Shelly at http://{plug.address} refused the password."

    plug.requests.clear()
    right = probe(plug.address, 2.0, password=PASSWORD)
    assert right.ok, right.error
    assert right.reading is not None
    assert right.reading.power_w == 152.3
    assert right.reading.energy_total_j == pytest.approx(48211.903 * WH)
    # Challenged once, then answered with SHA-256 digest credentials; never the password itself.
    auths = [a for p, a in plug.requests if p.startswith("/rpc/Switch")]
    assert auths[0] is None
    assert auths[-1] is not None
    assert auths[-1].startswith("Digest ")
    assert 'algorithm="SHA-256"' in auths[-1]
    assert all(PASSWORD not in (a or "") for a in auths)


def test_a_protected_shelly_reader_keeps_reading(make_plug: Any) -> None:
    plug = make_plug("shelly_pro_1pm", password=PASSWORD)
    reader = PlugReader(PlugKind.SHELLY, plug.address, password=PASSWORD, timeout_s=1.0)
    try:
        for total in (48211.903, 48211.945, 48211.987):
            plug.total = total
            reading = reader.read()
            assert reading.error is None
            assert reading.energy_total_j == pytest.approx(total * WH)
    finally:
        reader.close()
    assert PlugReader(PlugKind.SHELLY, plug.address).read().error == (
        f"The Shelly at http://{plug.address} is protected by a password; give the password "
        "set in the Shelly app or its web page."
    )


@pytest.mark.parametrize("status", ["need_password", "need_password_before_12"])
def test_a_tasmota_web_password(make_plug: Any, status: str) -> None:
    plug = make_plug("tasmota_energy_plug", password=PASSWORD)
    plug.password_answer = status
    found = probe(plug.address, 2.0)
    assert found.kind is PlugKind.TASMOTA
    assert found.error == (
        f"The Tasmota device at http://{plug.address} is protected by a web password; give "
        "that password."
    )
    wrong = probe(plug.address, 2.0, password="wrong")
    assert wrong.error == f"The Tasmota device at http://{plug.address} refused the password."
    right = probe(plug.address, 2.0, password=PASSWORD)
    assert right.ok, right.error
    reader = PlugReader(PlugKind.TASMOTA, plug.address, password=PASSWORD)
    try:
        assert reader.read().power_w == 143.0
    finally:
        reader.close()
    no_password = PlugReader(PlugKind.TASMOTA, plug.address)
    try:
        assert no_password.read().error == found.error
    finally:
        no_password.close()


@pytest.mark.parametrize("recording", ["shelly_plus_plug_s", "tasmota_energy_plug"])
def test_a_plug_switched_off_is_not_this_computers(make_plug: Any, recording: str) -> None:
    plug = make_plug(recording)
    plug.output = False
    found = probe(plug.address, 2.0)
    assert not found.ok
    assert found.error is not None
    assert "is switched off, so this computer cannot be plugged into it" in found.error


def test_a_first_generation_shelly_is_named_and_refused(make_plug: Any) -> None:
    plug = make_plug("gen1")
    found = probe(plug.address, 2.0)
    assert found.error == (
        f"The device at http://{plug.address} is a first-generation Shelly (SHPLG-S); Heatshare "
        "reads Shelly plugs of the second generation and later (Plus, Pro, Gen3, Gen4) and "
        "Tasmota plugs."
    )


def test_a_web_server_that_is_no_plug(make_plug: Any) -> None:
    plug = make_plug("none")
    found = probe(plug.address, 2.0)
    assert found.kind is None
    assert found.error == (
        f"The device at http://{plug.address} answers, but not as a Shelly (Plus, Pro, Gen3, "
        "Gen4) or Tasmota plug does."
    )


def test_nothing_listening_is_not_reachable() -> None:
    port = free_port()
    found = probe(f"127.0.0.1:{port}", 2.0)
    assert found.error == (
        f"The plug at http://127.0.0.1:{port} cannot be reached (connection refused); check the "
        "address and that the plug is on."
    )


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("", "Give the plug's address, such as 192.168.1.50."),
        ("https://192.168.1.50", "Plugs answer on their home network over plain http"),
        ("192.168.1.50/rpc", "Give the plug's address alone (such as 192.168.1.50)"),
        ("192.168.1.50:99999", "'192.168.1.50:99999' is not an address."),
        ("admin:pw@192.168.1.50", "'admin:pw@192.168.1.50' is not an address."),
    ],
)
def test_an_address_that_is_no_address(address: str, error: str) -> None:
    found = probe(address, 0.5)
    assert found.error is not None
    assert found.error.startswith(error)


def test_tasmota_without_an_energy_monitor(make_plug: Any) -> None:
    plug = make_plug("tasmota_energy_plug")
    plug.status8 = TASMOTA_ERRORS["no_energy_monitor_status_8"]
    reader = PlugReader(PlugKind.TASMOTA, plug.address)
    try:
        reading = reader.read()
    finally:
        reader.close()
    assert reading == PlugReading(
        error=f"The Tasmota device at http://{plug.address} has no energy monitor, so it cannot "
        "measure the computer's power."
    )


def test_tasmota_with_two_metered_channels(make_plug: Any) -> None:
    plug = make_plug("tasmota_energy_plug")
    plug.status8 = TASMOTA_ERRORS["two_channels_status_8"]
    reader = PlugReader(PlugKind.TASMOTA, plug.address)
    try:
        reading = reader.read()
    finally:
        reader.close()
    assert reading.power_w is None
    assert reading.error is not None
    assert "meters several channels" in reading.error


def test_tasmota_unknown_command(make_plug: Any) -> None:
    plug = make_plug("tasmota_energy_plug")
    plug.status8 = TASMOTA_ERRORS["unknown_command"]["body"]
    reader = PlugReader(PlugKind.TASMOTA, plug.address)
    try:
        reading = reader.read()
    finally:
        reader.close()
    assert reading.error == (
        f"The device at http://{plug.address} does not know Tasmota's Status command: it is not "
        "Tasmota, or a build without it."
    )


def test_a_shelly_without_a_metered_switch(make_plug: Any) -> None:
    """A device with the Switch handler but no switch 0 (-105), and no power meter (404)."""
    plug = make_plug("shelly_plus_plug_s")
    plug.switch_ids = set()
    reader = PlugReader(PlugKind.SHELLY, plug.address)
    try:
        reading = reader.read()
    finally:
        reader.close()
    assert reading.error == (
        f"The Shelly at http://{plug.address} has no metered switch or power meter to read."
    )


# --- reading over time: a plug that goes away, a counter reset ------------------------------


@pytest.mark.parametrize(
    ("recording", "kind", "unit_j"),
    [
        ("shelly_plus_plug_s", PlugKind.SHELLY, WH),
        ("tasmota_energy_plug", PlugKind.TASMOTA, 1000 * WH),
    ],
)
def test_a_plug_that_goes_away_and_comes_back(
    make_plug: Any, recording: str, kind: PlugKind, unit_j: float
) -> None:
    """The heat follows the plug, the parts while it is gone, the plug again when it is back;
    the spell it was gone is booked once (by the parts), and the reader picks up again on its
    own, over a new connection (the kept-alive one died with the plug)."""
    plug = make_plug(recording)
    step = 0.1 * WH / unit_j  # 0.1 Wh a second: 360 W
    plug.power_w, plug.total = 360.0, 1000.0
    reader = PlugReader(kind, plug.address, timeout_s=1.0)
    acc = HeatAccountant(estimate=MODEL)
    ticks = []
    try:
        for i in range(9):
            if i == 3:
                plug.stop()
            if i == 5:
                plug.start()  # on the same port
            plug.total += step  # it counts on while it cannot be reached (a Wi-Fi dropout)
            reading = reader.read()
            ticks.append((reading, acc.update(snap(float(i)), reading)))
    finally:
        reader.close()

    for i in (0, 1, 2, 5, 6, 7, 8):
        reading, tick = ticks[i]
        assert reading.error is None, (i, reading.error)
        assert tick.provenance is Provenance.PLUG
        assert tick.heat_w == 360.0
    for i in (3, 4):
        reading, tick = ticks[i]
        assert reading.power_w is None
        assert reading.energy_total_j is None
        assert reading.error == (
            f"The plug at http://{plug.address} cannot be reached (connection refused); check "
            "the address and that the plug is on."
        )
        assert tick.plug_error == reading.error
        assert tick.provenance is Provenance.ESTIMATE
        assert tick.energy_j == pytest.approx(37.5)
    booked = [t.energy_j for _, t in ticks]
    # 0: first reading; 1, 2: deltas; 3, 4: the parts; 5: back, its reading over the second;
    # 6, 7, 8: deltas again.
    assert booked == pytest.approx([0.0, 360.0, 360.0, 37.5, 37.5, 360.0, 360.0, 360.0, 360.0])


def test_a_plug_that_hangs_times_out_and_comes_back(make_plug: Any) -> None:
    plug = make_plug("shelly_plus_plug_s")
    reader = PlugReader(PlugKind.SHELLY, plug.address, timeout_s=0.3)
    try:
        assert reader.read().error is None
        plug.hang.set()
        reading = reader.read()
        assert reading == PlugReading(
            error=f"The plug at http://{plug.address} did not answer within 0.3 s."
        )
        plug.hang.clear()
        plug.released.set()
        assert reader.read().power_w == 87.4
    finally:
        reader.close()


@pytest.mark.parametrize(
    ("recording", "kind", "before", "after", "unit_j"),
    [
        # A Shelly counts from zero again after a restart (a firmware update, a power cut).
        ("shelly_plus_plug_s", PlugKind.SHELLY, 15203.473, 0.004, WH),
        # Tasmota keeps its total across restarts; EnergyTotal 0 resets it.
        ("tasmota_energy_plug", PlugKind.TASMOTA, 412.337, 0.0, 1000 * WH),
    ],
)
def test_a_counter_reset_is_never_negative_energy(
    make_plug: Any, recording: str, kind: PlugKind, before: float, after: float, unit_j: float
) -> None:
    plug = make_plug(recording)
    plug.power_w = 200.0
    reader = PlugReader(kind, plug.address)
    acc = HeatAccountant(estimate=MODEL)
    booked = []
    try:
        for i, total in enumerate(
            [before, before + 0.1 * WH / unit_j, after, after + 0.1 * WH / unit_j]
        ):
            plug.total = total
            reading = reader.read()
            assert reading.energy_total_j == pytest.approx(total * unit_j)  # the plug's own figure
            tick = acc.update(snap(float(i)), reading)
            assert tick.provenance is Provenance.PLUG
            booked.append(tick.energy_j)
    finally:
        reader.close()
    # The reset's second is the power readings' (200 W); then deltas from the new baseline.
    assert booked == pytest.approx([0.0, 360.0, 200.0, 360.0])


def test_a_proxy_in_the_environment_is_not_used(
    make_plug: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plug is on the home network: a proxy set for the web (here one that refuses) must not
    stand between, nor must a CA bundle or .netrc of the environment."""
    plug = make_plug("shelly_plus_plug_s")
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert probe(plug.address, 2.0).ok
    reader = PlugReader(PlugKind.SHELLY, plug.address)
    try:
        assert reader.read().power_w == 87.4
    finally:
        reader.close()

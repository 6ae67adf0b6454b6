"""The real agent process, a replayed smart plug and a dynamic price list: the cost of heat
end to end, against a hand calculation to the micro-penny.

The plug is a local HTTP server answering as a Shelly Plus Plug S does
(``test_plugs_replay.FakePlug``); the test scripts its energy counter. Energy enters only as
counter steps of 2 Wh, each well inside one price of the list (the list's price changes at an
odd second, mid-hour), so the hand calculation is Σ step × price at the step. The utilisation
model is set to 0 W, so while the plug is away the fallback (the estimate) books no energy and
the hand calculation stays exact; the plug's own counting during that spell is, by design, not
booked a second time when it comes back, and a counter that restarts from zero books nothing
for its restart.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import requests

from agent_process import AgentProcess, spawn_agent
from heatshare.domain.readings import Provenance
from heatshare.protocol.client import AgentClient
from heatshare.protocol.discovery import read_token
from heatshare.protocol.energy import (
    EnergySettings,
    PlugKind,
    PlugSettings,
    PriceListImport,
    TariffKind,
    TariffSettings,
    UsualHeatingKind,
    UsualHeatingSettings,
)
from heatshare.protocol.local_api import SettingsPatch
from plug_replay import FakePlug

STEP_WH = 2.0  # one counter step: 7200 J, below what one second can plausibly pass
STEP_J = Fraction(7200)
PRICE_A = Decimal("95.12")  # p/kWh, as agile prices are published (minor units)
PRICE_B = Decimal("35.55")
FALLBACK = Decimal("0.30")  # £/kWh: the flat price, for times the list does not cover
GAS = Decimal("0.0725")  # £/kWh of gas
J_PER_KWH = 3_600_000


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout_s} s (last: {last!r})")


def plug_kwh(client: AgentClient) -> Decimal:
    return client.costs().today.kwh_by_source.get(Provenance.PLUG, Decimal(0))


def utc_iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def plug() -> Iterator[FakePlug]:
    p = FakePlug("shelly_plus_plug_s")
    p.power_w = 0.0
    p.total = 1000.0  # Wh
    p.start()
    yield p
    p.released.set()
    p.stop()


@pytest.fixture
def energy_agent(
    tmp_path: Path, spawn: list[AgentProcess], monkeypatch: pytest.MonkeyPatch
) -> AgentProcess:
    monkeypatch.setenv("TZ", "Europe/London")
    a = spawn_agent(tmp_path / "profile")
    spawn.append(a)
    a.wait_ready()
    return a


def raw_post(agent: AgentProcess, path: str, body: str) -> requests.Response:
    info = agent.wait_ready()
    return requests.post(
        info.base_url + path,
        data=body.encode(),
        headers={
            "Authorization": f"Bearer {read_token(agent.paths)}",
            "Content-Type": "application/json",
        },
        timeout=10,
    )


def test_the_cost_of_heat_end_to_end(energy_agent: AgentProcess, plug: FakePlug) -> None:
    client = energy_agent.client()
    # No estimate while the plug is away (0 W at any load), so every joule is the plug's.
    client.update_settings(
        SettingsPatch(estimate_cpu_idle_w=0.0, estimate_cpu_max_w=0.0, currency="GBP")
    )

    # A price list with a change at an odd second, a little ahead: mid-hour, mid-minute.
    now = time.time()
    change = math.floor(now) + 55
    start, end = math.floor(now) - 3600, math.floor(now) + 3600
    listing = (
        '{"results": ['
        f'{{"valid_from": "{utc_iso(change)}", "valid_to": "{utc_iso(end)}", '
        f'"value_inc_vat": {PRICE_B}}},'
        f'{{"valid_from": "{utc_iso(start)}", "valid_to": "{utc_iso(change)}", '
        f'"value_inc_vat": {PRICE_A}}}]}}'
    )
    info = client.import_prices(PriceListImport(format="json", text=listing))
    assert info.count == 2
    assert info.first == datetime.fromtimestamp(start, UTC)
    assert info.last == datetime.fromtimestamp(end, UTC)

    # Bad lists: 422, the row named; what is held is kept.
    bad_row = listing.replace(f'"value_inc_vat": {PRICE_A}', '"value_inc_vat": "lots"')
    resp = raw_post(
        energy_agent,
        "/v1/energy/prices",
        PriceListImport(format="json", text=bad_row).model_dump_json(),
    )
    assert resp.status_code == 422
    assert "row 2" in resp.json()["error"]
    assert "value_inc_vat" in resp.json()["error"]
    bad_csv = "valid_from,valid_to,value_inc_vat\n2026-11-27T00:00Z,2026-11-27T00:30Z,12.5\n"
    bad_csv += "2026-11-27T00:30Z,2026-11-27T00:15Z,13.0\n"
    resp = raw_post(
        energy_agent,
        "/v1/energy/prices",
        PriceListImport(format="csv", text=bad_csv).model_dump_json(),
    )
    assert resp.status_code == 422
    assert "line 3" in resp.json()["error"]
    assert client.price_list().count == 2

    saved = client.put_energy_settings(
        EnergySettings(
            plug=PlugSettings(address=plug.address, kind=PlugKind.SHELLY),
            tariff=TariffSettings(kind=TariffKind.DYNAMIC, price_per_kwh=FALLBACK),
            usual_heating=UsualHeatingSettings(
                kind=UsualHeatingKind.GAS_BOILER, fuel_price=GAS, efficiency_pct=90.0
            ),
        )
    )
    assert saved.tariff.price_per_kwh == FALLBACK
    assert client.settings().tariff_per_kwh == FALLBACK  # the one flat price

    wait_for(
        "the plug is the heat's source",
        lambda: client.status().heat_provenance is Provenance.PLUG,
    )
    plug.power_w = 118.5
    status = wait_for(
        "the plug's power shown", lambda: (s := client.status()).heat_w == 118.5 and s
    )
    assert not any("estimated" in w for w in status.warnings)  # the plug measures it all

    steps: list[tuple[float, Decimal]] = []  # (when, price £/kWh) of each booked step

    def step(price: Decimal) -> None:
        before = plug_kwh(client)
        at = time.time()
        assert plug.total is not None
        plug.total += STEP_WH
        wait_for(
            "the step booked",
            lambda: plug_kwh(client) >= before + Decimal("0.002"),
        )
        steps.append((at, price / 100))

    # A step is booked in the tick that sees it: an interval of about a second that may begin
    # up to a second before the step and end a second or two after it. Steps keep clear of the
    # change by more than that, so each is priced at one price alone.
    for _ in range(4):
        if time.time() > change - 8:
            break
        step(PRICE_A)
    assert steps, "the price change came too soon to step before it"
    while time.time() < change + 2.5:
        time.sleep(0.1)
    for _ in range(3):
        step(PRICE_B)

    # The plug goes away: the heat falls back, and the agent says so.
    plug.power_w = 0.0
    plug.stop()
    status = wait_for(
        "the heat falls back",
        lambda: (s := client.status()).heat_provenance is Provenance.ESTIMATE and s,
    )
    assert any("plug" in w and "estimate" in w for w in status.warnings), status.warnings
    costs = client.costs()
    assert costs.heat_source is Provenance.ESTIMATE
    assert costs.plug_error is not None
    # It counts on meanwhile; that spell is the fallback's to book (0 W here), not booked twice.
    plug.total = (plug.total or 0.0) + 3 * STEP_WH
    time.sleep(1.5)
    plug.start()
    wait_for("the plug is back", lambda: client.status().heat_provenance is Provenance.PLUG)
    time.sleep(2.5)  # a baseline on its new count
    step(PRICE_B)

    # The plug restarts and its counter from zero: nothing booked for the restart itself.
    plug.total = 0.5
    time.sleep(3.0)
    step(PRICE_B)
    time.sleep(1.5)

    # The hand calculation: each step's energy at its price, in micro-pence, exactly.
    micro = sum(STEP_J * Fraction(p) * 100 * 1_000_000 / J_PER_KWH for _, p in steps)
    assert micro.denominator == 1
    hand_micro = int(micro)
    hand_pence = round(Fraction(hand_micro, 1_000_000))
    energy_kwh = Decimal(len(steps) * 2) / 1000

    costs = client.costs()
    status = client.status()
    today = costs.today
    assert costs.currency == "GBP"
    assert costs.heat_source is Provenance.PLUG
    assert costs.price_now_per_kwh == PRICE_B / 100
    assert today.kwh_by_source == {Provenance.PLUG: energy_kwh}
    assert today.electricity_kwh == energy_kwh
    assert today.heat_kwh == energy_kwh
    assert today.electricity_cost_minor == hand_pence
    assert status.cost_today_minor == hand_pence  # the dashboard's figure, the same penny
    assert today.earnings_minor == 0
    assert today.net_cost_minor == hand_pence
    assert today.fallback_prices is False
    # Gas at 7.25 p/kWh, 90 % efficient, for the same heat.
    usual = Fraction(energy_kwh) / Fraction(9, 10) * Fraction(GAS) * 100
    assert today.usual_cost_minor == round(usual)
    assert today.saving_minor == round(usual) - hand_pence
    assert today.effective_micro_per_kwh == round(Fraction(hand_micro) / Fraction(energy_kwh))
    assert costs.month.electricity_cost_minor == hand_pence
    assert costs.season.electricity_cost_minor == hand_pence

    month = datetime.now(UTC).strftime("%Y-%m")
    statement = client.statement(month)
    assert statement.total.electricity_cost_minor == hand_pence
    assert statement.total.kwh_by_source == {Provenance.PLUG: energy_kwh}
    day = [line for line in statement.lines if line.electricity_kwh > 0]
    assert len(day) == 1
    assert day[0].electricity_cost_minor == hand_pence
    csv_text = client.statement_csv(month)
    assert csv_text.splitlines()[-1].startswith("total,")
    total_row = dict(
        zip(csv_text.splitlines()[0].split(","), csv_text.splitlines()[-1].split(","), strict=True)
    )
    assert total_row["kwh_plug"] == f"{energy_kwh:.3f}"
    assert total_row["electricity_cost_GBP"] == f"{Decimal(hand_pence) / 100:.2f}"

    # The records themselves, to the micro-penny, in the agent's SQLite file.
    db = energy_agent.paths.db_file
    assert energy_agent.terminate(10.0) == 0
    assert energy_agent.log_problems() == []
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT source, SUM(energy_j), SUM(cost_micro) FROM energy_record GROUP BY source"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [("plug", float(len(steps) * 7200), hand_micro)]


def test_a_damaged_stored_setting_falls_back_alone(
    tmp_path: Path, spawn: list[AgentProcess], plug: FakePlug
) -> None:
    profile = tmp_path / "profile"
    first = spawn_agent(profile)
    spawn.append(first)
    client = first.client()
    now = math.floor(time.time())
    client.import_prices(
        PriceListImport(
            format="csv",
            text=f"start,price\n{utc_iso(now - 1800)},0.21\n{utc_iso(now)},0.19\n",
        )
    )
    client.put_energy_settings(
        EnergySettings(
            plug=PlugSettings(address=plug.address, kind=PlugKind.SHELLY, password="pw"),
            tariff=TariffSettings(kind=TariffKind.DYNAMIC, price_per_kwh=Decimal("0.28")),
            usual_heating=UsualHeatingSettings(
                kind=UsualHeatingKind.HEAT_PUMP, cop=3.5, efficiency_pct=92.0
            ),
            season_start="10-01",
        )
    )
    assert first.terminate(10.0) == 0

    # One value out of range, one field of a newer version: the rest must survive.
    conn = sqlite3.connect(first.paths.db_file)
    try:
        raw = conn.execute("SELECT value FROM state WHERE key = 'energy.settings'").fetchone()[0]
        damaged = raw.replace('"cop":3.5', '"cop":99').replace(
            '"season_start"', '"newer_field":1,"season_start"'
        )
        assert damaged != raw
        conn.execute("UPDATE state SET value = ? WHERE key = 'energy.settings'", (damaged,))
        conn.commit()
    finally:
        conn.close()

    again = spawn_agent(profile)
    spawn.append(again)
    client = again.client()
    warnings = client.status().warnings
    assert any(
        "energy settings" in w and "usual_heating.cop" in w and "newer_field" in w for w in warnings
    ), warnings
    kept = client.energy_settings()
    assert kept.usual_heating.cop == 3.0  # back at its default
    assert kept.usual_heating.kind is UsualHeatingKind.HEAT_PUMP
    assert kept.usual_heating.efficiency_pct == 92.0
    assert kept.season_start == "10-01"
    assert kept.tariff.kind is TariffKind.DYNAMIC
    assert kept.tariff.price_per_kwh == Decimal("0.28")
    assert kept.plug is not None and kept.plug.address == plug.address
    assert kept.plug.password is None  # never given back
    assert client.price_list().count == 2
    wait_for("the plug is read", lambda: client.status().heat_provenance is Provenance.PLUG)
    assert again.terminate(10.0) == 0
    # The warning about the damage is the only problem the log holds.
    assert [p for p in again.log_problems() if "energy settings" not in p] == []

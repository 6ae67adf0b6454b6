"""The energy routes: a real service on a real SQLite file, served over HTTP, ticked by hand.

Two seams are scripted: the sensors (``test_api_support.FakeSensors``, one second a read) and
the plug reader (what ``sensors.plugs.PlugReader.read`` returns; the real reader against a
replayed Shelly is the integration test's). Everything behind them is real: the accountant,
the tariff, the records, the figures, the HTTP server and the client.

The clock starts at 2027-01-15 08:00:00 UTC, when London's clocks are on UTC.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_api_support import T0, TOKEN, Agent, FakeSensors, error_of

from heatshare.agent import cli
from heatshare.agent import energy as energy_module
from heatshare.agent.api import ApiServer
from heatshare.agent.energy import EnergyControl, FetchError
from heatshare.agent.service import AgentService, estimate_note
from heatshare.domain.heat import ComponentPower, EstimateModel, HeatAccountant, PlugReading
from heatshare.domain.readings import Provenance
from heatshare.protocol.client import AgentClient, AgentError
from heatshare.protocol.energy import (
    EnergySettings,
    PlugKind,
    PlugSettings,
    PriceAwareSettings,
    PriceListImport,
    TariffKind,
    TariffSettings,
    TouPeriodIn,
    UsualHeatingKind,
    UsualHeatingSettings,
)
from heatshare.protocol.local_api import EarningEntry, EarningsResponse, Settings, SettingsPatch
from heatshare.sensors.plugs import base_url
from heatshare.store import Store
from mosquitto_broker import free_port

LONDON = ZoneInfo("Europe/London")
KWH = 3_600_000
MONTH = "2027-01"


@dataclass
class ScriptedPlug:
    """What a plug's reader says: its power, its counter (J), or an error sentence."""

    kind: str
    address: str
    password: str | None
    power_w: float | None = 3600.0
    total_j: float | None = 5_000_000.0
    error: str | None = None
    closed: bool = False

    def read(self) -> PlugReading:
        if self.error is not None:
            return PlugReading(error=self.error)
        return PlugReading(power_w=self.power_w, energy_total_j=self.total_j)

    def close(self) -> None:
        self.closed = True


@dataclass
class Rig:
    agent: Agent
    client: AgentClient
    plugs: list[ScriptedPlug] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    fetch_answer: tuple[str, str] | Exception = ("application/json", "[]")

    @property
    def energy(self) -> EnergyControl:
        return self.agent.service.energy

    @property
    def plug(self) -> ScriptedPlug:
        return self.plugs[-1]

    def step(self, n: int = 1, watts: float = 3600.0) -> None:
        """n seconds: the plug counts ``watts`` each, is read, and the sampler ticks."""
        for _ in range(n):
            if self.plugs and self.plug.total_j is not None:
                self.plug.total_j += watts
            self.energy.read_plug()
            self.agent.tick()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    sensors = FakeSensors(gpu=False, cpu_pct=0.0)
    rig_box: list[Rig] = []

    def reader(kind: str, address: str, password: str | None) -> ScriptedPlug:
        base_url(address)  # the real reader's check of the address
        plug = ScriptedPlug(kind, address, password)
        rig_box[0].plugs.append(plug)
        return plug

    def fetch(url: str) -> tuple[str, str]:
        rig_box[0].fetched.append(url)
        answer = rig_box[0].fetch_answer
        if isinstance(answer, Exception):
            raise answer
        return answer

    db = tmp_path / "history.sqlite3"
    service = AgentService(
        Store.open(db, now=sensors.wall),
        sensors,  # type: ignore[arg-type]  # the fake stands in for SensorSuite
        HeatAccountant(estimate=EstimateModel(cpu_idle_w=10.0, cpu_max_w=65.0)),
        wall_clock=lambda: sensors.wall,
        utc_offset=lambda ts: 0,
        hostname="testhost",
        mono_clock=lambda: sensors.mono,
        tz=LONDON,
        plug_reader=reader,
        fetch_prices=fetch,
    )
    shutdown = threading.Event()
    api = ApiServer(service, TOKEN, host="127.0.0.1", port=0, on_shutdown=shutdown.set)
    api.start()
    agent = Agent(service, api, sensors, db, shutdown)
    agent.session.trust_env = False
    client = AgentClient(agent.url, TOKEN)
    rig_box.append(Rig(agent, client))
    yield rig_box[0]
    client.close()
    agent.close()


def put(rig: Rig, **kw: Any) -> EnergySettings:
    base = {"plug": PlugSettings(address="plug.local", kind=PlugKind.SHELLY)}
    return rig.client.put_energy_settings(EnergySettings(**{**base, **kw}))


def micro(energy_j: float, price: Decimal) -> Fraction:
    return Fraction(energy_j) * Fraction(price) * 100 * 1_000_000 / KWH


def pence(micro_total: Fraction) -> int:
    return round(micro_total / 1_000_000)


def stored_micro(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT SUM(cost_micro) FROM energy_record").fetchone()[0])
    finally:
        conn.close()


# -- settings ---------------------------------------------------------------------------------


def test_the_flat_price_is_the_agents_one_price(rig: Rig) -> None:
    assert rig.client.energy_settings().tariff.price_per_kwh == Settings().tariff_per_kwh
    rig.client.update_settings(SettingsPatch(tariff_per_kwh=Decimal("0.2831")))
    assert rig.client.energy_settings().tariff.price_per_kwh == Decimal("0.2831")
    put(rig, tariff=TariffSettings(price_per_kwh=Decimal("0.1999")))
    assert rig.client.settings().tariff_per_kwh == Decimal("0.1999")
    # Six places fit a tariff but not the agent's price (five): refused whole, nothing changed.
    resp = rig.agent.request(
        "PUT",
        "/v1/energy/settings",
        json={"tariff": {"price_per_kwh": "0.123456"}},
    )
    assert resp.status_code == 422
    assert "tariff" in error_of(resp)
    assert rig.client.settings().tariff_per_kwh == Decimal("0.1999")
    assert rig.client.energy_settings().plug is not None


def test_the_plug_password_is_never_given_back_and_kept_for_the_same_plug(rig: Rig) -> None:
    put(rig, plug=PlugSettings(address="plug.local", kind=PlugKind.SHELLY, password="pw-1"))
    assert rig.plug.password == "pw-1"
    raw = rig.agent.request("GET", "/v1/energy/settings")
    assert "pw-1" not in raw.text
    got = rig.client.energy_settings()
    assert got.plug is not None and got.plug.password is None
    put(rig, plug=got.plug, season_start="10-01")  # sent back as read: the password stays
    assert rig.energy.settings_stored().plug.password == "pw-1"  # type: ignore[union-attr]
    put(rig, plug=PlugSettings(address="other.local", kind=PlugKind.TASMOTA))
    assert rig.energy.settings_stored().plug.password is None  # type: ignore[union-attr]
    assert rig.plugs[-2].closed and rig.plug.kind == "tasmota"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            {
                "tariff": {
                    "kind": "time_of_use",
                    "periods": [
                        {"days": [0], "start_min": 60, "end_min": 180, "price_per_kwh": "0.1"},
                        {"days": [0], "start_min": 120, "end_min": 240, "price_per_kwh": "0.2"},
                    ],
                }
            },
            "overlap",
        ),
        ({"tariff": {"kind": "time_of_use"}}, "period"),
        ({"tariff": {"price_list_url": "http://prices.example/agile"}}, "price_list_url"),
        ({"season_start": "02-30"}, "02-30"),
        ({"usual_heating": {"cop": 0}}, "cop"),
        ({"plug": {"address": "", "kind": "shelly"}}, "address"),
        ({"plug": {"address": "https://plug.local/x", "kind": "shelly"}}, "plain http"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(
    rig: Rig, body: dict[str, Any], words: str
) -> None:
    before = rig.client.energy_settings()
    resp = rig.agent.request("PUT", "/v1/energy/settings", json=body)
    assert resp.status_code == 422
    assert words in error_of(resp)
    assert rig.client.energy_settings() == before


# -- the plug as the heat's source ---------------------------------------------------------------


def test_flat_costs_status_and_statement_agree_with_the_hand_sum(rig: Rig) -> None:
    put(rig, usual_heating=UsualHeatingSettings(kind=UsualHeatingKind.ELECTRIC_HEATER))
    rig.step(150)  # 2.5 minutes at 3600 W: the first tick is the baseline
    booked_j = 149 * 3600.0
    hand = micro(booked_j, Settings().tariff_per_kwh)
    costs = rig.client.costs()
    status = rig.client.status()
    assert costs.heat_source is Provenance.PLUG
    assert status.heat_provenance is Provenance.PLUG and status.heat_w == 3600.0
    assert not any("estimated" in w for w in status.warnings)
    assert costs.today.kwh_by_source == {Provenance.PLUG: Decimal("0.149")}
    assert costs.today.electricity_cost_minor == pence(hand) == 4  # 3.6505 p
    assert status.cost_today_minor == pence(hand)
    assert stored_micro(rig.agent.db) == hand
    # An electric heater at the same price costs what the machine did: no saving, no loss.
    assert costs.today.usual_cost_minor == pence(hand)
    assert costs.today.saving_minor == 0
    assert costs.today.earnings_minor == 0 and costs.today.earnings_note is None
    assert costs.price_now_per_kwh == Settings().tariff_per_kwh
    statement = rig.client.statement(MONTH)
    assert len(statement.lines) == 31
    assert statement.total.electricity_cost_minor == pence(hand)
    assert [ln.day for ln in statement.lines if ln.electricity_kwh] == ["2027-01-15"]
    assert statement.usual_heating is UsualHeatingKind.ELECTRIC_HEATER
    conn = sqlite3.connect(rig.agent.db)
    try:
        minutes = conn.execute("SELECT COUNT(*) FROM energy_record").fetchone()[0]
    finally:
        conn.close()
    assert minutes == 3  # a row a minute


def test_nothing_is_estimated_while_the_plug_measures() -> None:
    parts = [
        ComponentPower("gpu0", 180.0, Provenance.ENERGY_COUNTER, 180.0),
        ComponentPower("cpu", 15.5, Provenance.ESTIMATE, 15.5),
    ]
    note = estimate_note(parts)
    assert note is not None and "partly estimated" in note
    assert estimate_note(parts, Provenance.PLUG) is None
    assert estimate_note(parts, Provenance.ESTIMATE) == estimate_note(parts)


def test_a_plug_that_stops_answering_falls_back_and_says_so(rig: Rig) -> None:
    put(rig)
    rig.step(5)
    rig.plug.error = "The plug at http://plug.local cannot be reached (timed out)."
    rig.step(3)
    status = rig.client.status()
    assert status.heat_provenance is Provenance.ESTIMATE
    assert (
        "The plug at http://plug.local cannot be reached (timed out); the heat figure comes "
        "from an estimate from utilisation meanwhile." in status.warnings
    )
    costs = rig.client.costs()
    assert costs.heat_source is Provenance.ESTIMATE
    assert costs.plug_error == rig.plug.error
    assert Provenance.ESTIMATE in costs.today.kwh_by_source  # the idle CPU's 10 W, estimated
    rig.plug.error = None
    rig.step(3)
    assert rig.client.costs().heat_source is Provenance.PLUG
    # A plug read too long ago is not a reading of now.
    rig.agent.tick(4)
    status = rig.client.status()
    assert status.heat_provenance is Provenance.ESTIMATE
    assert any("has not answered for" in w for w in status.warnings)


def test_a_counter_reset_books_no_made_up_energy(rig: Rig) -> None:
    put(rig)
    rig.step(3)
    rig.plug.power_w = 0.0
    rig.plug.total_j = 10.0  # the plug restarted: its counter from zero
    rig.step(1, watts=0.0)
    rig.plug.power_w = 3600.0
    rig.step(2)
    # Two ticks before the reset, none for the reset itself (power 0), two after.
    assert rig.client.costs().today.kwh_by_source == {Provenance.PLUG: Decimal("0.004")}


# -- tariffs --------------------------------------------------------------------------------------


def test_a_dynamic_price_that_changes_mid_tick_is_split_and_the_fallback_flagged(
    rig: Rig,
) -> None:
    start = datetime.fromtimestamp(T0, UTC)
    change = start + timedelta(seconds=30.5)  # half way through a tick
    end = start + timedelta(seconds=60)
    text = (
        "valid_from,valid_to,value_inc_vat\n"
        f"{start.isoformat()},{change.isoformat()},20.00\n"
        f"{change.isoformat()},{end.isoformat()},40.00\n"
    )
    info = rig.client.import_prices(PriceListImport(format="csv", text=text))
    assert (info.count, info.first, info.last) == (2, start, end)
    put(rig, tariff=TariffSettings(kind=TariffKind.DYNAMIC, price_per_kwh=Decimal("0.25")))
    rig.step(70)  # walls T0+1 … T0+70: ticks [T0+1, T0+2) … [T0+69, T0+70)
    hand = Fraction(0)
    for t in range(1, 70):  # intervals [T0+t, T0+t+1); the tick ending at T0+1 is the baseline
        if t + 1 <= 30:
            hand += micro(3600.0, Decimal("0.20"))
        elif t == 30:  # [30, 31): half at 20 p, half at 40 p
            hand += micro(1800.0, Decimal("0.20")) + micro(1800.0, Decimal("0.40"))
        elif t + 1 <= 60:
            hand += micro(3600.0, Decimal("0.40"))
        else:
            hand += micro(3600.0, Decimal("0.25"))
    assert stored_micro(rig.agent.db) == hand
    costs = rig.client.costs()
    assert costs.today.electricity_cost_minor == pence(hand) == 2  # 2.02 p
    assert rig.client.status().cost_today_minor == pence(hand)
    assert costs.today.fallback_prices is True
    assert costs.price_now_fallback is True and costs.price_now_per_kwh == Decimal("0.25")


def test_a_time_of_use_period_prices_its_own_minutes(rig: Rig) -> None:
    cheap = TouPeriodIn(days=[4], start_min=8 * 60 + 1, end_min=8 * 60 + 2, price_per_kwh="0.05")
    put(
        rig,
        tariff=TariffSettings(
            kind=TariffKind.TIME_OF_USE, price_per_kwh=Decimal("0.30"), periods=[cheap]
        ),
    )
    rig.step(121)  # a Friday, 08:00:01 to 08:02:01 London time
    hand = sum(
        micro(3600.0, Decimal("0.05") if 60 <= t < 120 else Decimal("0.30")) for t in range(1, 121)
    )
    assert stored_micro(rig.agent.db) == hand
    assert rig.client.costs().today.electricity_cost_minor == pence(hand)


# -- price lists ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "text", "words"),
    [
        ("csv", "start,price\n2027-01-15T08:00Z,0.2\n2027-01-15T08:30Z,cheap\n", "line 3"),
        ("csv", "when,cost\n2027-01-15T08:00Z,0.2\n", "line 1"),
        ("csv", "start,price\n", "holds no prices"),
        ("json", '{"results": [{"valid_from": "yesterday", "value_inc_vat": 1}]}', "row 1"),
        ("json", '{"results": [', "not valid JSON"),
    ],
)
def test_a_bad_price_list_is_refused_naming_the_row(
    rig: Rig, fmt: str, text: str, words: str
) -> None:
    rig.client.import_prices(
        PriceListImport(
            format="csv", text="start,price\n2027-01-15T07:00Z,0.2\n2027-01-15T07:30Z,0.3\n"
        )
    )
    resp = rig.agent.request("POST", "/v1/energy/prices", json={"format": fmt, "text": text})
    assert resp.status_code == 422
    assert words in error_of(resp)
    assert rig.client.price_list().count == 2  # what was held is kept


def test_prices_in_pence_or_pounds(rig: Rig) -> None:
    text = "start,price\n2027-01-15T08:00Z,24.5\n2027-01-15T08:30Z,-1.25\n"
    rig.client.import_prices(PriceListImport(format="csv", text=text))  # auto: pence
    # Held, but the flat tariff applies until the dynamic one is chosen.
    flat = rig.energy.tariff()
    assert flat.price_at(datetime.fromtimestamp(T0, UTC)).per_kwh == Settings().tariff_per_kwh
    put(rig, tariff=TariffSettings(kind=TariffKind.DYNAMIC))
    tariff = rig.energy.tariff()
    assert tariff.price_at(datetime.fromtimestamp(T0, UTC)).per_kwh == Decimal("0.245")
    assert tariff.price_at(datetime.fromtimestamp(T0 + 1800, UTC)).per_kwh == Decimal("-0.0125")
    rig.client.import_prices(PriceListImport(format="csv", text=text, unit="major"))
    tariff = rig.energy.tariff()
    assert tariff.price_at(datetime.fromtimestamp(T0, UTC)).per_kwh == Decimal("24.5")


def test_the_price_list_url_is_fetched_and_a_failure_keeps_the_prices(rig: Rig) -> None:
    url = "https://prices.example/agile.json"
    rig.fetch_answer = (
        "application/json",
        '{"results": [{"valid_from": "2027-01-15T08:00:00Z", "valid_to": '
        '"2027-01-15T08:30:00Z", "value_inc_vat": 19.95}]}',
    )
    put(rig, tariff=TariffSettings(kind=TariffKind.DYNAMIC, price_list_url=url))
    info = rig.energy.fetch_now(url)
    assert rig.fetched == [url]
    assert info.count == 1 and info.error is None
    assert info.fetched_at == datetime.fromtimestamp(rig.agent.sensors.wall, UTC)
    rig.fetch_answer = FetchError(f"The price list at {url} could not be fetched: Timeout.")
    info = rig.energy.fetch_now(url)
    assert info.count == 1
    assert info.error == f"The price list at {url} could not be fetched: Timeout."
    assert rig.client.price_list() == info
    rig.fetch_answer = ("text/csv", "start,price\n")
    info = rig.energy.fetch_now(url)
    assert info.count == 1
    assert info.error is not None and "holds no prices" in info.error


def test_a_fetch_answered_after_the_stop_writes_nothing(rig: Rig) -> None:
    url = "https://prices.example/agile.json"
    rig.fetch_answer = ("text/csv", "start,price\n2027-01-15T08:00Z,0.2\n2027-01-15T08:30Z,0.3\n")
    rig.energy.stop()  # as the agent's stop does, with the store still open
    assert rig.energy.fetch_now(url).count == 0
    assert rig.fetched == [url]
    assert rig.client.price_list().count == 0
    assert rig.client.price_list().fetched_at is None


# -- statements -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("", "Name the month"),
        ("?month=2027-13", "YYYY-MM"),
        ("?month=Jan", "YYYY-MM"),
        ("?month=2027-01&format=pdf", "json or csv"),
        ("?month=2027-01&year=2027", "does not take"),
    ],
)
def test_a_bad_statement_request_says_why(rig: Rig, query: str, words: str) -> None:
    resp = rig.agent.request("GET", "/v1/energy/statement" + query)
    assert resp.status_code == 400
    assert words in error_of(resp)


def test_the_statement_as_csv(rig: Rig) -> None:
    put(rig)
    rig.step(61)
    resp = rig.agent.request("GET", "/v1/energy/statement?month=2027-01&format=csv")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    lines = resp.text.splitlines()
    assert len(lines) == 1 + 31 + 1
    row = dict(zip(lines[0].split(","), lines[15].split(","), strict=True))
    assert row["date"] == "2027-01-15"
    assert row["kwh_plug"] == "0.060"
    assert row["electricity_cost_GBP"] == "0.01"  # 1.47 p
    assert rig.client.statement_csv(MONTH) == resp.text


# -- earnings -----------------------------------------------------------------------------------


def _earnings(currency: str, *amounts: tuple[float, int]) -> EarningsResponse:
    return EarningsResponse(
        currency=currency,
        balance_minor=0,
        account_balance_minor=0,
        today_minor=0,
        entries=[
            EarningEntry(at=datetime.fromtimestamp(t, UTC), amount_minor=a, kind="job")
            for t, a in amounts
        ],
    )


def test_earnings_count_only_in_the_tariffs_currency(tmp_path: Path) -> None:
    wall = [T0 + 3600]
    answer: list[EarningsResponse | None] = [None]
    settings = Settings()
    with Store.open(tmp_path / "h.sqlite3", now=T0) as store:
        energy = EnergyControl(
            store,
            base_settings=lambda: settings,
            set_flat_price=lambda price: None,
            wall=lambda: wall[0],
            tz=LONDON,
            hostname="testhost",
            earnings=lambda: answer[0],
        )
        # 10 minutes at 3.6 kW: 0.6 kWh at 24.5 p = 14.7 p.
        for t in range(600):
            assert energy.book(Provenance.PLUG, 3600.0, 1.0, T0 + t + 1) == 24_500
        answer[0] = _earnings("CRD", (T0 + 60, 500))
        costs = energy.costs(Provenance.PLUG, None)
        assert costs.today.earnings_minor == 0
        assert costs.today.earnings_note is not None and "demo credits" in costs.today.earnings_note
        assert energy.recent_earnings_per_kwh() is None
        answer[0] = _earnings("GBP", (T0 + 60, 9), (T0 - 86400 * 40, 1000))
        costs = energy.costs(Provenance.PLUG, None)
        assert costs.today.electricity_cost_minor == 15  # 14.7 p
        assert costs.today.earnings_minor == 9
        assert costs.today.net_cost_minor == 15 - 9
        assert costs.today.effective_micro_per_kwh == round(
            Fraction(14_700_000 - 9_000_000, 6) * 10
        )
        assert costs.month.earnings_minor == 9  # the old entry is December's
        statement = energy.statement(MONTH)
        assert statement.total.earnings_minor == 9
        assert statement.total.kwh_by_source == {Provenance.PLUG: Decimal("0.600")}
        assert energy.recent_earnings_per_kwh() == Decimal("0.15")  # 9 p / 0.6 kWh
        answer[0] = None
        assert energy.costs(Provenance.PLUG, None).today.earnings_minor == 0


def test_the_plan_comes_from_the_heating_loop(rig: Rig) -> None:
    start = datetime.fromtimestamp(T0, UTC)
    rows = "".join(
        f"{(start + timedelta(minutes=30 * i)).isoformat()},{10 + (i % 4) * 10}\n"
        for i in range(48)
    )
    rig.client.import_prices(PriceListImport(format="csv", text="start,price\n" + rows))
    put(
        rig,
        tariff=TariffSettings(kind=TariffKind.DYNAMIC),
        price_aware=PriceAwareSettings(enabled=True, band_c=1.0),
    )
    rig.step(2)
    rig.agent.service.heating.step()
    plan = rig.client.costs().plan
    assert plan
    assert plan[0].start == datetime.fromtimestamp(rig.agent.sensors.wall, UTC)
    assert {p.price_per_kwh for p in plan if p.fallback} <= {Decimal("0.245")}
    assert {p.price_per_kwh for p in plan if not p.fallback} == {
        Decimal("0.1"),
        Decimal("0.2"),
        Decimal("0.3"),
        Decimal("0.4"),
    }


# -- the command line -----------------------------------------------------------------------------


def test_the_energy_command(rig: Rig, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    put(rig)
    rig.step(61)
    where = ["--connect", f"127.0.0.1:{rig.agent.api.port}", "--token", TOKEN]
    assert cli.main(["energy", *where]) == 0
    out = capsys.readouterr().out
    assert "measured at the wall plug" in out
    assert "£0.01" in out
    assert cli.main(["energy", "statement", MONTH, "--csv", *where]) == 0
    assert capsys.readouterr().out == rig.client.statement_csv(MONTH)
    assert cli.main(["energy", "statement", MONTH, *where]) == 0
    assert "2027-01-15" in capsys.readouterr().out
    good = tmp_path / "agile.csv"
    good.write_text("start,price\n2027-01-15T08:00Z,21.5\n2027-01-15T08:30Z,22.5\n")
    assert cli.main(["energy", "prices", "import", str(good), *where]) == 0
    assert "Imported: 2 prices" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("start,price\n2027-01-15T08:00Z,cheap\n")
    assert cli.main(["energy", "prices", "import", str(bad), *where]) == 1
    assert "line 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["energy", "statement", "January", *where])
    assert exc.value.code == 2
    assert "YYYY-MM" in capsys.readouterr().err


def test_an_agent_error_is_a_sentence(rig: Rig) -> None:
    with pytest.raises(AgentError, match="YYYY-MM"):
        rig.client.statement("2027-1")


# -- the real fetch, against a local server -------------------------------------------------------


@pytest.fixture
def price_server() -> Iterator[str]:
    answers = {
        "/agile.json": (200, "application/json", b'{"results": []}'),
        "/down": (503, "text/plain", b"maintenance"),
        "/big.csv": (200, "text/csv", b"start,price\n" + b"x" * 200),
        "/bom.csv": (200, "text/csv", "\ufeffstart,price\n€".encode()),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, ctype, body = answers.get(self.path, (404, "text/plain", b"no"))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="price-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_the_real_fetch(price_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert energy_module._real_fetch(price_server + "/agile.json") == (
        "application/json",
        '{"results": []}',
    )
    assert energy_module._real_fetch(price_server + "/bom.csv") == ("text/csv", "start,price\n€")
    with pytest.raises(FetchError, match="the server answered 503"):
        energy_module._real_fetch(price_server + "/down")
    monkeypatch.setattr(energy_module, "MAX_PRICE_LIST_BYTES", 100)
    with pytest.raises(FetchError, match="larger than"):
        energy_module._real_fetch(price_server + "/big.csv")
    closed = free_port()
    with pytest.raises(FetchError, match="could not be fetched: ConnectionError"):
        energy_module._real_fetch(f"http://127.0.0.1:{closed}/agile.json")

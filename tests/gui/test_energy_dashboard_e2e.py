"""The dashboard's cost of heat end to end: a real agent, a replayed smart plug, a dynamic price
list, and the real app, against a hand calculation to the penny.

The agent (tests/gui/agentproc.py, its own temp profile) reads a local server answering as a
Shelly Plus Plug S does (tests/plug_replay.py); the test scripts its energy counter. Energy
enters only as counter steps of 2 Wh, each in a tick of its own and well clear of the price
list's change (at an odd second, mid-hour), so each is priced at one price alone. The
utilisation model is 0 W, so nothing else is booked. Once the last step is booked the counter
stands still: the agent's minute records no longer change, so the app's figures and the
agent's are of the same moment and must be exact, not ±1p.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from agentproc import RealAgent
from appfactory import AppFactory
from pytestqt.qtbot import QtBot

from heatshare.domain.readings import Provenance
from heatshare.gui.cost_cards import PeriodCard
from heatshare.protocol.client import AgentClient
from heatshare.protocol.energy import (
    CostFigures,
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

STEP_WH = 2.0  # one counter step: 7200 J, inside what one ~1 s tick may pass (a plug's 16 A)
STEPS_A = 4  # steps before the price change
STEPS_B = 4  # and after it
PRICE_A = Decimal("95.12")  # p/kWh, as agile prices are published
PRICE_B = Decimal("35.55")
FALLBACK = Decimal("0.30")  # £/kWh: the flat price, for times the list does not cover
GAS = Decimal("0.0725")  # £/kWh of gas, the usual heating
CHANGE_AHEAD_S = 17  # the price change, this far after the list is imported
CLEAR_S = 2.5  # a step keeps this far from the change (a tick spans about a second)

# The hand calculation (pence; 1 kWh = 1000 Wh):
#   before the change: 4 steps × 2 Wh = 8 Wh = 0.008 kWh × 95.12 p/kWh = 0.76096 p
#   after the change:  4 steps × 2 Wh = 8 Wh = 0.008 kWh × 35.55 p/kWh = 0.28440 p
#   electricity: 0.016 kWh, cost 0.76096 + 0.28440 = 1.04536 p → 1 p, shown "£0.01"
#   heat delivered: all of it, 0.016 kWh, shown "0.016 kWh"
#   earnings: 0 (no network), so the net cost is also 1 p, "£0.01"
#   cost per kWh of heat: 1.04536 p / 0.016 kWh = 65.335 p/kWh = £0.65335 → "£0.653" (a tenth
#     of a penny; from the unrounded micro-pence, not from the rounded penny)
#   gas for the same heat: 0.016 kWh / 0.90 × 7.25 p = 0.128888… p → 0 p, "£0.00";
#     per kWh of heat 7.25 / 0.90 = 8.0555… p → "£0.081"
#   saving: 0 − 1 = −1 p: an extra cost of "£0.01"
ENERGY_KWH = Decimal("0.016")
HAND_MICRO = 1_045_360  # micro-pence: 1.04536 p
HAND_PENCE = 1
HAND_EFFECTIVE_MICRO = 65_335_000  # micro-pence per kWh of heat
HAND_USUAL_PENCE = 0
HAND_USUAL_MICRO = 8_055_556  # 7.25 / 0.9 p = 8.0555… p, to the micro-penny
SHOWN = {
    "Heat delivered": "0.016 kWh",
    "Electricity": "£0.01",
    "Earnings": "£0.00",
    "Net cost": "£0.01",
    "Gas boiler would have cost": "£0.00",
    "Extra cost": "£0.01",
}
SHOWN_HEADLINE = "£0.653 per kWh of heat"
SHOWN_USUAL = "gas boiler: £0.081 per kWh"


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout_s} s (last: {last!r})")


def utc_iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def plug_kwh(client: AgentClient) -> Decimal:
    return client.costs().today.kwh_by_source.get(Provenance.PLUG, Decimal(0))


def card_rows(card: PeriodCard) -> dict[str, str]:
    return {
        a.text(): b.text()
        for a, b in zip(card.labels, card.values, strict=True)
        if not a.isHidden()
    }


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
def client(real_agent: RealAgent) -> Iterator[AgentClient]:
    c = real_agent.started[-1].client()
    yield c
    c.close()


def book_the_steps(client: AgentClient, plug: FakePlug) -> None:
    """The price list, then the counter's steps on either side of its change, each booked."""
    client.update_settings(
        SettingsPatch(estimate_cpu_idle_w=0.0, estimate_cpu_max_w=0.0, currency="GBP")
    )
    client.put_energy_settings(
        EnergySettings(
            plug=PlugSettings(address=plug.address, kind=PlugKind.SHELLY),
            tariff=TariffSettings(kind=TariffKind.DYNAMIC, price_per_kwh=FALLBACK),
            usual_heating=UsualHeatingSettings(
                kind=UsualHeatingKind.GAS_BOILER, fuel_price=GAS, efficiency_pct=90.0
            ),
        )
    )
    wait_for(
        "the plug is the heat's source",
        lambda: client.status().heat_provenance is Provenance.PLUG,
    )
    plug.power_w = 118.5

    # Imported through the API as an agile list is published: newest first, pence, a change
    # at an odd second a little ahead (mid-hour, mid-minute).
    now = time.time()
    change = math.floor(now) + CHANGE_AHEAD_S
    start, end = math.floor(now) - 3600, math.floor(now) + 3600
    listing = (
        '{"results": ['
        f'{{"valid_from": "{utc_iso(change)}", "valid_to": "{utc_iso(end)}", '
        f'"value_inc_vat": {PRICE_B}}},'
        f'{{"valid_from": "{utc_iso(start)}", "valid_to": "{utc_iso(change)}", '
        f'"value_inc_vat": {PRICE_A}}}]}}'
    )
    assert client.import_prices(PriceListImport(format="json", text=listing)).count == 2
    assert plug_kwh(client) == 0  # nothing booked yet: the counter has not moved

    def step() -> None:
        before = plug_kwh(client)
        assert plug.total is not None
        plug.total += STEP_WH
        wait_for(
            "the step booked",
            lambda: plug_kwh(client) >= before + Decimal("0.002"),
        )

    for _ in range(STEPS_A):
        # Too slow a machine would put a step across the change: fail, do not misprice.
        assert time.time() < change - CLEAR_S, "the price change came before the steps"
        step()
    while time.time() < change + CLEAR_S:
        time.sleep(0.1)
    for _ in range(STEPS_B):
        step()
    assert plug_kwh(client) == ENERGY_KWH
    # The counter stands still from here: what is booked is final.
    time.sleep(1.5)
    assert plug_kwh(client) == ENERGY_KWH


def check_figures(f: CostFigures) -> None:
    assert f.kwh_by_source == {Provenance.PLUG: ENERGY_KWH}
    assert f.electricity_kwh == ENERGY_KWH
    assert f.heat_kwh == ENERGY_KWH
    assert f.electricity_cost_minor == HAND_PENCE
    assert f.earnings_minor == 0
    assert f.net_cost_minor == HAND_PENCE
    assert f.effective_micro_per_kwh == HAND_EFFECTIVE_MICRO
    assert f.usual_cost_minor == HAND_USUAL_PENCE
    assert f.usual_micro_per_kwh == HAND_USUAL_MICRO
    assert f.saving_minor == HAND_USUAL_PENCE - HAND_PENCE
    assert f.fallback_prices is False


def test_the_dashboard_shows_the_hand_calculated_cost_of_heat(
    qtbot: QtBot,
    real_agent: RealAgent,
    client: AgentClient,
    plug: FakePlug,
    make_app: AppFactory,
) -> None:
    book_the_steps(client, plug)

    # The agent's figures: the hand calculation, to the penny and the micro-penny per kWh.
    costs = client.costs()
    assert costs.currency == "GBP"
    assert costs.heat_source is Provenance.PLUG
    assert costs.price_now_per_kwh == PRICE_B / 100
    check_figures(costs.today)
    check_figures(costs.month)
    assert client.status().cost_today_minor == HAND_PENCE

    # The real app on the same profile.
    app = make_app(agent=real_agent)
    panel = app.energy.panel
    dashboard = app.window.dashboard
    # The costs, the energy settings (the usual heating's name) and the status arrive
    # apart: wait for all three.
    qtbot.waitUntil(
        lambda: (
            panel.costs is not None
            and panel.usual is UsualHeatingKind.GAS_BOILER
            and dashboard.status is not None
            and dashboard.price_now is not None
        ),
        timeout=15_000,
    )
    assert not panel.error_banner.isVisible()

    for card in (panel.today, panel.month):
        assert card.headline.text() == SHOWN_HEADLINE
        assert card.headline_detail.text() == SHOWN_USUAL
        rows = card_rows(card)
        for label, value in SHOWN.items():
            assert rows[label] == value, (card.title.text(), label, rows)
        assert "Saving" not in rows  # an extra cost, said as one
    assert panel.source.text() == (
        "Heat measured by the smart plug · Electricity now £0.3555 per kWh"
    )
    assert not panel.plug_banner.isVisible()
    # The "Electricity cost today" card: the agent's status, the same penny.
    assert dashboard.cost.value.text() == "£0.01"
    assert dashboard.cost.detail.text() == "now £0.3555 per kWh"

    # And the app shows what the agent says now: the same figures, no booking between.
    assert panel.costs is not None
    again = client.costs()
    for shown, said in ((panel.costs.today, again.today), (panel.costs.month, again.month)):
        assert shown == said
        check_figures(said)
    assert client.status().cost_today_minor == HAND_PENCE

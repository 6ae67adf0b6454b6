"""The fake agent's energy routes (``/v1/energy…``, issue 5's agreed API), at the client seam.

The figures are not made up on the spot: the fake books a record an hour (a machine drawing
what a heater of its kind draws, measured by a smart plug, at an agile-like price curve with a
dear 16:00–19:00 peak and cheap nights) and computes the costs, the statement and its CSV with
the domain's own functions, the ones the agent uses. Errors are the agreed ones: a bad input
is an ``AgentError(422, sentence)``; a plug that does not answer is ``ok=False`` with the
sentence ``sensors/plugs.py`` gives; the plug password is kept and never returned.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from heatshare.domain.heat_cost import (
    EmissionFactors,
    EnergyRecord,
    UsualHeating,
    day_bounds,
    heat_cost,
    month_bounds,
    totals,
)
from heatshare.domain.money import J_PER_KWH, MICRO
from heatshare.domain.readings import Provenance
from heatshare.domain.statement import Statement, StatementLine, monthly_statement, statement_csv
from heatshare.domain.tariffs import PriceListError, PriceUnit, parse_price_csv, parse_price_json
from heatshare.protocol.client import AgentError
from heatshare.protocol.energy import (
    CostFigures,
    CostsResponse,
    EnergySettings,
    PlanSlot,
    PlugKind,
    PlugProbeRequest,
    PlugProbeResponse,
    PlugSettings,
    PriceListImport,
    PriceListInfo,
    StatementLineOut,
    StatementResponse,
    TariffKind,
    TariffSettings,
    UsualHeatingKind,
    UsualHeatingSettings,
)
from heatshare.protocol.local_api import AgentStatus

HOUSEHOLD_TZ = ZoneInfo("Europe/London")
SHELLY_ADDRESS = "192.168.1.40"
SHELLY_PASSWORD = "plug-secret"  # the stored one; it never comes back
TASMOTA_ADDRESS = "192.168.1.41"
GAS_PRICE = Decimal("0.0635")  # £ per kWh of gas
EARNINGS_PER_KWH_MICRO = 9 * MICRO  # 9p a kWh from a network paying in pounds


def agile_price(at: datetime) -> Decimal:
    """£ per kWh at ``at``: cheap nights, a dear late-afternoon peak (an agile-like curve)."""
    hour = at.astimezone(HOUSEHOLD_TZ).hour
    if hour < 7:
        return Decimal("0.1242")
    if 16 <= hour < 19:
        return Decimal("0.3815")
    return Decimal("0.2268")


def heater_watts(at: datetime) -> float:
    """What a small GPU heater draws: full in the cold morning and evening, less by day.

    Colder days (a week-long swell of the weather) draw more.
    """
    local = at.astimezone(HOUSEHOLD_TZ)
    weather = 1.0 + 0.3 * math.sin(local.toordinal() * 2 * math.pi / 9)
    hour = local.hour
    if hour < 6:
        base = 238.0
    elif hour < 9 or hour >= 19:
        base = 212.0
    elif 16 <= hour < 19:
        base = 64.0  # price-aware: held back in the peak
    else:
        base = 146.0
    return min(260.0, base * weather)


def book(start: datetime, end: datetime, *, earn: bool) -> list[EnergyRecord]:
    """A record an hour over ``[start, end)``, as the agent books them (measured by the plug)."""
    records = []
    at = start
    while at < end:
        nxt = min(at + timedelta(hours=1), end)
        joules = heater_watts(at) * (nxt - at).total_seconds()
        cost = round(Decimal(joules) / J_PER_KWH * agile_price(at) * 100 * MICRO)
        earned = round(joules / J_PER_KWH * EARNINGS_PER_KWH_MICRO) if earn else 0
        records.append(EnergyRecord(at, nxt, Provenance.PLUG, joules, cost, earned))
        at = nxt
    return records


def _usual(settings: EnergySettings) -> UsualHeating | None:
    u = settings.usual_heating
    flat = settings.tariff.price_per_kwh
    if u.kind is UsualHeatingKind.GAS_BOILER:
        return UsualHeating.gas_boiler(
            u.fuel_price or GAS_PRICE, Decimal(str(u.efficiency_pct / 100))
        )
    if u.kind is UsualHeatingKind.HEAT_PUMP:
        return UsualHeating.heat_pump(u.fuel_price or flat, Decimal(str(u.cop)))
    if u.kind is UsualHeatingKind.ELECTRIC_HEATER:
        return UsualHeating.electric_heater(u.fuel_price or flat)
    if u.kind is UsualHeatingKind.OIL_BOILER:
        return UsualHeating.oil_boiler(
            u.fuel_price or Decimal("0.62"), Decimal(str(u.efficiency_pct / 100))
        )
    return None


def _factors(settings: EnergySettings) -> EmissionFactors:
    u = settings.usual_heating
    d = EmissionFactors()
    return EmissionFactors(
        u.co2_gas_kg_per_kwh if u.co2_gas_kg_per_kwh is not None else d.gas,
        u.co2_oil_kg_per_kwh if u.co2_oil_kg_per_kwh is not None else d.oil,
        u.co2_grid_kg_per_kwh if u.co2_grid_kg_per_kwh is not None else d.grid,
    )


def _kwh(joules: float) -> Decimal:
    return Decimal(round(joules / 3600)) / 1000  # to the watt-hour


def figures(
    period: str, start: datetime, end: datetime, records: list[EnergyRecord], s: EnergySettings
) -> CostFigures:
    span = totals(records, start, end)
    f = heat_cost(span, _usual(s), _factors(s))
    return CostFigures(
        period=period,  # type: ignore[arg-type]  # one of the three names
        start=span.start,
        end=span.end,
        electricity_kwh=_kwh(span.energy_j),
        kwh_by_source={p: _kwh(j) for p, j in span.energy_j_by_source.items()},
        heat_kwh=f.heat_kwh,
        electricity_cost_minor=f.electricity_cost_minor,
        earnings_minor=f.earnings_minor,
        net_cost_minor=f.net_cost_minor,
        effective_micro_per_kwh=f.effective_micro_per_kwh,
        effective_note=f.effective_note,
        usual_cost_minor=f.usual_cost_minor,
        usual_micro_per_kwh=f.usual_micro_per_kwh,
        saving_minor=f.saving_minor,
        co2_avoided_g=f.co2_avoided_g,
        usual_note=f.usual_note,
    )


def _line(line: StatementLine) -> StatementLineOut:
    t, f = line.totals, line.figures
    return StatementLineOut(
        day="total" if line.day is None else line.day.isoformat(),
        electricity_kwh=_kwh(t.energy_j),
        kwh_by_source={p: _kwh(j) for p, j in t.energy_j_by_source.items()},
        heat_kwh=f.heat_kwh,
        electricity_cost_minor=f.electricity_cost_minor,
        earnings_minor=f.earnings_minor,
        net_cost_minor=f.net_cost_minor,
        effective_micro_per_kwh=f.effective_micro_per_kwh,
        usual_cost_minor=f.usual_cost_minor,
        saving_minor=f.saving_minor,
        co2_avoided_g=f.co2_avoided_g,
    )


class EnergyFake:
    """Mixed into the fake client: the energy calls, over records booked up to ``now``."""

    now: datetime
    status_model: AgentStatus
    _record: Callable[..., None]

    def _init_energy(self) -> None:
        self.energy_lock = threading.Lock()
        self.energy_model = EnergySettings(
            plug=PlugSettings(
                address=SHELLY_ADDRESS, kind=PlugKind.SHELLY, password=SHELLY_PASSWORD
            ),
            tariff=TariffSettings(kind=TariffKind.DYNAMIC, price_per_kwh=Decimal("0.245")),
            usual_heating=UsualHeatingSettings(
                kind=UsualHeatingKind.GAS_BOILER, fuel_price=GAS_PRICE, efficiency_pct=85.0
            ),
        )
        self.currency = "GBP"
        self.earn = True  # the network pays in the tariff's currency
        self.heat_source: Provenance | None = Provenance.PLUG
        self.plug_error: str | None = None
        self.price_list_model = PriceListInfo(count=0)
        self.energy_error: BaseException | None = None  # set: GET /v1/energy/costs fails so
        self.plug_probe_gate: threading.Event | None = None  # set: a probe waits (busy)
        year = self.now.year if self.now.month >= 9 else self.now.year - 1
        start = datetime(year, 9, 1, tzinfo=HOUSEHOLD_TZ).astimezone(UTC)
        self.records = book(start, self.now.replace(minute=0, second=0, microsecond=0), earn=True)
        # The status's figures for today come from the same records, as the agent's do.
        today = figures(
            "today", *day_bounds(self.now, HOUSEHOLD_TZ), self.records, self.energy_model
        )
        self.status_model = self.status_model.model_copy(
            update={
                "heat_provenance": Provenance.PLUG,
                "heat_today_kwh": float(today.heat_kwh),
                "cost_today_minor": today.electricity_cost_minor,
            }
        )

    # -- settings --------------------------------------------------------------------------

    def energy_settings(self) -> EnergySettings:
        self._record("energy_settings")
        return self._answered(self.energy_model)

    @staticmethod
    def _answered(settings: EnergySettings) -> EnergySettings:
        if settings.plug is None:
            return settings
        return settings.model_copy(
            update={"plug": settings.plug.model_copy(update={"password": None})}
        )

    def put_energy_settings(self, settings: EnergySettings) -> EnergySettings:
        self._record("put_energy_settings", settings)
        plug = settings.plug
        stored = self.energy_model.plug
        if (
            plug is not None
            and plug.password is None
            and stored is not None
            and stored.address == plug.address
        ):
            plug = plug.model_copy(update={"password": stored.password})
        self.energy_model = settings.model_copy(update={"plug": plug})
        return self._answered(self.energy_model)

    def plug_probe(self, request: PlugProbeRequest) -> PlugProbeResponse:
        self._record("plug_probe", request)
        if self.plug_probe_gate is not None:
            self.plug_probe_gate.wait(10)
        address = request.address.strip()
        stored = self.energy_model.plug
        password = request.password
        if password is None and stored is not None and stored.address == address:
            password = stored.password
        if address == SHELLY_ADDRESS:
            if password is None:
                return PlugProbeResponse(
                    ok=False,
                    error=f"The Shelly at http://{address} is protected by a password; give the "
                    "password set in the Shelly app or its web page.",
                )
            if password != SHELLY_PASSWORD:
                return PlugProbeResponse(
                    ok=False, error=f"The Shelly at http://{address} refused the password."
                )
            return PlugProbeResponse(
                ok=True,
                kind=PlugKind.SHELLY,
                model="Shelly PlugSPlusG3 (S3PL-00112EU)",
                name="Study heater",
                power_w=187.4,
            )
        if address == TASMOTA_ADDRESS:
            return PlugProbeResponse(
                ok=True, kind=PlugKind.TASMOTA, model="Tasmota 14.3.0", power_w=191.0
            )
        return PlugProbeResponse(
            ok=False,
            error=f"The plug at http://{address} cannot be reached (connection refused); check "
            "the address and that the plug is on.",
        )

    # -- prices ----------------------------------------------------------------------------

    def import_prices(self, request: PriceListImport) -> PriceListInfo:
        self._record("import_prices", request)
        try:
            if request.format == "csv":
                rows = parse_price_csv(request.text, unit=PriceUnit.MINOR, tz=HOUSEHOLD_TZ)
            else:
                rows = parse_price_json(request.text, unit=PriceUnit.MINOR)
        except PriceListError as exc:
            raise AgentError(422, f"The price list was not imported: {exc}.") from None
        if not rows:
            raise AgentError(422, "The price list was not imported: it holds no prices.")
        self.price_list_model = PriceListInfo(
            count=len(rows), first=rows[0].start, last=rows[-1].end, fetched_at=self.now
        )
        return self.price_list_model

    def price_list(self) -> PriceListInfo:
        self._record("price_list")
        return self.price_list_model

    # -- figures ---------------------------------------------------------------------------

    def costs(self) -> CostsResponse:
        self._record("costs")
        if self.energy_error is not None:
            raise self.energy_error
        s = self.energy_model
        recs = (
            self.records
            if self.earn
            else [
                EnergyRecord(r.start, r.end, r.source, r.energy_j, r.cost_micro_minor)
                for r in self.records
            ]
        )
        day = day_bounds(self.now, HOUSEHOLD_TZ)
        month = month_bounds(self.now, HOUSEHOLD_TZ)
        season_start = recs[0].start if recs else month[0]
        plan = []
        at = self.now.replace(minute=0, second=0, microsecond=0)
        for i in range(48):
            start = at + timedelta(minutes=30 * i)
            price = agile_price(start)
            cheap = price < Decimal("0.2")
            dear = price > Decimal("0.3")
            plan.append(
                PlanSlot(
                    start=start,
                    end=start + timedelta(minutes=30),
                    price_per_kwh=price,
                    power_pct=100.0 if cheap else 15.0 if dear else 55.0,
                    setpoint_c=22.0 if cheap else 20.0 if dear else 21.0,
                )
            )
        return CostsResponse(
            currency=self.currency,
            heat_source=self.heat_source,
            plug_error=self.plug_error,
            price_now_per_kwh=agile_price(self.now),
            today=figures("today", *day, recs, s),
            month=figures("month", *month, recs, s),
            season=figures("season", season_start, day[1], recs, s),
            plan=plan,
        )

    def _statement(self, month: str) -> Statement:
        found = re.fullmatch(r"(\d{4})-(\d{2})", month)
        if found is None or not 1 <= int(found[2]) <= 12:
            raise AgentError(422, f"“{month}” is not a month; give it as YYYY-MM.")
        s = self.energy_model
        return monthly_statement(
            self.records,
            int(found[1]),
            int(found[2]),
            HOUSEHOLD_TZ,
            currency=self.currency,
            usual=_usual(s),
            factors=_factors(s),
        )

    def statement(self, month: str) -> StatementResponse:
        self._record("statement", month)
        st = self._statement(month)
        kind = self.energy_model.usual_heating.kind
        return StatementResponse(
            month=month,
            currency=st.currency,
            hostname="study-pc",
            lines=[_line(line) for line in st.lines],
            total=_line(st.total),
            usual_heating=kind,
            generated_at=self.now,
        )

    def statement_csv(self, month: str) -> str:
        self._record("statement_csv", month)
        return statement_csv(self._statement(month))

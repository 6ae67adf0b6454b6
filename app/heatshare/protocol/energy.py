"""Models of the agent's energy routes (``/v1/energy…``): plug, tariff, usual heating, costs.

Money on the wire: prices are decimal strings of the currency's major unit per kWh (``"0.245"``);
sums are integers in minor units; a cost per kWh of heat is an integer in micro-minor units
(millionths of a penny), as ``domain.money`` counts. Energy in kWh as decimals for display, heat
sources by :class:`~heatshare.domain.readings.Provenance`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from heatshare.domain.readings import Provenance

Price = Annotated[Decimal, Field(ge=-10, le=100, max_digits=12, decimal_places=6)]
PositivePrice = Annotated[Decimal, Field(ge=0, le=100, max_digits=12, decimal_places=6)]
Minute = Annotated[int, Field(ge=0, le=1440)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- smart plug ------------------------------------------------------------------------------


class PlugKind(StrEnum):
    SHELLY = "shelly"
    TASMOTA = "tasmota"


class PlugSettings(_Model):
    """The smart plug the machine is plugged into (the best source of its heat)."""

    address: Annotated[str, Field(min_length=1, max_length=255)]  # host or host:port
    kind: PlugKind
    password: Annotated[str, Field(max_length=200)] | None = None  # write-only; None keeps it


class PlugProbeRequest(_Model):
    """``POST /v1/energy/plug-probe``: find and check a plug before saving it."""

    address: Annotated[str, Field(min_length=1, max_length=255)]
    password: Annotated[str, Field(max_length=200)] | None = None


class PlugProbeResponse(_Model):
    ok: bool
    kind: PlugKind | None = None
    model: str | None = None
    name: str | None = None
    power_w: float | None = None
    error: str | None = None  # a sentence when not ok


# -- tariff ----------------------------------------------------------------------------------


class TariffKind(StrEnum):
    FLAT = "flat"
    TIME_OF_USE = "time_of_use"
    DYNAMIC = "dynamic"  # a published price list (half-hourly agile prices and the like)


class TouPeriodIn(_Model):
    """A weekly period of local wall time at its own price; a period may run past midnight."""

    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(min_length=1, max_length=7)  # 0 = Mon
    start_min: Minute
    end_min: Minute
    price_per_kwh: Price


class TariffSettings(_Model):
    """How electricity is priced. The currency is :attr:`Settings.currency`."""

    kind: TariffKind = TariffKind.FLAT
    # Flat: this price; time of use: the price outside every period; dynamic: the price for any
    # time the price list does not cover (flagged as such on screen).
    price_per_kwh: PositivePrice = Decimal("0.245")
    periods: list[TouPeriodIn] = Field(default_factory=list, max_length=50)
    standing_charge_per_day: PositivePrice = Decimal(0)  # kept out of per-kWh figures
    # Dynamic: fetched again every few hours where given (https only; a failed fetch keeps
    # the prices already held and says so).
    price_list_url: Annotated[str, Field(max_length=1000, pattern=r"^https://")] | None = None

    @model_validator(mode="after")
    def _periods_for_tou(self) -> TariffSettings:
        if self.kind is TariffKind.TIME_OF_USE and not self.periods:
            raise ValueError("a time-of-use tariff needs at least one period")
        return self


class PriceListImport(_Model):
    """``POST /v1/energy/prices``: a price list pasted or read from a file by the app."""

    format: Literal["csv", "json"]
    text: Annotated[str, Field(min_length=1, max_length=5_000_000)]
    # The unit of the prices: major (pounds, euros) or minor (pence, cents: the UK's agile
    # prices) per kWh; auto reads a list whose prices reach 2 as minor units.
    unit: Literal["auto", "major", "minor"] = "auto"


class PriceSlot(_Model):
    start: datetime
    end: datetime
    price_per_kwh: Decimal
    fallback: bool = False  # not from the price list: the tariff's fallback price


class PriceListInfo(_Model):
    """What the agent holds: ``POST /v1/energy/prices`` and ``GET /v1/energy/prices``."""

    count: int
    first: datetime | None = None
    last: datetime | None = None  # the end of the last interval
    fetched_at: datetime | None = None
    error: str | None = None  # the last fetch's problem, a sentence


# -- the householder's usual heating ---------------------------------------------------------


class UsualHeatingKind(StrEnum):
    NONE = "none"
    GAS_BOILER = "gas_boiler"
    HEAT_PUMP = "heat_pump"
    ELECTRIC_HEATER = "electric_heater"
    OIL_BOILER = "oil_boiler"


class UsualHeatingSettings(_Model):
    kind: UsualHeatingKind = UsualHeatingKind.NONE
    # Gas: per kWh of gas; oil: per litre; heat pump and electric heater: None = the tariff's
    # flat price (or its fallback price).
    fuel_price: PositivePrice | None = None
    efficiency_pct: Annotated[float, Field(gt=0, le=110)] = 85.0  # boilers
    cop: Annotated[float, Field(gt=0, le=10)] = 3.0  # heat pumps
    # kg CO₂e per kWh; None = the documented defaults of domain.heat_cost.
    co2_gas_kg_per_kwh: Annotated[Decimal, Field(ge=0, le=2)] | None = None
    co2_oil_kg_per_kwh: Annotated[Decimal, Field(ge=0, le=2)] | None = None
    co2_grid_kg_per_kwh: Annotated[Decimal, Field(ge=0, le=2)] | None = None


# -- price-aware heating ---------------------------------------------------------------------


class PriceAwareSettings(_Model):
    """With a dynamic tariff: heat when it is cheap, within the comfort band."""

    enabled: bool = False
    # Heat first may pre-heat up to setpoint + band_c in cheap hours and let the room fall to
    # setpoint − band_c in dear ones.
    band_c: Annotated[float, Field(ge=0, le=3)] = 1.0
    # Earn first computes only while earnings per kWh beat the price by this much (major units).
    min_margin_per_kwh: Price = Decimal(0)


class EnergySettings(_Model):
    """``GET``/``PUT /v1/energy/settings``."""

    plug: PlugSettings | None = None
    tariff: TariffSettings = Field(default_factory=TariffSettings)
    usual_heating: UsualHeatingSettings = Field(default_factory=UsualHeatingSettings)
    price_aware: PriceAwareSettings = Field(default_factory=PriceAwareSettings)
    # The heating season for "this season" (MM-DD); the heating settings' dates where None.
    season_start: Annotated[str, Field(pattern=r"^\d\d-\d\d$")] = "09-01"


# -- figures ---------------------------------------------------------------------------------


class CostFigures(_Model):
    """One period's figures (today, this month, this season)."""

    period: Literal["today", "month", "season"]
    start: datetime
    end: datetime
    electricity_kwh: Decimal
    kwh_by_source: dict[Provenance, Decimal] = Field(default_factory=dict)
    heat_kwh: Decimal
    electricity_cost_minor: int
    earnings_minor: int
    net_cost_minor: int  # electricity cost − earnings
    effective_micro_per_kwh: int | None = None  # (cost − earnings) / heat; None: no heat yet
    effective_note: str | None = None
    usual_cost_minor: int | None = None  # the usual heating, for the same heat
    usual_micro_per_kwh: int | None = None
    saving_minor: int | None = None
    co2_avoided_g: int | None = None
    usual_note: str | None = None
    earnings_note: str | None = None  # why earnings are not taken off (not the same currency)
    fallback_prices: bool = False  # some energy was priced at the fallback price


class PlanSlot(_Model):
    """The plan for the hours ahead: the price and how hard the heater means to run."""

    start: datetime
    end: datetime
    price_per_kwh: Decimal
    fallback: bool = False
    power_pct: float  # 0..100
    setpoint_c: float | None = None


class CostsResponse(_Model):
    """``GET /v1/energy/costs``."""

    currency: str
    heat_source: Provenance | None = None  # where the heat figure comes from now
    plug_error: str | None = None  # why the plug is not the source, when one is set
    price_now_per_kwh: Decimal | None = None
    price_now_fallback: bool = False
    today: CostFigures
    month: CostFigures
    season: CostFigures
    plan: list[PlanSlot] = Field(default_factory=list)


class StatementLineOut(_Model):
    day: str  # YYYY-MM-DD, or "total"
    electricity_kwh: Decimal
    kwh_by_source: dict[Provenance, Decimal] = Field(default_factory=dict)
    heat_kwh: Decimal
    electricity_cost_minor: int
    earnings_minor: int
    net_cost_minor: int
    effective_micro_per_kwh: int | None = None
    usual_cost_minor: int | None = None
    saving_minor: int | None = None
    co2_avoided_g: int | None = None


class StatementResponse(_Model):
    """``GET /v1/energy/statement?month=YYYY-MM`` (``&format=csv`` gives the CSV text)."""

    month: str
    currency: str
    hostname: str
    lines: list[StatementLineOut]
    total: StatementLineOut
    usual_heating: UsualHeatingKind
    generated_at: datetime

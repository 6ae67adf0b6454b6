"""The agent's energy: the wall plug, the tariff, the per-minute energy records and what heat cost.

* The plug (where one is set up) is read once a second on its own thread (``plug``), apart from
  the sampler, so a slow or absent plug never delays a sample: the sampler takes the latest
  reading, and a reading older than :data:`PLUG_STALE_S` counts as the plug not answering.
* The tariff is built from the settings: flat (the agent's ``Settings.tariff_per_kwh``, the one
  flat price), time of use, or a dynamic price list kept in SQLite, imported through the API or
  fetched from the list's URL every :data:`FETCH_EVERY_S` on the ``prices`` thread.
* Each tick's electricity is booked by :meth:`EnergyControl.book` into its minute's record, its
  cost split across any price change inside the tick. Every figure (the dashboard's cost today,
  the cost cards, the statements) is a sum of those records, so they agree to the penny.
* Earnings count only when the network pays in the tariff's currency (demo credits are not
  money); the figures say so otherwise.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Any, Literal

from heatshare.agent.sampler import Sampler
from heatshare.agent.stored import load_stored
from heatshare.domain import heat_cost as hc
from heatshare.domain.heat import PlugReading
from heatshare.domain.money import J_PER_KWH, MICRO, minor_per_major
from heatshare.domain.readings import Provenance
from heatshare.domain.statement import StatementLine, monthly_statement, statement_csv
from heatshare.domain.tariffs import (
    DynamicTariff,
    FlatTariff,
    PriceInterval,
    PriceListError,
    PriceUnit,
    Tariff,
    TimeOfUseTariff,
    TouPeriod,
    cost,
    parse_price_csv,
    parse_price_json,
)
from heatshare.domain.thermostat import TariffSlot, tariff_slots
from heatshare.protocol.energy import (
    CostFigures,
    CostsResponse,
    EnergySettings,
    PlanSlot,
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
from heatshare.protocol.energy import PlugKind as WirePlugKind
from heatshare.protocol.local_api import EarningsResponse, Settings
from heatshare.store import Store
from heatshare.store.energy import EnergyLedger

log = logging.getLogger(__name__)

SETTINGS_KEY = "energy.settings"
PRICES_META_KEY = "energy.prices.meta"
PLUG_PERIOD_S = 1.0
# A reading older than this is not the plug's figure now: the heat falls back to the parts.
PLUG_STALE_S = 3.0
FETCH_EVERY_S = 6 * 3600.0
FETCH_RETRY_S = 15 * 60.0  # after a failed fetch
FETCH_TIMEOUT_S = (5.0, 20.0)  # connect, read
MAX_PRICE_LIST_BYTES = 5_000_000
# Earnings per kWh for the thermostat: over this many days of records, worked out this often.
EARNINGS_WINDOW = timedelta(days=7)
EARNINGS_EVERY_S = 300.0
# The prices the heating loop ranks: from a little before now to this far ahead.
HEATING_PRICES_BEFORE = timedelta(hours=12)
HEATING_PRICES_AHEAD = timedelta(hours=36)
# Prices in an "auto" import: a list whose prices reach this is in pence or cents.
_MINOR_THRESHOLD = Decimal(2)


class EnergyRequestError(Exception):
    """A request about energy the agent refuses; ``str(exc)`` is a sentence fit to show."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


# -- the settings -------------------------------------------------------------------------------


def public(settings: EnergySettings) -> EnergySettings:
    """The settings as the API shows them: the plug's password left out."""
    if settings.plug is not None and settings.plug.password is not None:
        return settings.model_copy(
            update={"plug": settings.plug.model_copy(update={"password": None})}
        )
    return settings


def with_stored_password(new: EnergySettings, stored: EnergySettings) -> EnergySettings:
    """``new`` with the stored plug password where it leaves it out, for the same address only."""
    plug, old = new.plug, stored.plug
    if (
        plug is not None
        and plug.password is None
        and old is not None
        and old.password
        and old.address.strip().rstrip("/") == plug.address.strip().rstrip("/")
    ):
        return new.model_copy(update={"plug": plug.model_copy(update={"password": old.password})})
    return new


def _minute_time(minute: int) -> dtime:
    return dtime(0) if minute >= 1440 else dtime(minute // 60, minute % 60)


def build_tariff(
    settings: TariffSettings, flat_per_kwh: Decimal, tz: tzinfo, prices: tuple[PriceInterval, ...]
) -> Tariff:
    """The tariff the settings describe; ``flat_per_kwh`` is the one flat (or fallback) price.

    Raises:
        ValueError: periods that overlap (a sentence saying where).
    """
    standing = settings.standing_charge_per_day
    if settings.kind is TariffKind.TIME_OF_USE:
        periods = tuple(
            TouPeriod(
                frozenset(p.days),
                _minute_time(p.start_min),
                _minute_time(p.end_min),
                p.price_per_kwh,
            )
            for p in settings.periods
        )
        return TimeOfUseTariff(periods, flat_per_kwh, tz, standing)
    if settings.kind is TariffKind.DYNAMIC:
        return DynamicTariff(prices, flat_per_kwh, standing)
    return FlatTariff(flat_per_kwh, standing)


def usual_heating(
    settings: UsualHeatingSettings, electricity_per_kwh: Decimal
) -> tuple[hc.UsualHeating | None, str | None]:
    """The householder's usual heating, or None with the sentence that says what is missing."""
    kind = settings.kind
    if kind is UsualHeatingKind.NONE:
        return None, hc.NO_USUAL
    efficiency = Decimal(str(settings.efficiency_pct)) / 100
    if kind is UsualHeatingKind.HEAT_PUMP:
        price = settings.fuel_price if settings.fuel_price is not None else electricity_per_kwh
        return hc.UsualHeating.heat_pump(price, Decimal(str(settings.cop))), None
    if kind is UsualHeatingKind.ELECTRIC_HEATER:
        price = settings.fuel_price if settings.fuel_price is not None else electricity_per_kwh
        return hc.UsualHeating.electric_heater(price), None
    if settings.fuel_price is None:
        fuel = "gas per kWh" if kind is UsualHeatingKind.GAS_BOILER else "heating oil per litre"
        return None, f"Set the price of {fuel} to compare with the usual heating."
    if kind is UsualHeatingKind.GAS_BOILER:
        return hc.UsualHeating.gas_boiler(settings.fuel_price, efficiency), None
    return hc.UsualHeating.oil_boiler(settings.fuel_price, efficiency), None


def emission_factors(settings: UsualHeatingSettings) -> hc.EmissionFactors:
    return hc.EmissionFactors(
        gas=settings.co2_gas_kg_per_kwh
        if settings.co2_gas_kg_per_kwh is not None
        else hc.GAS_KG_PER_KWH,
        oil=settings.co2_oil_kg_per_kwh
        if settings.co2_oil_kg_per_kwh is not None
        else hc.OIL_KG_PER_KWH,
        grid=settings.co2_grid_kg_per_kwh
        if settings.co2_grid_kg_per_kwh is not None
        else hc.GRID_KG_PER_KWH,
    )


def season_end(start: tuple[int, int]) -> tuple[int, int]:
    """The last day of a season a year long from ``start`` (the day before it, a year on)."""
    day = date(2001, *start) - timedelta(days=1)  # a year with no 29 February
    return day.month, day.day


def parse_month(text: str) -> tuple[int, int]:
    """``"2026-11"`` as (2026, 11); an :class:`EnergyRequestError` (400) otherwise."""
    bad = EnergyRequestError(
        f"The month must be given as YYYY-MM, for example 2026-11, not {text!r}.", status=400
    )
    parts = text.strip().split("-")
    if len(parts) != 2 or len(parts[0]) != 4 or len(parts[1]) != 2:
        raise bad
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise bad
    year, month = int(parts[0]), int(parts[1])
    if not (1970 <= year <= 9998 and 1 <= month <= 12):
        raise bad
    return year, month


def _kwh(joules: float) -> Decimal:
    return Decimal(round(Fraction(joules) / 3600)) / 1000


def _by_source(by: dict[Provenance, float] | Any) -> dict[Provenance, Decimal]:
    return {p: _kwh(j) for p, j in by.items() if j > 0}


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# -- the control --------------------------------------------------------------------------------


class EnergyControl:
    """The plug, the tariff, the records and the figures of one agent.

    Args:
        store: the agent's history store (settings, records, prices).
        base_settings: the agent's settings (the flat price, the currency).
        set_flat_price: stores a new flat price in the agent's settings; raises its own error.
        wall: UTC clock (epoch seconds).
        tz: the household's time zone ("today", months, seasons, time-of-use periods).
        hostname: named on statements.
        earnings: the network's earnings, or None where the machine has none.
        plug_reader: opens a plug reader (kind, address, password) -> object with read()/close().
        probe: finds a plug at an address (address, timeout, password) -> sensors.plugs.PlugProbe.
        fetch: GETs a price list URL and returns (content type, text); raises on failure.
        mono: the monotonic clock the plug readings' age is measured on.
    """

    def __init__(
        self,
        store: Store,
        *,
        base_settings: Callable[[], Settings],
        set_flat_price: Callable[[Decimal], None],
        wall: Callable[[], float] = time.time,
        tz: tzinfo,
        hostname: str,
        earnings: Callable[[], EarningsResponse | None] | None = None,
        plug_reader: Callable[[str, str, str | None], Any] | None = None,
        probe: Callable[[str, float, str | None], Any] | None = None,
        fetch: Callable[[str], tuple[str, str]] | None = None,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ledger = EnergyLedger(store)
        self._base = base_settings
        self._set_flat_price = set_flat_price
        self._wall = wall
        self._mono = mono
        self._tz = tz
        self._hostname = hostname
        self._earnings = earnings
        self._plug_reader = plug_reader or _real_plug_reader
        self._probe = probe or _real_probe
        self._fetch = fetch or _real_fetch
        self._lock = threading.Lock()
        self._write = threading.Lock()  # one settings writer at a time
        self.load_warnings: list[str] = []
        self._settings = self._load_settings()
        self._prices = self._ledger.prices()
        self._prices_version = 0
        self._tariff_key: tuple[Any, ...] | None = None
        self._tariff: Tariff | None = None
        self._reader: Any | None = None
        self._reader_lock = threading.Lock()  # the plug thread reads while a PUT replaces it
        self._reading: tuple[PlugReading, float] | None = None  # and when (mono)
        self.plug_generation = 0  # bumped when another plug is set up
        self._fetch_due = 0.0  # mono: when the next fetch of the price list is due
        self._samplers: list[tuple[Sampler, threading.Thread]] = []
        self._closing = threading.Event()
        self._plan: Callable[[float], list[PlanSlot]] | None = None
        self._heating_prices: tuple[tuple[Any, ...], tuple[TariffSlot, ...]] | None = None
        self._earnings_kwh: Decimal | None = None
        self._earnings_due = 0.0  # mono

    # -- life ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the plug and start the ``plug`` and ``prices`` threads."""
        self._open_reader(self.settings_stored().plug)
        for fn, period, name in (
            (self.read_plug, PLUG_PERIOD_S, "plug"),
            (self._prices_step, 30.0, "prices"),
        ):
            sampler = Sampler(fn, period_s=period, name=name)
            self._samplers.append((sampler, sampler.start()))

    def stop(self) -> None:
        """Stop the threads (a fetch in flight writes nothing after this) and close the plug."""
        self._closing.set()
        for sampler, _ in self._samplers:
            sampler.stop()
        for _, thread in self._samplers:
            thread.join(timeout=3.0)
        self._samplers = []
        with self._reader_lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def set_planner(self, plan: Callable[[float], list[PlanSlot]] | None) -> None:
        """Where the plan for the hours ahead comes from (the heating loop)."""
        self._plan = plan

    # -- settings -----------------------------------------------------------------------------

    def settings_stored(self) -> EnergySettings:
        with self._lock:
            return self._settings

    def settings(self) -> EnergySettings:
        """The settings as the API shows them: the flat price is the agent's, no password."""
        stored = self.settings_stored()
        base = self._base()
        tariff = stored.tariff.model_copy(update={"price_per_kwh": base.tariff_per_kwh})
        return public(stored.model_copy(update={"tariff": tariff}))

    def put_settings(self, new: EnergySettings) -> EnergySettings:
        """Check, store and apply new settings; :class:`EnergyRequestError` with the reason."""
        with self._write:
            old = self.settings_stored()
            merged = with_stored_password(new, old)
            try:
                build_tariff(merged.tariff, merged.tariff.price_per_kwh, self._tz, ())
            except ValueError as exc:
                raise EnergyRequestError(f"The tariff was not accepted: {exc}.") from exc
            try:
                date(2000, *(int(x) for x in merged.season_start.split("-")))
            except ValueError as exc:
                raise EnergyRequestError(
                    f"The season's start {merged.season_start} is not a day of the year (MM-DD)."
                ) from exc
            new_plug = merged.plug != old.plug
            reader = self._new_reader(merged.plug) if new_plug else None
            try:
                if merged.tariff.price_per_kwh != self._base().tariff_per_kwh:
                    self._set_flat_price(merged.tariff.price_per_kwh)
                self._store.set_state(SETTINGS_KEY, merged.model_dump_json())
            except BaseException:
                if reader is not None:
                    reader.close()
                raise
            with self._lock:
                self._settings = merged
            if new_plug:
                self._use_reader(reader)
            if merged.tariff.price_list_url != old.tariff.price_list_url or (
                merged.tariff.kind != old.tariff.kind
            ):
                self._fetch_due = 0.0
        log.info("Energy settings changed")
        return self.settings()

    def _load_settings(self) -> EnergySettings:
        return load_stored(self._store.get_state(SETTINGS_KEY), EnergySettings, self._damaged)

    def _damaged(self, what: str) -> None:
        msg = f"Some stored energy settings were not usable; {what}."
        log.warning("%s", msg)
        self.load_warnings.append(msg)

    # -- the plug -----------------------------------------------------------------------------

    def _new_reader(self, plug: PlugSettings | None) -> Any:
        """A reader of ``plug`` (None for none); :class:`EnergyRequestError` for a bad address."""
        if plug is None:
            return None
        try:
            return self._plug_reader(plug.kind.value, plug.address, plug.password)
        except Exception as exc:  # the reader's own sentence (sensors.plugs.PlugError)
            raise EnergyRequestError(f"The plug was not accepted: {exc}") from exc

    def _open_reader(self, plug: PlugSettings | None) -> None:
        try:
            reader = self._new_reader(plug)
        except EnergyRequestError as exc:
            log.info("%s", exc)  # a stored address no longer valid: the heat falls back
            reader = None
        self._use_reader(reader)

    def _use_reader(self, reader: Any) -> None:
        with self._reader_lock:
            old, self._reader = self._reader, reader
            self._reading = None
            self.plug_generation += 1
        if old is not None:
            old.close()

    def read_plug(self) -> None:
        """One reading of the plug (the ``plug`` thread's step)."""
        with self._reader_lock:
            reader = self._reader
        if reader is None:
            return
        reading = reader.read()
        at = self._mono()
        with self._reader_lock:
            if self._reader is reader:
                self._reading = (reading, at)

    def plug_reading(self) -> PlugReading | None:
        """The plug's latest reading for the sampler; None where no plug is set up."""
        with self._reader_lock:
            if self._reader is None:
                return None
            latest = self._reading
        if latest is None:
            return PlugReading(error="The plug has not been read yet.")
        reading, at = latest
        age = self._mono() - at
        if age > PLUG_STALE_S:
            return PlugReading(error=f"The plug has not answered for {age:.0f} s.")
        return reading

    def probe(self, req: PlugProbeRequest) -> PlugProbeResponse:
        """Find and read a plug at an address, on the spot (never stored)."""
        password = req.password
        stored = self.settings_stored().plug
        if password is None and stored is not None and stored.address == req.address:
            password = stored.password  # "Find" again on the saved plug
        found = self._probe(req.address, 3.0, password)
        reading = found.reading
        return PlugProbeResponse(
            ok=found.ok,
            kind=WirePlugKind(found.kind.value) if found.kind is not None else None,
            model=found.model,
            name=found.name,
            power_w=reading.power_w if reading is not None else None,
            error=found.error,
        )

    # -- the tariff and prices ----------------------------------------------------------------

    def tariff(self) -> Tariff:
        """The tariff now (rebuilt when the settings, the flat price or the prices change)."""
        settings = self.settings_stored()
        flat = self._base().tariff_per_kwh
        with self._lock:
            key = (settings.tariff, flat, self._prices_version)
            if key != self._tariff_key or self._tariff is None:
                try:
                    self._tariff = build_tariff(settings.tariff, flat, self._tz, self._prices)
                except ValueError:
                    # Stored periods that no longer hold (checked at every PUT): the flat price.
                    log.info("The stored tariff could not be built; the flat price applies")
                    self._tariff = FlatTariff(flat)
                self._tariff_key = key
            return self._tariff

    def import_prices(self, req: PriceListImport) -> PriceListInfo:
        """Read a published price list and keep it; 422 naming the bad row."""
        try:
            intervals = self._parse(req.format, req.text, req.unit)
        except PriceListError as exc:
            raise EnergyRequestError(f"The price list was not accepted: {exc}.") from exc
        if not intervals:
            raise EnergyRequestError("The price list was not accepted: it holds no prices.")
        self._keep_prices(intervals)
        log.info("Imported a price list of %d prices", len(intervals))
        return self.price_info()

    def _parse(self, fmt: str, text: str, unit: str) -> tuple[PriceInterval, ...]:
        currency = self._base().currency
        per_major = minor_per_major(currency)
        units = [PriceUnit(unit)] if unit in ("major", "minor") else [PriceUnit.MAJOR]
        if fmt == "json":
            rows = parse_price_json(text, unit=units[0], minor_per_major=per_major)
        else:
            rows = parse_price_csv(text, unit=units[0], minor_per_major=per_major, tz=self._tz)
        if unit not in ("major", "minor") and any(abs(r.per_kwh) >= _MINOR_THRESHOLD for r in rows):
            # Published lists (the UK's agile prices) give pence or cents per kWh.
            rows = tuple(PriceInterval(r.start, r.end, r.per_kwh / per_major) for r in rows)
        return rows

    def _keep_prices(self, intervals: tuple[PriceInterval, ...]) -> None:
        with self._write:
            self._ledger.replace_prices(intervals)
            # Before "now - 400 days" nothing needs a price: its costs are in the records.
            self._ledger.prune_prices(_utc(self._wall()) - timedelta(days=400))
            prices = self._ledger.prices()
            with self._lock:
                self._prices = prices
                self._prices_version += 1

    def price_info(self) -> PriceListInfo:
        with self._lock:
            prices = self._prices
        meta = self._meta()
        fetched = meta.get("fetched_at")
        return PriceListInfo(
            count=len(prices),
            first=prices[0].start if prices else None,
            last=prices[-1].end if prices else None,
            fetched_at=_utc(fetched) if isinstance(fetched, int | float) else None,
            error=meta.get("error") if isinstance(meta.get("error"), str) else None,
        )

    def _meta(self) -> dict[str, Any]:
        raw = self._store.get_state(PRICES_META_KEY)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _prices_step(self) -> None:
        """The ``prices`` thread: the earnings per kWh, and the list fetched from its URL."""
        if self._mono() >= self._earnings_due:
            self._earnings_due = self._mono() + EARNINGS_EVERY_S
            self._earnings_kwh = self.recent_earnings_per_kwh()
        tariff = self.settings_stored().tariff
        url = tariff.price_list_url
        if tariff.kind is not TariffKind.DYNAMIC or url is None:
            return
        now = self._mono()
        if now < self._fetch_due:
            return
        self.fetch_now(url)

    def fetch_now(self, url: str) -> PriceListInfo:
        """Fetch the price list at ``url`` once; a failure keeps what is held and says so."""
        meta = self._meta()
        try:
            content_type, text = self._fetch(url)
            if self._closing.is_set():
                # The agent stopped while the server answered: the store is closing.
                return PriceListInfo(count=len(self._prices))
            fmt: Literal["csv", "json"] = (
                "json" if "json" in content_type or text.lstrip()[:1] in ("{", "[") else "csv"
            )
            intervals = self._parse(fmt, text, "auto")
            if not intervals:
                raise PriceListError("it holds no prices")
            self._keep_prices(intervals)
            meta = {"fetched_at": self._wall(), "error": None}
            self._fetch_due = self._mono() + FETCH_EVERY_S
            log.info("Fetched %d prices from %s", len(intervals), url)
        except PriceListError as exc:
            meta = {**meta, "error": f"The price list at {url} could not be read: {exc}."}
            self._fetch_due = self._mono() + FETCH_RETRY_S
            log.info("%s", meta["error"])
        except FetchError as exc:
            meta = {**meta, "error": str(exc)}
            self._fetch_due = self._mono() + FETCH_RETRY_S
            log.info("%s", exc)
        if self._closing.is_set():
            return PriceListInfo(count=len(self._prices))
        self._store.set_state(PRICES_META_KEY, json.dumps(meta))
        return self.price_info()

    # -- booking ------------------------------------------------------------------------------

    def book(self, source: Provenance | None, energy_j: float, dt_s: float, wall: float) -> int:
        """Book one tick's electricity (``[wall - dt_s, wall)``); its cost in micro-minor units."""
        if source is None or energy_j <= 0 or dt_s <= 0:
            return 0
        end = _utc(wall)
        start = end - timedelta(seconds=dt_s)
        per_major = minor_per_major(self._base().currency)
        priced = cost(self.tariff(), energy_j, start, end, per_major)
        self._ledger.book(
            start, end, source, energy_j, priced.micro_minor, fallback=priced.fallback
        )
        return priced.micro_minor

    def cost_today_micro(self) -> int:
        start, end = hc.day_bounds(_utc(self._wall()), self._tz)
        return self._ledger.cost_micro(start, end)

    # -- earnings -----------------------------------------------------------------------------

    def _earnings_view(self) -> tuple[EarningsResponse | None, str | None]:
        """The network's earnings where they are money of the tariff's currency, else a note."""
        if self._earnings is None:
            return None, None
        try:
            earned = self._earnings()
        except Exception as exc:  # the network's refusals: no earnings to count
            log.debug("No earnings for the cost figures: %s", exc)
            return None, None
        if earned is None:
            return None, None
        currency = self._base().currency
        if earned.currency.upper() != currency.upper():
            what = "demo credits" if earned.currency.upper() == "CRD" else earned.currency
            return None, (
                f"Earnings are paid in {what}, not {currency}, so they are not taken off the "
                "cost of heat."
            )
        return earned, None

    @staticmethod
    def _earned_micro(earned: EarningsResponse | None, start: datetime, end: datetime) -> int:
        if earned is None:
            return 0
        return MICRO * sum(e.amount_minor for e in earned.entries if start <= e.at < end)

    def earnings_per_kwh(self) -> Decimal | None:
        """The heating loop's figure: :meth:`recent_earnings_per_kwh` as last worked out."""
        return self._earnings_kwh

    def heating_prices(self, wall: float) -> tuple[TariffSlot, ...]:
        """The prices around ``wall`` for the heating loop (the same tuple until they change)."""
        tariff = self.tariff()
        with self._lock:
            key = self._tariff_key
        # Cut afresh each quarter hour: the window moves, the prices within it do not.
        stamp = (key, int(wall // 900))
        cached = self._heating_prices
        if cached is not None and cached[0] == stamp:
            return cached[1]
        now = _utc(wall)
        slots = tariff_slots(tariff, now - HEATING_PRICES_BEFORE, now + HEATING_PRICES_AHEAD)
        self._heating_prices = (stamp, slots)
        return slots

    def recent_earnings_per_kwh(self) -> Decimal | None:
        """Recent earnings per kWh drawn (major units of the tariff's currency), or None."""
        earned, _ = self._earnings_view()
        if earned is None:
            return None
        end = _utc(self._wall())
        start = end - EARNINGS_WINDOW
        energy_j = sum(r.record.energy_j for r in self._ledger.records(start, end))
        if energy_j <= 0:
            return None
        micro = self._earned_micro(earned, start, end)
        per_major = minor_per_major(self._base().currency)
        per_kwh = Fraction(micro, MICRO * per_major) / (Fraction(energy_j) / J_PER_KWH)
        return (Decimal(per_kwh.numerator) / Decimal(per_kwh.denominator)).quantize(
            Decimal("0.000001")
        )

    # -- figures ------------------------------------------------------------------------------

    def _records(
        self, start: datetime, end: datetime, earned: EarningsResponse | None
    ) -> tuple[list[hc.EnergyRecord], bool]:
        stored = self._ledger.records(start, end)
        records = [s.record for s in stored]
        if earned is not None:
            # Earnings as records of no energy at their own instants: they count in the day and
            # the period in which the network credited them.
            records += [
                hc.EnergyRecord(e.at, e.at, Provenance.PLUG, 0.0, 0, e.amount_minor * MICRO)
                for e in earned.entries
                if start <= e.at < end
            ]
        return records, any(s.fallback for s in stored)

    def costs(self, heat_source: Provenance | None, plug_error: str | None) -> CostsResponse:
        """Today, this month and this season, the price now and the plan ahead."""
        settings = self.settings_stored()
        base = self._base()
        currency = base.currency
        per_major = minor_per_major(currency)
        now = _utc(self._wall())
        usual, usual_note = usual_heating(settings.usual_heating, base.tariff_per_kwh)
        factors = emission_factors(settings.usual_heating)
        earned, earnings_note = self._earnings_view()
        start_md = tuple(int(x) for x in settings.season_start.split("-"))
        season_start = (start_md[0], start_md[1])
        periods: dict[str, tuple[datetime, datetime]] = {
            "today": hc.day_bounds(now, self._tz),
            "month": hc.month_bounds(now, self._tz),
            "season": hc.season_bounds(now, self._tz, season_start, season_end(season_start)),
        }
        figures: dict[str, CostFigures] = {}
        for name, (start, end) in periods.items():
            sums = self._ledger.sums(start, end)
            fallback = any(x.fallback for x in sums)
            totals = hc.PeriodTotals(
                start,
                end,
                MappingProxyType({x.source: x.energy_j for x in sums}),
                math.fsum(x.heat_j for x in sums),
                sum(x.cost_micro for x in sums),
                self._earned_micro(earned, start, end),
            )
            f = hc.heat_cost(totals, usual, factors, per_major)
            figures[name] = CostFigures(
                period=name,
                start=start,
                end=end,
                electricity_kwh=_kwh(totals.energy_j),
                kwh_by_source=_by_source(totals.energy_j_by_source),
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
                usual_note=usual_note if f.usual_note is not None else None,
                fallback_prices=fallback,
                earnings_note=earnings_note,
            )
        price = self.tariff().price_at(now)
        plan = self._plan(now.timestamp()) if self._plan is not None else []
        return CostsResponse(
            currency=currency,
            heat_source=heat_source,
            plug_error=plug_error if settings.plug is not None else None,
            price_now_per_kwh=price.per_kwh,
            price_now_fallback=price.fallback,
            today=figures["today"],
            month=figures["month"],
            season=figures["season"],
            plan=plan,
        )

    def _statement(self, month: str) -> Any:
        year, number = parse_month(month)
        settings = self.settings_stored()
        base = self._base()
        usual, _ = usual_heating(settings.usual_heating, base.tariff_per_kwh)
        earned, _ = self._earnings_view()
        first = date(year, number, 1)
        start, end = hc.month_bounds(
            datetime(first.year, first.month, 15, 12, tzinfo=UTC), self._tz
        )
        records, _ = self._records(start, end, earned)
        return monthly_statement(
            records,
            year,
            number,
            self._tz,
            currency=base.currency,
            usual=usual,
            factors=emission_factors(settings.usual_heating),
        )

    def statement(self, month: str) -> StatementResponse:
        st = self._statement(month)
        return StatementResponse(
            month=f"{st.year:04d}-{st.month:02d}",
            currency=st.currency,
            hostname=self._hostname,
            lines=[_line(line) for line in st.lines],
            total=_line(st.total),
            usual_heating=self.settings_stored().usual_heating.kind,
            generated_at=_utc(self._wall()),
        )

    def statement_csv(self, month: str) -> str:
        return statement_csv(self._statement(month))


def _line(line: StatementLine) -> StatementLineOut:
    t, f = line.totals, line.figures
    return StatementLineOut(
        day="total" if line.day is None else line.day.isoformat(),
        electricity_kwh=_kwh(t.energy_j),
        kwh_by_source=_by_source(t.energy_j_by_source),
        heat_kwh=f.heat_kwh,
        electricity_cost_minor=f.electricity_cost_minor,
        earnings_minor=f.earnings_minor,
        net_cost_minor=f.net_cost_minor,
        effective_micro_per_kwh=f.effective_micro_per_kwh,
        usual_cost_minor=f.usual_cost_minor,
        saving_minor=f.saving_minor,
        co2_avoided_g=f.co2_avoided_g,
    )


# -- the real plug and fetch --------------------------------------------------------------------


class FetchError(Exception):
    """A price list URL that gave nothing; the message is a sentence."""


def _real_plug_reader(kind: str, address: str, password: str | None) -> Any:
    from heatshare.sensors.plugs import PlugKind, PlugReader

    return PlugReader(PlugKind(kind), address, password=password)


def _real_probe(address: str, timeout_s: float, password: str | None) -> Any:
    from heatshare.sensors.plugs import probe

    return probe(address, timeout_s, password=password)


def _real_fetch(url: str) -> tuple[str, str]:
    import requests

    try:
        with requests.get(url, timeout=FETCH_TIMEOUT_S, stream=True) as resp:
            if resp.status_code != 200:
                raise FetchError(
                    f"The price list at {url} could not be fetched: the server answered "
                    f"{resp.status_code}."
                )
            data = resp.raw.read(MAX_PRICE_LIST_BYTES + 1, decode_content=True)
            if len(data) > MAX_PRICE_LIST_BYTES:
                raise FetchError(f"The price list at {url} is larger than 5 MB.")
            content_type = resp.headers.get("Content-Type", "")
            # Without a charset, UTF-8 (with a spreadsheet's BOM), not HTTP's old Latin-1.
            charset = resp.encoding if "charset=" in content_type.lower() else None
            return content_type, data.decode(charset or "utf-8-sig", errors="replace")
    except requests.exceptions.SSLError as exc:
        raise FetchError(
            f"The price list at {url} could not be fetched: its certificate is not trusted."
        ) from exc
    except requests.RequestException as exc:
        raise FetchError(
            f"The price list at {url} could not be fetched: {type(exc).__name__}."
        ) from exc


__all__ = [
    "EnergyControl",
    "EnergyRequestError",
    "build_tariff",
    "parse_month",
    "public",
    "with_stored_password",
]

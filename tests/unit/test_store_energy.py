"""Energy records and the price list in a real SQLite file; the schema step that adds them."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from heatshare.domain.readings import Provenance
from heatshare.domain.tariffs import PriceInterval
from heatshare.store import Store, schema
from heatshare.store.energy import EnergyLedger

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    st = Store.open(tmp_path / "h.sqlite3", now=T0.timestamp())
    yield st  # type: ignore[misc]
    st.close()


def test_ticks_add_up_in_their_minute_and_source(store: Store) -> None:
    ledger = EnergyLedger(store)
    ledger.book(s(0), s(1), Provenance.PLUG, 100.0, 7_000)
    ledger.book(s(59), s(60), Provenance.PLUG, 100.5, 7_035)  # began in minute 0
    ledger.book(s(60), s(61), Provenance.PLUG, 90.0, 6_300, fallback=True)
    ledger.book(s(61), s(62), Provenance.ESTIMATE, 15.5, 1_085, heat_j=10.0)
    rows = ledger.records(s(0), s(120))
    assert [(r.record.start, r.record.end, r.record.source) for r in rows] == [
        (s(0), s(60), Provenance.PLUG),
        (s(60), s(62), Provenance.ESTIMATE),
        (s(60), s(61), Provenance.PLUG),
    ]
    first = rows[0].record
    assert (first.energy_j, first.cost_micro_minor, first.heat) == (200.5, 14_035, 200.5)
    assert rows[0].fallback is False and rows[2].fallback is True
    assert rows[1].record.heat == 10.0
    assert ledger.cost_micro(s(0), s(120)) == 14_035 + 6_300 + 1_085
    # A record counts in the period its minute starts in.
    assert ledger.cost_micro(s(0), s(60)) == 14_035
    assert ledger.cost_micro(s(60), s(61)) == 6_300 + 1_085
    assert ledger.records(s(120), s(180)) == []


def test_records_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with Store.open(path, now=T0.timestamp()) as st:
        EnergyLedger(st).book(s(0), s(1), Provenance.ENERGY_COUNTER, 180.0, 12_250)
    with Store.open(path, now=T0.timestamp()) as st:
        assert EnergyLedger(st).cost_micro(s(0), s(60)) == 12_250


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((s(0), s(1), Provenance.PLUG, -1.0, 0), "energy_j"),
        ((s(0), s(1), Provenance.PLUG, float("nan"), 0), "energy_j"),
        ((s(1), s(0), Provenance.PLUG, 1.0, 0), "end before"),
        ((datetime(2026, 11, 27, 9), s(1), Provenance.PLUG, 1.0, 0), "time zone"),  # noqa: DTZ001 - naive on purpose
    ],
)
def test_a_bad_record_is_refused(store: Store, args: tuple[object, ...], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        EnergyLedger(store).book(*args)  # type: ignore[arg-type]
    assert EnergyLedger(store).records(s(-3600), s(3600)) == []


def test_a_price_list_replaces_what_it_overlaps_and_keeps_the_rest(store: Store) -> None:
    ledger = EnergyLedger(store)
    day1 = [
        PriceInterval(s(i * 1800), s((i + 1) * 1800), Decimal("0.2") + Decimal(i) / 100)
        for i in range(4)
    ]
    ledger.replace_prices(day1)
    assert ledger.prices() == tuple(day1)
    # A later list overlapping the last hour in part: those held prices go, earlier ones stay.
    later = [
        PriceInterval(s(4500), s(6300), Decimal("-0.0125")),
        PriceInterval(s(6300), s(8100), Decimal("0.333333")),
    ]
    ledger.replace_prices(later)
    assert ledger.prices() == (*day1[:2], *later)
    assert ledger.prices()[2].per_kwh == Decimal("-0.0125")  # exact, negative allowed
    ledger.prune_prices(s(3600))
    assert ledger.prices() == tuple(later)
    ledger.replace_prices([])  # nothing to hold: nothing changes
    assert ledger.prices() == tuple(later)


def test_a_version_2_file_gets_the_energy_tables_after_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, path, schema.MIGRATIONS[:2])
    conn.execute("INSERT INTO state (key, value) VALUES ('agent.settings', '{}')")
    conn.close()
    with Store.open(path, now=T0.timestamp()) as st:
        EnergyLedger(st).book(s(0), s(1), Provenance.PLUG, 1.0, 1)
        assert st.get_state("agent.settings") == "{}"
    backup = tmp_path / "h.sqlite3.v2.bak"
    assert backup.exists()
    check = sqlite3.connect(path)
    try:
        assert check.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS) == 4
    finally:
        check.close()

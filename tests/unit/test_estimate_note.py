"""The note that says which parts of the heat figure are estimated."""

from __future__ import annotations

from heatshare.agent.service import ESTIMATE_NOTE, estimate_note
from heatshare.domain.heat import ComponentPower
from heatshare.domain.readings import Provenance


def test_all_measured_needs_no_note() -> None:
    parts = [
        ComponentPower("gpu0", 300.0, Provenance.ENERGY_COUNTER),
        ComponentPower("cpu", 40.0, Provenance.ENERGY_COUNTER),
    ]
    assert estimate_note(parts) is None


def test_nothing_measured_says_so() -> None:
    assert estimate_note([ComponentPower("cpu", 12.0, Provenance.ESTIMATE)]) == ESTIMATE_NOTE


def test_a_measured_gpu_beside_an_estimated_cpu_is_named() -> None:
    """As on a real H100 machine without readable RAPL: most of the heat is measured."""
    note = estimate_note(
        [
            ComponentPower("gpu0", 680.0, Provenance.ENERGY_COUNTER),
            ComponentPower("cpu", 13.0, Provenance.ESTIMATE),
        ]
    )
    assert note == "Heat output is partly estimated: the CPU (estimated); GPU 0 (measured)."


def test_a_gpu_without_a_reading_is_neither() -> None:
    note = estimate_note(
        [ComponentPower("gpu0", None, None), ComponentPower("cpu", 9.0, Provenance.ESTIMATE)]
    )
    assert note == ESTIMATE_NOTE

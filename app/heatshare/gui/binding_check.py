"""Detect a Qt binding that drops references to ``None``/``True`` (a crash waiting to happen).

PySide6 6.12.0 returns ``None`` from void methods and ``True`` from ``Signal.emit`` without
a new reference. On Python >= 3.12 those objects are immortal (PEP 683) and nothing happens;
on 3.11 each call takes one reference away, and after enough calls the interpreter dies with
"Fatal Python error: none_dealloc" (at exit, or sooner). The fix is the pin in pyproject.toml;
this check makes a wrong environment say so in the log instead of crashing mysteriously.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal

CALLS = 64


class _Probe(QObject):
    fired = Signal()


def leaked_references() -> dict[str, int]:
    """References to None and True lost over ``CALLS`` void calls and emits (0 when sound)."""
    probe = _Probe()
    none_before = sys.getrefcount(None)
    for _ in range(CALLS):
        probe.setObjectName("probe")  # a void method: returns None
    none_lost = none_before - sys.getrefcount(None)
    true_before = sys.getrefcount(True)
    for _ in range(CALLS):
        probe.fired.emit()  # returns True
    true_lost = true_before - sys.getrefcount(True)
    probe.deleteLater()
    return {"None": max(0, none_lost), "True": max(0, true_lost)}


def binding_is_sound() -> bool:
    if sys.version_info >= (3, 12):
        return True  # immortal singletons: a lost reference cannot free them
    return not any(lost >= CALLS for lost in leaked_references().values())

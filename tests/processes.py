"""Finding a job's processes from outside, by a marker in their command lines."""

from __future__ import annotations

import os
from pathlib import Path


def marked_processes(*markers: str) -> list[int]:
    """Host processes (not this one) whose command line holds one of ``markers``."""
    wanted = [m.encode() for m in markers]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if any(m in cmdline for m in wanted):
            found.append(int(entry.name))
    return found

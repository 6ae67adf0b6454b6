"""Errors of the history store.

``StoreError`` is the environment's fault (disk full, file locked, permission denied): the
agent shows its message to the user. Programming errors (bad arguments) stay ``ValueError``.
"""

from __future__ import annotations


class StoreError(Exception):
    """The history database could not be read or written; the message says why."""


class NewerSchemaError(StoreError):
    """The database was written by a newer Heatshare; it is left untouched."""

    def __init__(self, path: object, found: int, known: int) -> None:
        super().__init__(
            f"The history database {path} was written by a newer version of Heatshare "
            f"(schema version {found}; this version knows up to {known}). It has not been "
            "changed. Update Heatshare, or start with a different profile folder."
        )
        self.found = found
        self.known = known

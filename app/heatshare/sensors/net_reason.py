"""Why a connection failed, in a few words a householder can act on.

Light on purpose (the standard library only): the plug reader and the bench scripts import the
sensors without paho or pydantic.
"""

from __future__ import annotations

import socket


def socket_reason(exc: BaseException) -> str:
    """The root cause of a failed connection, in a few words ("connection refused")."""
    stack: list[BaseException] = [exc]
    seen: set[int] = set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "the name is not known"
        if isinstance(e, TimeoutError):
            return "no answer in time"
        if isinstance(e, ConnectionResetError):
            return "the connection was reset"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
        nested = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        stack.extend(n for n in nested if isinstance(n, BaseException))
    return "the connection failed"

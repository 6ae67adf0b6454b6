"""The fallback where Heatshare knows no autostart: it says so and changes nothing."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class NoAutostart:
    """An autostart that is never enabled; the settings page hides its switch."""

    supported = False

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def is_enabled(self) -> bool:
        return False

    def set_enabled(self, on: bool, *, start_hidden: bool = True) -> None:
        log.info("Start at login not changed: %s", self.reason)

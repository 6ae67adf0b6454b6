"""The type of the ``make_app`` fixture (tests/gui/conftest.py), for the tests' annotations."""

from __future__ import annotations

from typing import Protocol

from agentproc import RealAgent

from heatshare.gui.app import HeatshareApp


class AppFactory(Protocol):
    def __call__(
        self,
        *,
        agent: RealAgent | None = None,
        demo: bool = False,
        wizard: bool = False,
        tray: bool = False,
    ) -> HeatshareApp:
        """A started app, connected to its agent; shut down and deleted after the test.

        Args:
            agent: A real agent process to show, on its profile; without one, the test's
                ``fake`` client answers as the agent (on a temp profile, ``--connect``).
            demo: Start as ``--demo`` does.
            wizard: Let the first-run wizard offer itself; otherwise it counts as dismissed.
            tray: Give the app a real tray controller before it starts (the offscreen
                platform has no tray, so the app builds none): it shows no icon, but its
                menu and notices work.
        """
        ...

"""Polls for the Heating, Jobs and Network pages: only while their page is in front of a shown
window.

Heating and jobs every 2 s, the network and its earnings every 10 s; the dashboard's earnings
chart every 30 s, where this machine is in a network. The calls go through the
bridge, so none runs on the UI thread, and a poll is not sent while the previous one is
unanswered (a slow agent never gets a queue of them).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer

from heatshare.gui.bridge import AgentBridge
from heatshare.gui.window import DASHBOARD, HEATING, JOBS, NETWORK, MainWindow
from heatshare.protocol.local_api import NetworkStatus

JOBS_POLL_MS = 2000
HEATING_POLL_MS = 2000
NETWORK_POLL_MS = 10_000
DASHBOARD_EARNINGS_POLL_MS = 30_000


class PagePolls(QObject):
    """Starts and stops the page polls as the window, its page and the agent change."""

    def __init__(
        self, window: MainWindow, bridge: AgentBridge, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("page-polls")
        self._window = window
        self._bridge = bridge
        self._stopped = False
        self.jobs_in_flight = False
        self.network_in_flight = False
        self.earnings_in_flight = False
        self.heating_in_flight = False
        self.enrolled = False  # as the last network status said
        self.earnings_timer = QTimer(self)
        self.earnings_timer.setObjectName("dashboard-earnings-poll")
        self.earnings_timer.setInterval(DASHBOARD_EARNINGS_POLL_MS)
        self.earnings_timer.timeout.connect(self.poll_earnings)
        self.heating_timer = QTimer(self)
        self.heating_timer.setObjectName("heating-poll")
        self.heating_timer.setInterval(HEATING_POLL_MS)
        self.heating_timer.timeout.connect(self.poll_heating)
        self.jobs_timer = QTimer(self)
        self.jobs_timer.setObjectName("jobs-poll")
        self.jobs_timer.setInterval(JOBS_POLL_MS)
        self.jobs_timer.timeout.connect(self.poll_jobs)
        self.network_timer = QTimer(self)
        self.network_timer.setObjectName("network-poll")
        self.network_timer.setInterval(NETWORK_POLL_MS)
        self.network_timer.timeout.connect(self.poll_network)
        bridge.jobs_received.connect(self._jobs_done)
        bridge.jobs_failed.connect(self._jobs_done)
        bridge.network_received.connect(self._network_done)
        bridge.network_failed.connect(self._network_failed)
        bridge.earnings_received.connect(self._earnings_done)
        bridge.earnings_failed.connect(self._earnings_done)
        bridge.heating_received.connect(self._heating_done)
        bridge.heating_failed.connect(self._heating_done)

    def update(self) -> None:
        """Match the timers to what shows now; a page just brought forward polls at once."""
        connected = self._bridge.reachable and not self._stopped
        self._set(self.jobs_timer, connected and self._window.page_visible(JOBS), self.poll_jobs)
        self._set(
            self.heating_timer,
            connected and self._window.page_visible(HEATING),
            self.poll_heating,
        )
        self._set(
            self.network_timer,
            connected and self._window.page_visible(NETWORK),
            self.poll_network,
        )
        self._set(
            self.earnings_timer,
            connected and self.enrolled and self._window.page_visible(DASHBOARD),
            self.poll_earnings,
        )

    @staticmethod
    def _set(timer: QTimer, on: bool, poll: Callable[[], None]) -> None:
        if on and not timer.isActive():
            timer.start()
            poll()
        elif not on and timer.isActive():
            timer.stop()

    def poll_jobs(self) -> None:
        if not self.jobs_in_flight and not self._stopped:
            self.jobs_in_flight = True
            self._bridge.load_jobs()

    def poll_network(self) -> None:
        if not self.network_in_flight and not self._stopped:
            self.network_in_flight = True
            self._bridge.load_network()

    def poll_heating(self) -> None:
        if not self.heating_in_flight and not self._stopped:
            self.heating_in_flight = True
            self._bridge.load_heating()

    def _heating_done(self, *_: object) -> None:
        self.heating_in_flight = False

    def _jobs_done(self, *_: object) -> None:
        self.jobs_in_flight = False

    def poll_earnings(self) -> None:
        if not self.earnings_in_flight and not self._stopped:
            self.earnings_in_flight = True
            self._bridge.load_earnings()

    def _network_done(self, network: NetworkStatus) -> None:
        self.network_in_flight = False
        if network.enrolled != self.enrolled:
            self.enrolled = network.enrolled
            self.update()
        # Earnings come from the network: asked for only where this machine is in one.
        if (
            network.enrolled
            and self.network_timer.isActive()
            and not self.earnings_in_flight
            and not self._stopped
        ):
            self.earnings_in_flight = True
            self._bridge.load_earnings()

    def _network_failed(self, _message: str) -> None:
        self.network_in_flight = False

    def _earnings_done(self, *_: object) -> None:
        self.earnings_in_flight = False

    def stop(self) -> None:
        self._stopped = True
        self.jobs_timer.stop()
        self.network_timer.stop()
        self.heating_timer.stop()
        self.earnings_timer.stop()

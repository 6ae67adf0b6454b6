"""The app's composition root: builds every object once, wires them, and tears them down in order.

Nothing below this module looks up the application object or another global: each part gets
what it needs here (STYLE.md, "one composition root").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtWidgets import QApplication, QCheckBox, QMessageBox

from heatshare.gui.bridge import (
    AgentBridge,
    AgentLauncher,
    ClientFactory,
    ConnectionState,
    EndpointSource,
    FixedEndpoint,
    HistoryResult,
    LocalEndpoints,
)
from heatshare.gui.energy_controller import EnergyController
from heatshare.gui.notifications import Notice, SafetyNotices
from heatshare.gui.page_polls import PagePolls
from heatshare.gui.system_service import SystemService
from heatshare.gui.tasks import TaskRunner
from heatshare.gui.window import DASHBOARD, HEATING, JOBS, NETWORK, MainWindow
from heatshare.protocol.discovery import Paths
from heatshare.protocol.heating import HeatingStatus, HeatingSummary, SetpointRequest
from heatshare.protocol.local_api import AgentStatus, EarningsResponse, NetworkStatus, Settings

if TYPE_CHECKING:
    from heatshare.gui.autostart import Autostart
    from heatshare.gui.charts import ChartPanel
    from heatshare.gui.earnings_chart import EarningsChart
    from heatshare.gui.heating_page import HeatingPage
    from heatshare.gui.settings_dialog import SettingsDialog
    from heatshare.gui.wizard import JoinWizard

log = logging.getLogger(__name__)

CHARTS_FALLBACK_MS = 1500  # build the charts even when no agent answers, after this long


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line asked for."""

    profile_dir: str | None = None
    connect: str | None = None
    token: str | None = None
    start_hidden: bool = False
    demo: bool = False  # join the demo network once the agent answers, and show the Jobs page


# Shown under the disabled switch when the app shows an agent on another machine.
AUTOSTART_REMOTE = (
    "Not available while Heatshare shows an agent on another machine: "
    "start at login is for this computer's own agent."
)
WIZARD_DISMISSED_KEY = "wizard/dismissed"
DEMO_STARTING = "Starting the demo network on this computer… the first job arrives within a minute."


class HeatshareApp(QObject):
    """Owns the bridge, the window and the tray; ``shutdown`` takes them down in order."""

    def __init__(
        self,
        qapp: QApplication,
        options: Options,
        paths: Paths,
        *,
        autostart: Autostart | None = None,
        client_factory: ClientFactory | None = None,
        system_service: SystemService | None = None,
    ) -> None:
        """Args:
        qapp: The application.
        options: What the command line asked for.
        paths: The profile's folders.
        autostart: Start at login (tests pass one rooted in a temp folder); by default this
            platform's, for ``options.profile_dir``.
        client_factory: Builds the agent client (tests pass one that replays the agent's
            answers); by default the HTTP client.
        system_service: The agent's systemd unit (tests pass one with a fake runner); by
            default the real one, or none with ``--connect``.
        """
        super().__init__()
        self.setObjectName("heatshare-app")
        self.qapp = qapp
        self.options = options
        self.paths = paths
        self.tasks = TaskRunner(self)
        source: EndpointSource
        launcher: AgentLauncher | None = None
        if options.connect:
            source = FixedEndpoint(options.connect, options.token)
        else:
            source = LocalEndpoints(paths)
            launcher = AgentLauncher(paths, options.profile_dir)
        self.launcher = launcher
        extra: dict[str, Any] = {}
        if client_factory is not None:
            extra["client_factory"] = client_factory
        self.bridge = AgentBridge(source, self.tasks, launcher=launcher, parent=self, **extra)
        self.ui_settings = QSettings(
            str(paths.config_dir / "app.ini"), QSettings.Format.IniFormat, self
        )

        self.autostart = autostart if autostart is not None else _make_autostart(options)
        # This computer's systemd unit: nothing to offer while showing another machine's agent.
        self.system_service = system_service
        if system_service is None and not options.connect:
            self.system_service = SystemService()
        self.icons = _load_icons()
        self.window = MainWindow(self.icons.app if self.icons is not None else None)
        self.charts: ChartPanel | None = None
        self.earnings_chart: EarningsChart | None = None  # the dashboard's, beside heat
        self.settings_dialog: SettingsDialog | None = None
        self.wizard: JoinWizard | None = None
        self._wizard_wanted = False  # not enrolled and not dismissed: offer once it can show
        self._network_checked = False
        self._demo_pending = options.demo
        self.safety_notices = SafetyNotices()
        self._last_heating: HeatingSummary | None = None
        # A stop is announced once it has held a while: this asks again when it will have.
        self._notice_timer = QTimer(self)
        self._notice_timer.setObjectName("safety-notice-recheck")
        self._notice_timer.setSingleShot(True)
        # A coarse timer may fire 5 % early: before the stop's hold is over, one ask too many.
        self._notice_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._notice_timer.timeout.connect(self.bridge.load_heating)
        self.polls = PagePolls(self.window, self.bridge, self)
        self.energy = EnergyController(self.window, self.bridge, self)  # the cost of heat
        self.tray = self._make_tray()
        self._quitting = False
        self._charts_timer = QTimer(self)
        self._charts_timer.setObjectName("charts-fallback")
        self._charts_timer.setSingleShot(True)
        self._charts_timer.timeout.connect(self.ensure_charts)
        self._wire()

    # -- building ------------------------------------------------------------------------

    def _make_tray(self) -> Any:
        if self.icons is None:
            return None
        try:
            from heatshare.gui.tray import TrayController
        except ImportError:
            log.info("No tray module in this build")
            return None
        tray = TrayController(self.icons, self)
        if not tray.available():
            log.info("No system tray on this desktop: closing the window quits the app")
            tray.close()
            tray.deleteLater()
            return None
        tray.open_requested.connect(self.window.bring_to_front)
        tray.pause_requested.connect(self.bridge.pause)
        tray.resume_requested.connect(self.bridge.resume)
        tray.quit_requested.connect(self.quit)
        tray.quit_and_stop_requested.connect(self.quit_and_stop_agent)
        tray.mode_requested.connect(self.bridge.set_mode)
        tray.boost_requested.connect(self.bridge.boost)
        tray.nudge_requested.connect(
            lambda delta: self.bridge.setpoint(SetpointRequest(delta_c=delta))
        )
        return tray

    def _wire(self) -> None:
        b, w = self.bridge, self.window
        b.status_received.connect(self._on_status)
        b.connection_changed.connect(self._on_connection)
        b.settings_received.connect(self._on_settings)
        b.action_failed.connect(self._on_action_failed)
        w.visibility_changed.connect(self._on_visibility)
        w.close_requested.connect(self._on_close_requested)
        w.settings_requested.connect(self.open_settings)
        w.pause_requested.connect(b.pause)
        w.resume_requested.connect(b.resume)
        w.dashboard.first_real_paint.connect(self.ensure_charts)
        w.page_changed.connect(self._on_page)
        b.network_received.connect(self._on_network)
        b.network_failed.connect(self._on_network_failed)
        b.enrol_failed.connect(self._on_enrol_failed)
        b.jobs_received.connect(w.jobs_page.set_jobs)
        b.jobs_failed.connect(w.jobs_page.set_error)
        b.earnings_received.connect(w.network_page.set_earnings)
        b.earnings_received.connect(self._on_earnings)
        b.earnings_failed.connect(w.network_page.set_error)
        b.job_log_received.connect(w.jobs_page.set_log)
        b.job_file_received.connect(w.jobs_page.set_file)
        b.job_detail_failed.connect(w.jobs_page.set_detail_error)
        w.jobs_page.log_requested.connect(b.load_job_log)
        w.jobs_page.file_requested.connect(b.load_job_file)
        w.network_page.join_requested.connect(self.open_wizard)
        w.network_page.demo_requested.connect(self.start_demo)
        w.network_page.leave_requested.connect(self.leave_network)
        w.heating_page_built.connect(self._wire_heating_page)
        b.heating_received.connect(self._on_heating)
        b.heating_failed.connect(self._on_heating_failed)
        b.heating_action_failed.connect(self._on_heating_action_failed)
        # Light and dark follow the system (Qt 6.5+): the platform theme changes the app's
        # palette, and the window re-resolves its palette-relative style and chart colours.
        self.qapp.styleHints().colorSchemeChanged.connect(self._on_color_scheme)

    def ensure_charts(self) -> None:
        """Build the charts once the dashboard has painted real figures (or after a wait)."""
        self._charts_timer.stop()
        if self.charts is not None or self._quitting:
            return
        from heatshare.gui.charts import ChartPanel  # pyqtgraph: a third of a second

        charts = ChartPanel(self.bridge.request_history)
        self.bridge.history_received.connect(self._on_history)
        self.bridge.history_failed.connect(charts.history_failed)
        self.charts = charts
        self.window.set_charts(charts)
        if self.bridge.settings is not None:
            charts.set_temperature_unit(self.bridge.settings.temperature_unit)
        if self.bridge.last_status is not None:
            charts.append_status(self.bridge.last_status)
        charts.set_active(self.window.shown)

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        hidden = self.options.start_hidden and self.tray is not None
        if self.tray is not None:
            self.tray.show()
            self.tray.update(None, False)
        if self.options.demo:
            self.window.show_page(JOBS)
            self.window.jobs_page.set_notice(DEMO_STARTING)
        if hidden:
            self.bridge.set_visible(False)
        else:
            self.window.show()
        self.bridge.start()
        self._charts_timer.start(CHARTS_FALLBACK_MS)

    def _on_color_scheme(self, _scheme: object) -> None:
        self.window.refresh_theme()

    def _on_status(self, status: AgentStatus) -> None:
        self.window.set_status(status)
        if self.charts is not None:
            self.charts.append_status(status)
        if self.tray is not None:
            self.tray.update(status, True, fahrenheit=self._fahrenheit())
        h = status.heating
        if self.safety_notices.wants_details(h, self._last_heating):
            self.bridge.load_heating()  # its events say which rule stopped it, and why
        elif h is None or not h.safety_stop:
            self.safety_notices.from_summary(h)  # the stop is over: the next one is news
        self._last_heating = h

    # -- heating -------------------------------------------------------------------------

    def _wire_heating_page(self, page: HeatingPage) -> None:
        """The Heating page, built the first time it shows, gets its links to the agent."""
        b = self.bridge
        page.mode_requested.connect(b.set_mode)
        page.boost_requested.connect(b.boost)
        page.setpoint_requested.connect(b.setpoint)
        page.save_requested.connect(b.save_heating_settings)
        page.revert_requested.connect(b.load_heating_settings)
        page.probe_requested.connect(b.room_probe)
        b.heating_settings_received.connect(page.set_settings)
        b.heating_settings_failed.connect(page.set_settings_error)
        b.room_probe_received.connect(page.set_probe_result)
        b.room_probe_failed.connect(page.set_probe_error)
        if b.settings is not None:
            page.set_temperature_unit(b.settings.temperature_unit)

    def _on_heating(self, heating: HeatingStatus) -> None:
        if self.window.heating_page is not None:
            self.window.heating_page.set_heating(heating)
        now = datetime.now(UTC)
        for notice in self.safety_notices.from_status(heating, now):
            self._notify(notice)
        wait = self.safety_notices.recheck_in(heating, now)
        if wait is None:
            self._notice_timer.stop()
        elif not self._notice_timer.isActive() and not self._quitting:
            self._notice_timer.start(round(wait * 1000) + 100)

    def _on_heating_failed(self, message: str) -> None:
        if self.window.heating_page is not None:
            self.window.heating_page.set_heating_error(message)
        notice = self.safety_notices.from_summary(self._last_heating)
        if notice is not None:
            self._notify(notice)

    def _on_heating_action_failed(self, message: str) -> None:
        log.info("Heating change refused: %s", message)
        if self.window.heating_page is not None:
            self.window.heating_page.set_action_error(message)
        if not self.window.shown and self.tray is not None:
            self.tray.notify("Heatshare", message)  # asked from the tray: answered there

    def _notify(self, notice: Notice) -> None:
        log.info("%s: %s", notice.title, notice.message)
        if self.tray is not None:
            self.tray.notify(notice.title, notice.message)

    def _update_heating_page(self) -> None:
        page = self.window.heating_page
        if page is None:
            return  # not shown yet
        active = self.window.page_visible(HEATING)
        page.set_active(active)
        if active and page.needs_settings and self.bridge.reachable:
            self.bridge.load_heating_settings()

    def _on_connection(self, state: ConnectionState, message: str) -> None:
        self.window.set_connection(state, message)
        if self.tray is not None and state is not ConnectionState.CONNECTED:
            self.tray.update(self.bridge.last_status, False)
        if state is ConnectionState.CONNECTED and self.charts is not None:
            self.charts.reload()
        if state is ConnectionState.CONNECTED and not self._network_checked:
            # Once per run: whether to offer the wizard, or to start the demo (--demo).
            self._network_checked = True
            self.bridge.load_network()
        self.polls.update()
        self.energy.update()
        self._update_heating_page()

    # -- the compute network -------------------------------------------------------------

    def _on_page(self, _name: str) -> None:
        self.polls.update()
        self.energy.update()
        self._update_earnings_chart()
        self.window.network_page.set_active(self.window.page_visible(NETWORK))
        self._update_heating_page()

    def _on_network(self, network: NetworkStatus) -> None:
        self.window.network_page.set_network(network)
        if not network.enrolled:
            self.window.earnings_host.hide()  # a network left: its earnings go with it
            self._update_earnings_chart()
        if network.enrolled:
            self.window.jobs_page.set_notice("")
            self._wizard_wanted = False
            if self.wizard is not None and self.wizard.busy:
                self.wizard.finish(network)
                self.window.show_page(JOBS)
        if self._demo_pending:
            self._demo_pending = False
            if network.enrolled and network.demo:
                self.window.jobs_page.set_notice("")
            else:
                self.start_demo()
            return
        if (
            not network.enrolled
            and self.wizard is None
            and not self.ui_settings.value(WIZARD_DISMISSED_KEY, False, type=bool)
        ):
            self._wizard_wanted = True
            self._offer_wizard()

    def _on_earnings(self, earnings: EarningsResponse) -> None:
        if self._quitting:
            return
        if self.earnings_chart is None:
            from heatshare.gui.earnings_chart import EarningsChart  # pyqtgraph

            self.earnings_chart = EarningsChart()
            self.window.set_earnings_chart(self.earnings_chart)
        self.window.earnings_host.show()
        self.earnings_chart.set_earnings(earnings)
        self._update_earnings_chart()

    def _update_earnings_chart(self) -> None:
        """The dashboard's earnings chart draws only while the dashboard is in view."""
        if self.earnings_chart is not None:
            self.earnings_chart.set_active(
                self.window.page_visible(DASHBOARD) and not self.window.earnings_host.isHidden()
            )

    def _on_network_failed(self, message: str) -> None:
        log.info("Network status not available: %s", message)
        self.window.network_page.set_error(message)

    def _offer_wizard(self) -> None:
        if self._wizard_wanted and self.window.shown and self.wizard is None and not self._quitting:
            self._wizard_wanted = False
            self.open_wizard()

    def open_wizard(self) -> JoinWizard:
        """Show the join wizard (beside the window, without a nested event loop)."""
        from heatshare.gui.wizard import JoinWizard

        if self.wizard is not None:
            self.wizard.raise_()
            return self.wizard
        wizard = JoinWizard(self.window)
        wizard.join_requested.connect(self.bridge.enrol)
        wizard.demo_requested.connect(self.bridge.start_demo)
        wizard.dismissed.connect(self._wizard_dismissed)
        wizard.finished.connect(self._wizard_closed)
        self.wizard = wizard
        wizard.show()
        return wizard

    def _wizard_dismissed(self) -> None:
        self.ui_settings.setValue(WIZARD_DISMISSED_KEY, True)
        self.ui_settings.sync()

    def _close_wizard(self) -> None:
        """Close the wizard without recording a dismissal."""
        if self.wizard is not None:
            self.wizard.dismissed.disconnect(self._wizard_dismissed)
            self.wizard.done(0)

    def _wizard_closed(self, _result: int) -> None:
        if self.wizard is not None:
            self.wizard.deleteLater()
            self.wizard = None

    def start_demo(self) -> None:
        """Join the demo network: through the wizard where it is open, else from the page."""
        if self.wizard is not None:
            self.wizard.demo_button.click()
            return
        self.window.jobs_page.set_notice(DEMO_STARTING)
        self.bridge.start_demo()

    def leave_network(self) -> None:
        answer = QMessageBox.question(
            self.window,
            "Leave this network?",
            "This machine stops taking the network's jobs. Results and failure reports "
            "still waiting to be sent are dropped, and joining again needs a new pairing "
            "code.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.bridge.leave_network()

    def _on_enrol_failed(self, message: str) -> None:
        if self.wizard is not None and self.wizard.busy:
            self.wizard.show_error(message)
            return
        # --demo, or the Network page's buttons: no wizard to say it, so the pages do.
        log.info("Joining the network failed: %s", message)
        self.window.jobs_page.set_notice("")
        self.window.jobs_page.set_error(message)
        self.window.network_page.set_error(message)

    def _on_history(self, result: HistoryResult) -> None:
        if self.charts is not None:
            self.charts.load_history(result)

    def _fahrenheit(self) -> bool | None:
        settings = self.bridge.settings
        return None if settings is None else settings.temperature_unit == "F"

    def _on_settings(self, settings: Settings) -> None:
        self.window.dashboard.set_preferences(settings.temperature_unit, settings.tariff_per_kwh)
        if self.window.heating_page is not None:
            self.window.heating_page.set_temperature_unit(settings.temperature_unit)
        if self.charts is not None:
            self.charts.set_temperature_unit(settings.temperature_unit)
        # Settings also arrive on every (re)connection: only a save closes the dialog.
        if self.settings_dialog is not None and self.settings_dialog.busy:
            self.settings_dialog.accept()

    def _on_action_failed(self, message: str) -> None:
        log.warning("Agent action failed: %s", message)
        if self.window.shown:
            QMessageBox.warning(self.window, "Heatshare", message)

    def _on_visibility(self, visible: bool) -> None:
        self.bridge.set_visible(visible)
        if self.charts is not None:
            self.charts.set_active(visible)
        self._update_earnings_chart()
        self.polls.update()
        self.energy.update()
        self.window.network_page.set_active(self.window.page_visible(NETWORK))
        self._update_heating_page()
        if visible:
            self._offer_wizard()
        elif self.wizard is not None and not self.wizard.busy:
            # Closed to the tray with the question open: no answer is not "not now", and a
            # dialog left floating without its window would be a stray. Offered once a run.
            self._close_wizard()

    def _on_close_requested(self) -> None:
        if self.tray is not None:
            self.window.hide()  # close to tray: heating and the app go on
            return
        if self.ui_settings.value("close/confirmed", False, type=bool):
            self.quit()
            return
        box = QMessageBox(self.window)
        box.setWindowTitle("Quit Heatshare?")
        box.setText("There is no system tray here, so closing the window quits the app.")
        box.setInformativeText(
            "Heating goes on: the agent keeps running in the background, and opening "
            "Heatshare again shows it."
        )
        box.setStandardButtons(QMessageBox.StandardButton.Close | QMessageBox.StandardButton.Cancel)
        again = QCheckBox("Don't ask again")
        box.setCheckBox(again)
        if box.exec() == QMessageBox.StandardButton.Close:
            if again.isChecked():
                self.ui_settings.setValue("close/confirmed", True)
                self.ui_settings.sync()
            self.quit()

    def open_settings(self) -> None:
        from heatshare.gui.settings_dialog import SettingsDialog

        settings = self.bridge.settings
        if settings is None:
            QMessageBox.information(
                self.window,
                "Heatshare",
                "The settings come from the agent, which is not connected.",
            )
            return
        dialog = SettingsDialog(
            settings,
            self.autostart,
            self.window,
            autostart_unavailable=AUTOSTART_REMOTE if self.options.connect else None,
            system_service=self.system_service,
            tasks=self.tasks,
        )
        self.settings_dialog = dialog

        def save() -> None:
            patch = dialog.patch()
            if isinstance(patch, str):
                dialog.show_error(patch)
                return
            # Local and quick, so first: a failure keeps the dialog open before the agent
            # has saved anything.
            failed = dialog.apply_start_at_login()
            if failed is not None:
                dialog.show_error(failed)
                return
            if not patch.model_fields_set:
                dialog.accept()
                return
            dialog.set_busy()
            self.bridge.save_settings(patch)

        dialog.buttons.accepted.connect(save)
        dialog.energy_requested.connect(self.energy.open_settings)
        self.bridge.settings_failed.connect(dialog.show_error)
        try:
            dialog.exec()
        finally:
            self.bridge.settings_failed.disconnect(dialog.show_error)
            self.settings_dialog = None
            dialog.deleteLater()

    # -- quitting ------------------------------------------------------------------------

    def quit(self) -> None:
        self._quitting = True
        QCoreApplication.exit(0)

    def quit_and_stop_agent(self) -> None:
        self._quitting = True
        self.bridge.shutdown_agent(on_done=lambda: QCoreApplication.exit(0))

    def shutdown(self) -> None:
        """Stop everything that runs, in order; after this only deletion is left."""
        self._quitting = True
        self._charts_timer.stop()
        self._notice_timer.stop()
        self.qapp.styleHints().colorSchemeChanged.disconnect(self._on_color_scheme)
        self.bridge.stop()
        self.polls.stop()
        self.energy.stop()
        if self.charts is not None:
            self.charts.stop()
        self.window.network_page.stop()
        if self.window.heating_page is not None:
            self.window.heating_page.stop()
        if self.earnings_chart is not None:
            self.earnings_chart.stop()
        self._close_wizard()  # quitting is not "not now" either
        self.tasks.shutdown(wait=True)  # no worker thread outlives the objects it reports to
        if self.tray is not None:
            close = getattr(self.tray, "close", None) or getattr(self.tray, "hide", None)
            if close is not None:
                close()
        self.window.allow_close = True
        self.window.close()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def _make_autostart(options: Options) -> Autostart:
    """This platform's start at login for this profile; none for an agent elsewhere.

    An app started with ``--connect`` shows another machine's agent: an entry without the
    address would start a local agent at login, and one with it would need the token, which
    is not written into a file others may read.
    """
    from heatshare.gui.autostart import autostart_for_platform
    from heatshare.gui.autostart.noop import NoAutostart

    if options.connect:
        return NoAutostart("the app shows an agent on another machine (--connect)")
    return autostart_for_platform(profile_dir=options.profile_dir)


def _load_icons() -> Any:
    try:
        from heatshare.gui.icons import AppIcons
    except ImportError:
        return None
    try:
        return AppIcons.load()
    except OSError as exc:
        log.error("Icons not loaded: %s", exc)
        return None

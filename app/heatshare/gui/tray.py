"""The tray icon: its look shows the heater's state, its menu is rebuilt each time it opens."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QRect, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from heatshare.gui import tray_menu
from heatshare.gui.heating_text import nudge_delta_c
from heatshare.gui.icons import AppIcons
from heatshare.protocol.heating import HeatMode
from heatshare.protocol.local_api import AgentStatus

NOTICE_MS = 15_000  # how long a safety notification stays up where the desktop lets us say

# Qt platforms that never have a tray. Showing an icon there only earns a Qt warning
# ("No such signal QPlatformNativeInterface::systemTrayWindowChanged").
_TRAYLESS_PLATFORMS = frozenset({"offscreen", "minimal"})


class TrayController(QObject):
    """Owns the tray icon and its menu, and turns clicks into requests.

    It decides nothing: the composition root connects its signals to the window and the
    bridge, and feeds it every new status with :meth:`update`.

    Signals:
        open_requested: The user wants the window (left click, or "Open Heatshare").
        pause_requested: "Pause for 1 hour"; carries the duration in seconds.
        resume_requested: "Resume".
        quit_requested: "Quit Heatshare": the app quits, the agent keeps heating.
        quit_and_stop_requested: "Quit and stop the agent".
        mode_requested: A mode from the "Mode" submenu; carries its ``HeatMode``.
        boost_requested: "Boost for 1 hour" (60) or "End boost" (0); carries the minutes.
        nudge_requested: "Warmer" or "Cooler"; carries the change of target in °C.
        notified: A notification was shown (title, message): tests and diagnostics.
        menu_shown: The menu was rebuilt and is about to show (tests and diagnostics).
    """

    mode_requested = Signal(object)
    boost_requested = Signal(int)
    nudge_requested = Signal(float)
    notified = Signal(str, str)
    open_requested = Signal()
    pause_requested = Signal(int)
    resume_requested = Signal()
    quit_requested = Signal()
    quit_and_stop_requested = Signal()
    menu_shown = Signal()

    def __init__(self, icons: AppIcons, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tray")
        self._icons = icons
        self._status: AgentStatus | None = None
        self._reachable = True
        self._fahrenheit = False
        self._state = tray_menu.tray_state(None, True)
        self._actions: dict[str, QAction] = {}
        self._submenus: list[QMenu] = []
        self._closed = False

        self._tray = QSystemTrayIcon(icons.state(self._state), self)
        self._tray.setObjectName("tray-icon")
        # A QMenu takes only a widget as parent; the controller keeps it and deletes it in
        # close(), so it never outlives the tray icon that shows it.
        self._menu = QMenu()
        self._menu.setObjectName("tray-menu")
        self._menu.aboutToShow.connect(self._on_about_to_show)
        self._menu.triggered.connect(self._on_triggered)
        self._tray.setContextMenu(self._menu)
        self._tray.activated.connect(self._on_activated)
        self._rebuild_menu()
        self._tray.setToolTip(self.tooltip())

    # -- public API -----------------------------------------------------------------------

    def available(self) -> bool:
        """Whether the desktop has a system tray to show the icon in."""
        return QSystemTrayIcon.isSystemTrayAvailable()

    def show(self) -> None:
        """Show the icon. Where no tray exists yet (X11), Qt shows it once one appears."""
        if self._closed or QGuiApplication.platformName() in _TRAYLESS_PLATFORMS:
            return
        self._tray.show()

    def hide(self) -> None:
        if not self._closed:
            self._tray.hide()

    def is_visible(self) -> bool:
        return not self._closed and self._tray.isVisible()

    def update(
        self, status: AgentStatus | None, reachable: bool, *, fahrenheit: bool | None = None
    ) -> None:
        """Show a new status (or None before the first); ``reachable`` False while it is away.

        Args:
            status: The agent's latest status; kept while unreachable, so the menu can still
                say what it last knew.
            reachable: Whether the agent answered the last request.
            fahrenheit: The temperature unit setting; None keeps the current one.
        """
        if self._closed:
            return  # a status that arrives during shutdown
        self._status = status
        self._reachable = reachable
        if fahrenheit is not None:
            self._fahrenheit = fahrenheit
        state = tray_menu.tray_state(status, reachable)
        if state != self._state:
            self._state = state
            self._tray.setIcon(self._icons.state(state))
        self._tray.setToolTip(self.tooltip())
        if self._menu.isVisible():
            self._refresh_open_menu()

    def notify(self, title: str, message: str) -> None:
        """A desktop notification from the tray icon (a safety stop and its reason)."""
        if self._closed:
            return
        if self._tray.isVisible() and QSystemTrayIcon.supportsMessages():
            self._tray.showMessage(title, message, QSystemTrayIcon.MessageIcon.Warning, NOTICE_MS)
        self.notified.emit(title, message)

    def close(self) -> None:
        """Remove the icon from the tray and release the menu. The controller is done.

        Calling it again, or calling ``show``/``hide``/``update`` afterwards, does nothing.
        """
        if self._closed:
            return
        self._closed = True
        self._tray.hide()
        self._menu.aboutToShow.disconnect(self._on_about_to_show)
        self._menu.triggered.disconnect(self._on_triggered)
        self._tray.activated.disconnect(self._on_activated)
        self._menu.deleteLater()
        self._tray.deleteLater()

    @property
    def state(self) -> str:
        """The state the icon shows (see :func:`heatshare.gui.tray_menu.tray_state`)."""
        return self._state

    @property
    def menu(self) -> QMenu:
        return self._menu

    def tooltip(self) -> str:
        return tray_menu.tray_tooltip(self._status, self._reachable, fahrenheit=self._fahrenheit)

    def geometry(self) -> QRect:
        """Where the icon is on screen (empty where the platform does not say)."""
        return self._tray.geometry()

    # -- menu -----------------------------------------------------------------------------

    def _entries(self) -> list[tray_menu.MenuEntry]:
        return tray_menu.tray_menu_entries(
            self._status, self._reachable, fahrenheit=self._fahrenheit
        )

    def _rebuild_menu(self) -> None:
        self._menu.clear()  # deletes the actions the menu owns
        for sub in self._submenus:  # a submenu is a child widget: not the menu's action
            sub.deleteLater()
        self._submenus = []
        self._actions = {}
        for entry in self._entries():
            self._add(self._menu, entry)

    def _add(self, menu: QMenu, entry: tray_menu.MenuEntry) -> None:
        if entry.separator:
            action = menu.addSeparator()
        elif entry.children:
            # Qt sends a submenu's clicks on to the top menu's triggered signal.
            sub = QMenu(entry.text, menu)
            self._submenus.append(sub)
            for child in entry.children:
                self._add(sub, child)
            action = menu.addMenu(sub)
        else:
            action = menu.addAction(entry.text)
            action.setEnabled(entry.enabled)
            if entry.checked is not None:
                action.setCheckable(True)
                action.setChecked(entry.checked)
        action.setData(entry.key)
        self._actions[entry.key] = action

    def _refresh_open_menu(self) -> None:
        # Rebuilding an open menu would drop the user's keyboard selection; update the
        # texts in place when the entries are the same, and wait for the next open otherwise.
        flat = [c for e in self._entries() for c in (e, *e.children)]
        if sorted(e.key for e in flat) != sorted(self._actions):
            return
        for entry in flat:
            action = self._actions[entry.key]
            if not entry.separator:
                action.setText(entry.text)
                action.setEnabled(entry.enabled)
                if entry.checked is not None:
                    action.setChecked(entry.checked)

    def _on_about_to_show(self) -> None:
        self._rebuild_menu()
        self.menu_shown.emit()

    def _on_triggered(self, action: QAction) -> None:
        key = action.data()
        if not isinstance(key, str):
            return
        if key.startswith(tray_menu.MODE_PREFIX):
            self.mode_requested.emit(HeatMode(key.removeprefix(tray_menu.MODE_PREFIX)))
        elif key == tray_menu.BOOST:
            self.boost_requested.emit(tray_menu.BOOST_MINUTES)
        elif key == tray_menu.END_BOOST:
            self.boost_requested.emit(0)
        elif key in (tray_menu.WARMER, tray_menu.COOLER):
            step = nudge_delta_c("F" if self._fahrenheit else "C")
            self.nudge_requested.emit(step if key == tray_menu.WARMER else -step)
        elif key == tray_menu.OPEN:
            self.open_requested.emit()
        elif key == tray_menu.PAUSE:
            self.pause_requested.emit(tray_menu.PAUSE_SECONDS)
        elif key == tray_menu.RESUME:
            self.resume_requested.emit()
        elif key == tray_menu.QUIT:
            self.quit_requested.emit()
        elif key == tray_menu.QUIT_AND_STOP:
            self.quit_and_stop_requested.emit()

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        # On macOS a click on the icon opens the menu; opening the window too would be one
        # thing too many, and the menu's first entry opens it.
        if reason is QSystemTrayIcon.ActivationReason.Trigger and sys.platform != "darwin":
            self.open_requested.emit()

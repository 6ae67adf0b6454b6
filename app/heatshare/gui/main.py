"""``heatshare``: the desktop app's entry point (command line, Qt set-up, ordered teardown)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from heatshare.__about__ import __app_id__, __app_name__, __version__

log = logging.getLogger("heatshare.gui.main")

TOKEN_ENV = "HEATSHARE_TOKEN"  # noqa: S105 (the name of a variable, not a secret)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heatshare",
        description="Heatshare: watch the heat your computer puts into the room, and the "
        "jobs it runs for a compute network. The window opens with an icon in the system "
        "tray; if no agent runs for this profile, the app starts one.",
        epilog="The agent and the network's server have their own commands: "
        "heatshare-agent --help, heatshare-coordinator --help.",
    )
    parser.add_argument(
        "--profile-dir",
        metavar="DIR",
        help="keep every file (agent, history, settings, logs) under DIR",
    )
    parser.add_argument(
        "--connect",
        metavar="HOST:PORT",
        help="show the agent on another machine (a server in the shed) instead of this "
        "computer's own; never starts one",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"that agent's token (or set {TOKEN_ENV}); it is in the agent's config folder",
    )
    parser.add_argument(
        "--start-hidden", action="store_true", help="start in the tray, without the window"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="join the agent to the demo network it runs itself (example jobs, paid in "
        "demo credits, which are not money) and show the Jobs page",
    )
    parser.add_argument(
        "--start-at-login",
        choices=("on", "off"),
        help="turn starting in the tray at login on or off for this user (and --profile-dir), "
        "as the Settings switch does, then exit; for installers and scripts",
    )
    parser.add_argument("--version", action="version", version=f"heatshare {__version__}")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.connect:
        from heatshare.gui.bridge import parse_host_port

        try:
            parse_host_port(args.connect)
        except ValueError as exc:
            parser.error(str(exc))
        if args.token is None:
            args.token = os.environ.get(TOKEN_ENV) or None
    elif args.token:
        parser.error("--token goes with --connect (a local agent's token is read from its file)")
    return args


def set_start_at_login(on: bool, profile_dir: str | None) -> int:
    """``--start-at-login on|off``: the Settings switch without the window; an exit status."""
    from heatshare.gui.autostart import autostart_for_platform

    autostart = autostart_for_platform(profile_dir=profile_dir)
    if not autostart.supported:
        sys.stderr.write("Starting at login is not supported on this system.\n")
        return 2
    try:
        autostart.set_enabled(on)
    except OSError as exc:
        sys.stderr.write(f"Could not change starting at login: {exc}\n")
        return 1
    where = getattr(autostart, "path", None)
    said = "will start in the tray at login" if on else "will not start at login"
    sys.stdout.write(f"Heatshare {said} ({where}).\n" if where else f"Heatshare {said}.\n")
    return 0


def _install_signal_quit() -> tuple[Any, socket.socket, socket.socket]:
    """SIGINT/SIGTERM quit the event loop cleanly (logout, ``kill``, Ctrl-C).

    Python runs signal handlers only between bytecodes; while Qt waits in C++, a wakeup fd
    written by the C-level handler wakes a socket notifier, so no polling timer is needed.
    """
    from PySide6.QtCore import QCoreApplication, QSocketNotifier

    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read)

    def drain() -> None:
        with contextlib.suppress(OSError):
            reader.recv(64)

    notifier.activated.connect(drain)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("Signal %d: quitting", signum)
        QCoreApplication.exit(0)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return (notifier, reader, writer)


def _remove_signal_quit(handle: tuple[Any, socket.socket, socket.socket]) -> None:
    notifier, reader, writer = handle
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    notifier.setEnabled(False)
    notifier.deleteLater()
    reader.close()
    writer.close()


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915 (the ordered teardown is one sequence on purpose)
    args = parse_args(argv)
    if args.start_at_login is not None:
        return set_start_at_login(args.start_at_login == "on", args.profile_dir)

    from PySide6.QtCore import QCoreApplication, QEvent, Qt
    from PySide6.QtWidgets import QApplication

    from heatshare.gui.app import HeatshareApp, Options
    from heatshare.gui.logsetup import restore_hooks, setup_logging
    from heatshare.protocol.discovery import Paths

    paths = Paths.for_profile(args.profile_dir)
    log_file = setup_logging(paths.log_dir)
    log.info("heatshare %s starting (log: %s)", __version__, log_file)

    QCoreApplication.setApplicationName(__app_name__)
    QCoreApplication.setOrganizationName(__app_name__)
    QCoreApplication.setApplicationVersion(__version__)
    QApplication.setDesktopFileName(__app_id__)
    QApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    qapp = QApplication([sys.argv[0] if sys.argv else "heatshare"])
    from heatshare.gui.binding_check import binding_is_sound

    if not binding_is_sound():
        import PySide6

        log.critical(
            "PySide6 %s on Python %d.%d loses references to None: the app will crash. "
            "Install the PySide6 version pinned in pyproject.toml.",
            PySide6.__version__,
            *sys.version_info[:2],
        )
    qapp.setQuitOnLastWindowClosed(False)  # the tray keeps the app; quitting is explicit

    instance = _claim_instance(args.profile_dir)
    if instance is False:
        log.info("Heatshare already runs for this user: its window was raised")
        _destroy_app(qapp)
        restore_hooks()
        return 0

    root = HeatshareApp(
        qapp,
        Options(args.profile_dir, args.connect, args.token, args.start_hidden, demo=args.demo),
        paths,
    )
    if instance is not None:
        instance.activate_requested.connect(root.window.bring_to_front)
    signals = _install_signal_quit()
    root.start()
    code = qapp.exec()

    # Ordered teardown. Every Qt object is destroyed here, on this thread, while Python and
    # the QApplication are both fully alive, children before parents; nothing is left for
    # the interpreter's final garbage collection to destroy in whatever order it likes.
    _remove_signal_quit(signals)
    root.shutdown()  # timers, bridge polling, worker threads (joined), tray, window closed
    if instance is not None:
        instance.close()
        instance.deleteLater()
    window = root.window
    charts = root.charts
    if charts is not None:
        charts.setParent(None)
        _delete_plot_widget(charts)
    for earnings_chart in (window.network_page.chart, root.earnings_chart):
        if earnings_chart is not None:
            earnings_chart.setParent(None)
            _delete_plot_widget(earnings_chart)
    earnings_chart = None
    window.deleteLater()
    root.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    del root, window, charts, earnings_chart, instance
    gc.collect()
    log.info("heatshare exits with code %d", code)
    _destroy_app(qapp)
    restore_hooks()
    logging.shutdown()
    return code


def _delete_plot_widget(charts: object) -> None:
    """Close pyqtgraph's view while its scene and the QApplication still exist."""
    glw = getattr(charts, "glw", None)
    if glw is not None:
        glw.close()
    charts.deleteLater()  # type: ignore[attr-defined]  # a QWidget


def _destroy_app(qapp: object) -> None:
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    qapp.shutdown()  # type: ignore[attr-defined]  # PySide6 ≥ 6.x: deletes the C++ app now


def _claim_instance(profile_dir: str | None) -> Any:
    """The claimed single-instance guard; False if another instance runs; None if unsupported."""
    try:
        from heatshare.gui.single_instance import SingleInstance
    except ImportError:
        return None
    guard = SingleInstance(__app_id__, profile_dir=profile_dir)
    if not guard.claim():
        guard.close()
        return False
    return guard


if __name__ == "__main__":
    raise SystemExit(main())

"""Is the householder using the machine? Battery power, exclusive programs, games on the GPU.

What these find feeds :class:`heatshare.domain.safety.SafetyInputs` (``on_battery``,
``exclusive``); the safety policy decides what follows. Each function reads the system once and
is cheap enough to call every few seconds, never on the UI thread.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable
from typing import Any

import psutil

log = logging.getLogger(__name__)

# Graphics processes that are not games: the desktop itself, and programs that draw their
# windows on the GPU (browsers, Electron apps, launchers, players). A desktop session always has
# some of them on the card; on Windows, where NVML cannot say how much memory a process holds,
# this list is all that tells them from a game. Compared by :func:`program_key`.
DESKTOP_PROGRAMS = frozenset(
    {
        # Linux: display servers, compositors, shells
        "xorg",
        "x",
        "xwayland",
        "gnome-shell",
        "kwin_x11",
        "kwin_wayland",
        "plasmashell",
        "mutter",
        "sway",
        "hyprland",
        "weston",
        "cinnamon",
        "xfwm4",
        "compiz",
        "picom",
        "budgie-wm",
        "marco",
        # Windows: the shell and its helpers, as nvidia-smi lists them under WDDM
        "dwm",
        "explorer",
        "searchhost",
        "searchapp",
        "startmenuexperiencehost",
        "shellexperiencehost",
        "textinputhost",
        "applicationframehost",
        "systemsettings",
        "lockapp",
        "widgets",
        "widgetservice",
        "phoneexperiencehost",
        "crossdeviceresume",
        "gamebar",
        "nvidia overlay",
        "nvidia share",
        "nvidia app",
        "onedrive",
        "msedgewebview2",
        # macOS
        "windowserver",
        # browsers
        "firefox",
        "firefox-bin",
        "chrome",
        "chromium",
        "chromium-browser",
        "msedge",
        "brave",
        "opera",
        "vivaldi",
        "safari",
        # everyday programs drawing on the GPU, and game launchers (not games themselves)
        "code",
        "discord",
        "slack",
        "teams",
        "ms-teams",
        "spotify",
        "telegram-desktop",
        "thunderbird",
        "steam",
        "steamwebhelper",
        "epicgameslauncher",
        "battle.net",
        "vlc",
        "mpv",
        # ourselves: the app's window
        "heatshare",
        "heatshare-app",
    }
)
# Where NVML says how much of the card's memory a graphics process holds, a program holding less
# is not a game (a video player, an editor's window).
GAME_MIN_MEMORY_BYTES = 512 * 1024 * 1024


def program_key(name: str) -> str:
    """How a program's name is compared: case-insensitive, without ``.exe``, trimmed."""
    key = name.strip().lower()
    return key.removesuffix(".exe")


def on_battery() -> bool | None:
    """True on battery, False on mains power, None where unknown (no battery, no support)."""
    try:
        battery = psutil.sensors_battery()
    except (AttributeError, OSError, RuntimeError) as exc:
        # psutil has no battery support on this platform, or the kernel's files failed.
        log.debug("battery: %s", exc)
        return None
    if battery is None or battery.power_plugged is None:
        return None
    return not battery.power_plugged


def running_exclusive(names: Iterable[str]) -> tuple[str, ...]:
    """Which of ``names`` run now, as given, in their order, each once.

    A name matches a process name case-insensitively, with or without ``.exe``: ``"Steam"``
    finds ``steam`` on Linux and ``steam.exe`` on Windows.
    """
    wanted: dict[str, str] = {}
    for name in names:
        key = program_key(name)
        if key:
            wanted.setdefault(key, name.strip())
    if not wanted:
        return ()
    found: set[str] = set()
    for proc in psutil.process_iter(["name", "status"]):
        pname = proc.info.get("name")
        if proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue  # ended, waiting for its parent to notice
        if pname and (key := program_key(pname)) in wanted:
            found.add(key)
    return tuple(shown for key, shown in wanted.items() if key in found)


def running_games(nvml: Any, *, ours: Collection[int] = ()) -> tuple[str, ...]:
    """Programs drawing on an NVIDIA GPU that look like games, by name, each once.

    A game is a graphics process on a card (``nvmlDeviceGetGraphicsRunningProcesses``) that is
    neither the agent nor one of its jobs (this process, its descendants, and ``ours``), nor the
    desktop or a browser (:data:`DESKTOP_PROGRAMS`), and holds at least
    :data:`GAME_MIN_MEMORY_BYTES` of the card's memory where NVML says how much. A process
    whose name may not be read (another user's) is still a game: it is named by its number.
    One that cannot be found is not: it has ended, or it runs in another PID namespace (NVML
    in a container reports the host's ids).

    Args:
        nvml: ``pynvml`` (initialised), or a module-like fake with the same functions.
        ours: more process ids to leave out, e.g. the jobs' when they do not descend from here.
    """
    mine = set(ours) | _own_processes()
    games: dict[str, None] = {}
    for proc in _graphics_processes(nvml):
        pid = getattr(proc, "pid", None)
        if not isinstance(pid, int) or pid in mine:
            continue
        used = getattr(proc, "usedGpuMemory", None)
        if isinstance(used, int) and used < GAME_MIN_MEMORY_BYTES:
            continue
        name = _process_name(pid)
        if name is None:
            continue  # it exited meanwhile
        if program_key(name) in DESKTOP_PROGRAMS:
            continue
        games.setdefault(name, None)
    return tuple(games)


def _graphics_processes(nvml: Any) -> list[Any]:
    """Every graphics process on every GPU; a card that will not say is skipped."""
    errors: tuple[type[BaseException], ...] = (nvml.NVMLError, AttributeError)
    mismatch = getattr(nvml, "NVMLLibraryMismatchError", None)
    if isinstance(mismatch, type) and issubclass(mismatch, BaseException):
        errors = (*errors, mismatch)
    try:
        count = nvml.nvmlDeviceGetCount()
    except errors as exc:
        log.debug("graphics processes: no GPU count: %s", exc)
        return []
    out: list[Any] = []
    for i in range(count):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
        except errors as exc:
            log.debug("graphics processes: GPU %d: %s", i, exc)
            continue
        # The unversioned call names the newest struct; a driver older than these bindings has
        # only _v2 (pynvml then raises its library-mismatch error).
        for fn in (
            "nvmlDeviceGetGraphicsRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses_v2",
        ):
            try:
                out.extend(getattr(nvml, fn)(handle))
                break
            except nvml.NVMLError as exc:  # NOT_SUPPORTED, GPU_IS_LOST ...: _v2 says the same
                log.debug("graphics processes: GPU %d: %s -> %s", i, fn, type(exc).__name__)
                break
            except errors as exc:
                log.debug("graphics processes: GPU %d: %s -> %s", i, fn, type(exc).__name__)
    return out


def _own_processes() -> set[int]:
    """This process and its descendants (the agent's jobs)."""
    me = psutil.Process(os.getpid())
    pids = {me.pid}
    try:
        pids.update(p.pid for p in me.children(recursive=True))
    except psutil.Error as exc:
        log.debug("own processes: %s", exc)
    return pids


def _process_name(pid: int) -> str | None:
    """The process's name; ``"process 1234"`` where it may not be read; None once it is gone.

    A process of another PID namespace (NVML in a container reports the host's ids) is not
    found either, and is left out: a householder's games do not run there.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.name()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return f"process {pid}"

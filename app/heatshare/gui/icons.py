"""The application icon and the tray's state icons, loaded from the package's PNGs.

The PNGs are rendered from the SVGs in ``resources/icons/src`` by ``resources/icons/render.py``
and shipped as package data (``heatshare/gui/resources/icons``), so the same path works from
the source tree, an installed wheel and a frozen build that keeps the package layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon

ICON_DIR = Path(__file__).resolve().parent / "resources" / "icons"
SIZES: tuple[int, ...] = (16, 22, 24, 32, 48, 64, 128, 256, 512)
STATE_NAMES: tuple[str, ...] = ("heating", "idle", "paused", "unreachable")


class IconsMissingError(FileNotFoundError):
    """An icon file the package should ship is not there: a broken install, not a user error."""


def _load_icon(directory: Path, name: str) -> QIcon:
    icon = QIcon()
    missing: list[str] = []
    for size in SIZES:
        path = directory / f"{name}-{size}.png"
        if path.is_file():
            # One file per size: Qt picks the closest, so 16-24 px trays get a crisp render
            # and never a blurred downscale of the 512 px image.
            icon.addFile(str(path), QSize(size, size))
        else:
            missing.append(path.name)
    if missing:
        raise IconsMissingError(f"icon files missing in {directory}: {', '.join(missing)}")
    return icon


class AppIcons:
    """The icons the app shows. Build one in the composition root and pass it down.

    Attributes:
        app: The application (window and launcher) icon.
    """

    def __init__(self, app: QIcon, states: Mapping[str, QIcon]) -> None:
        unknown = set(states) ^ set(STATE_NAMES)
        if unknown:
            raise ValueError(f"state icons must be exactly {STATE_NAMES}, not {sorted(states)}")
        self.app = app
        self._states = MappingProxyType(dict(states))

    @classmethod
    def load(cls, directory: Path | None = None) -> AppIcons:
        """Load every icon from ``directory`` (the package's icon folder by default).

        Raises:
            IconsMissingError: an icon file is missing (the install is broken).
        """
        where = ICON_DIR if directory is None else directory
        return cls(
            _load_icon(where, "app"),
            {name: _load_icon(where, name) for name in STATE_NAMES},
        )

    def state(self, name: str) -> QIcon:
        """The tray icon for a state of :func:`heatshare.gui.tray_menu.tray_state`.

        Raises:
            KeyError: ``name`` is not one of ``STATE_NAMES``.
        """
        try:
            return self._states[name]
        except KeyError:
            raise KeyError(f"no tray icon for state {name!r}; known: {STATE_NAMES}") from None

"""The icons the app ships, and the Linux desktop entry that names them."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSize
from PySide6.QtGui import QIcon, QImage

from heatshare.gui.icons import ICON_DIR, SIZES, STATE_NAMES, AppIcons, IconsMissingError

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = ROOT / "resources" / "linux" / "org.heatshare.Heatshare.desktop"


@pytest.fixture
def icons(qapp: Any) -> AppIcons:
    return AppIcons.load()


def image(icon: QIcon, size: int) -> QImage:
    return icon.pixmap(QSize(size, size)).toImage()


def test_every_icon_has_every_size(icons: AppIcons) -> None:
    for icon in [icons.app, *(icons.state(n) for n in STATE_NAMES)]:
        assert not icon.isNull()
        assert sorted(s.width() for s in icon.availableSizes()) == sorted(SIZES)


@pytest.mark.parametrize("size", [16, 22, 24])
def test_tray_sizes_are_drawn_for_their_size(icons: AppIcons, size: int) -> None:
    # The tray gets the PNG made for its size, not a scaled copy of a big one.
    for name in STATE_NAMES:
        drawn = image(icons.state(name), size)
        assert drawn.size() == QSize(size, size)
        assert drawn == QImage(str(ICON_DIR / f"{name}-{size}.png")).convertToFormat(drawn.format())


def test_states_look_different(icons: AppIcons) -> None:
    images = [image(icons.state(n), 22) for n in STATE_NAMES]
    for i, a in enumerate(images):
        for b in images[i + 1 :]:
            assert a != b


def test_heating_is_warm_and_idle_is_grey(icons: AppIcons) -> None:
    def mean_rgb(img: QImage) -> tuple[float, float, float]:
        pixels = [img.pixelColor(x, y) for x in range(img.width()) for y in range(img.height())]
        opaque = [p for p in pixels if p.alpha() > 200]
        n = len(opaque)
        assert n > 20  # a glyph, not an empty square
        return (
            sum(p.red() for p in opaque) / n,
            sum(p.green() for p in opaque) / n,
            sum(p.blue() for p in opaque) / n,
        )

    r, g, b = mean_rgb(image(icons.state("heating"), 24))
    assert r > g + 60 and r > b + 60
    r, g, b = mean_rgb(image(icons.state("idle"), 24))
    assert max(r, g, b) - min(r, g, b) < 25


def test_icons_have_transparent_corners(icons: AppIcons) -> None:
    for name in STATE_NAMES:
        assert image(icons.state(name), 22).pixelColor(0, 0).alpha() == 0


def test_unknown_state_is_an_error(icons: AppIcons) -> None:
    with pytest.raises(KeyError, match="no tray icon for state 'hot'"):
        icons.state("hot")


def test_missing_files_are_reported(tmp_path: Path, qapp: Any) -> None:
    for png in ICON_DIR.glob("*.png"):
        shutil.copy(png, tmp_path)
    assert not AppIcons.load(tmp_path).state("paused").isNull()
    (tmp_path / "paused-22.png").unlink()
    with pytest.raises(IconsMissingError, match=r"paused-22\.png"):
        AppIcons.load(tmp_path)


def test_rendered_files_match_the_sources(qapp: Any) -> None:
    spec = importlib.util.spec_from_file_location("render", ROOT / "resources/icons/render.py")
    assert spec is not None and spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    assert render.main(["--check"]) == 0
    assert (ROOT / "resources/icons/org.heatshare.Heatshare.ico").read_bytes()[:4] == (b"\0\0\1\0")
    assert (ROOT / "resources/icons/org.heatshare.Heatshare.icns").read_bytes()[:4] == b"icns"


def test_ico_is_readable_by_qt(qapp: Any) -> None:
    img = QImage(str(ROOT / "resources/icons/org.heatshare.Heatshare.ico"))
    assert not img.isNull()


def test_desktop_entry_names_the_icon() -> None:
    text = DESKTOP.read_text(encoding="utf-8")
    assert "\nIcon=org.heatshare.Heatshare\n" in text
    assert "\nExec=heatshare\n" in text
    hicolor = ROOT / "resources/icons/hicolor"
    assert (hicolor / "scalable/apps/org.heatshare.Heatshare.svg").is_file()
    for size in SIZES:
        assert (hicolor / f"{size}x{size}/apps/org.heatshare.Heatshare.png").is_file()


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils")
def test_desktop_entry_is_valid() -> None:
    done = subprocess.run(
        ["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""

#!/usr/bin/env python3
"""Render Heatshare's icons from the SVG sources in ``src/``.

Run it after editing an SVG, and commit what it writes::

    .venv/bin/python resources/icons/render.py

It writes:

* ``app/heatshare/gui/resources/icons/<name>-<size>.png``: what the app loads at run time
  (package data, so it works from the source tree and from an installed wheel). PNGs, not SVGs,
  so the app does not depend on Qt's SVG plug-ins, which frozen builds tend to drop.
* ``resources/icons/hicolor/<size>x<size>/apps/org.heatshare.Heatshare.png`` and
  ``hicolor/scalable/apps/org.heatshare.Heatshare.svg``: the freedesktop icon theme layout the
  Linux packages install, named after the ``Icon=`` key of the ``.desktop`` file.
* ``resources/icons/org.heatshare.Heatshare.ico`` (Windows) and ``.icns`` (macOS), each holding
  PNG images at several sizes.

``--check`` renders into memory and fails when a committed PNG is missing or has the wrong
size, so CI can tell when someone edited an SVG and forgot to render.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SRC = HERE / "src"
PACKAGE_ICONS = ROOT / "app" / "heatshare" / "gui" / "resources" / "icons"
APP_ID = "org.heatshare.Heatshare"

SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
# Icon name in the app -> SVG source.
SOURCES = {
    "app": "app.svg",
    "heating": "tray-heating.svg",
    "idle": "tray-idle.svg",
    "paused": "tray-paused.svg",
    "unreachable": "tray-unreachable.svg",
}
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest an .ico entry can say
# .icns entry types that hold a PNG of the given pixel size (Apple's icns format).
ICNS_TYPES = (
    (b"icp4", 16),
    (b"icp5", 32),
    (b"icp6", 64),
    (b"ic07", 128),
    (b"ic08", 256),
    (b"ic09", 512),
    (b"ic11", 32),  # 16 pt @2x
    (b"ic12", 64),  # 32 pt @2x
    (b"ic13", 256),  # 128 pt @2x
    (b"ic14", 512),  # 256 pt @2x
)


def _render(svg: Path, size: int) -> bytes:
    """Return a PNG of ``svg`` at ``size`` x ``size`` pixels."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG for Qt")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    # Straight (non-premultiplied) alpha in the file, as every PNG reader expects.
    image.convertToFormat(QImage.Format.Format_ARGB32).save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def _ico(pngs: dict[int, bytes]) -> bytes:
    """An .ico of PNG-compressed entries (read by Windows Vista and later)."""
    sizes = [s for s in ICO_SIZES if s in pngs]
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        blob = pngs[size]
        dim = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset)
        offset += len(blob)
        blobs += blob
    return header + entries + blobs


def _icns(pngs: dict[int, bytes]) -> bytes:
    body = b"".join(
        kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES
    )
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, write nothing")
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([])  # QSvgRenderer wants one
    problems: list[str] = []
    rendered: dict[str, dict[int, bytes]] = {
        name: {size: _render(SRC / svg, size) for size in SIZES} for name, svg in SOURCES.items()
    }
    targets: dict[Path, bytes] = {}
    for name, by_size in rendered.items():
        for size, png in by_size.items():
            targets[PACKAGE_ICONS / f"{name}-{size}.png"] = png
    for size, png in rendered["app"].items():
        targets[HERE / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"] = png
    targets[HERE / f"{APP_ID}.ico"] = _ico(rendered["app"])
    targets[HERE / f"{APP_ID}.icns"] = _icns(rendered["app"])

    if args.check:
        for path, data in targets.items():
            if not path.is_file():
                problems.append(f"missing: {path.relative_to(ROOT)}")
            elif path.suffix == ".png" and _png_size(path.read_bytes()) != _png_size(data):
                problems.append(f"wrong size: {path.relative_to(ROOT)}")
        for problem in problems:
            print(problem, file=sys.stderr)  # noqa: T201 - a command-line tool reports here
        del app
        return 1 if problems else 0

    for path, data in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    scalable = HERE / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SRC / "app.svg", scalable)
    print(f"wrote {len(targets) + 1} files")  # noqa: T201 - a command-line tool reports here
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())

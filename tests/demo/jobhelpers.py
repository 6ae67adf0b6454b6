"""Running the demo network's example jobs for real, as plain processes or in the sandbox."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import heatshare

JOBS = Path(heatshare.__file__).parent / "resources" / "jobs"

#: The jobs run on the host's own python3 inside the sandbox, so that is what runs them here.
HOST_PYTHON = next(
    (p for p in ("/usr/bin/python3", shutil.which("python3")) if p and Path(p).exists()),
    sys.executable,
)

PROGRESS_LINE = re.compile(r"^(?P<fraction>0(\.\d+)?|1(\.0+)?) (?P<message>\S.*)\n$")


@dataclass(frozen=True)
class Slot:
    """A job's folder as the sandbox lays it out: the bundle's files, out/, checkpoint/."""

    root: Path

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def progress(self) -> Path:
        return self.root / ".progress"

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.defpath,
            "LANG": "C.UTF-8",
            "HEATSHARE_OUTPUT": str(self.out),
            "HEATSHARE_CHECKPOINT": str(self.checkpoint),
            "HEATSHARE_PROGRESS": str(self.progress),
            "HEATSHARE_JOB_ID": "1",
            "HEATSHARE_ATTEMPT_ID": "1",
        }


def make_slot(where: Path, job: str) -> Slot:
    shutil.copytree(JOBS / job, where)
    return Slot(where)


def start(slot: Slot, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [HOST_PYTHON, script, *args],
        cwd=slot.root,
        env=slot.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(
    slot: Slot, script: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOST_PYTHON, script, *args],
        cwd=slot.root,
        env=slot.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load_module(job: str, script: str) -> ModuleType:
    """A job's script as a module, to test its functions directly."""
    spec = importlib.util.spec_from_file_location(f"demo_job_{job}", JOBS / job / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    bit_depth: int
    colour_type: int
    pixels: bytes  # RGB, row after row, filter bytes removed
    chunk_kinds: list[bytes]


def read_png(data: bytes) -> Png:
    """Parses an 8-bit RGB PNG strictly: signature, every chunk's CRC, IHDR, the zlib data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, kinds, idat, ihdr = 8, [], b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert len(body) == length, f"chunk {kind!r} is cut short"
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in chunk {kind!r}"
        kinds.append(kind)
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND", kinds
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", ihdr
    )
    assert (compression, filtering, interlace) == (0, 0, 0)
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    assert len(raw) == height * stride, "image data does not match the dimensions"
    rows = [raw[r * stride : (r + 1) * stride] for r in range(height)]
    assert all(row[0] == 0 for row in rows), "unexpected filter type"
    return Png(width, height, depth, colour, b"".join(row[1:] for row in rows), kinds)

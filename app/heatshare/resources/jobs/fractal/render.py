"""Renders one tile of a Mandelbrot (or Julia) zoom frame to a PNG.

A frame is a square view of the complex plane, ``grid`` × ``grid`` tiles of ``size`` ×
``size`` pixels each; frame ``k`` is ``ZOOM`` times narrower than frame ``k - 1``, all
centred on the same point at the edge of the set, so the frames together are a zoom.

Runs on the host's own ``python3`` (standard library only) inside the Heatshare sandbox:

- outputs go to ``$HEATSHARE_OUTPUT`` (``tile.png`` and ``tile.json``);
- finished rows are kept in ``$HEATSHARE_CHECKPOINT``, so a restarted job carries on from
  the last finished block of rows;
- ``$HEATSHARE_PROGRESS`` holds one line, ``<fraction> <message>``.

The PNG is a pure function of the arguments: only IEEE-754 ``+ - * /`` and ``frexp``
touch the pixels (no libm ``log``, whose last bit differs between C libraries), and the
image data is stored in uncompressed deflate blocks (a compressor's output differs between
zlib builds; the result archive is gzipped anyway). Two honest machines therefore write
byte-identical tiles, which is what replication compares.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import time
import zlib
from pathlib import Path

#: The zoom's centre, a point on the set's boundary in the "seahorse valley".
CENTRE = (-0.743643887037151, 0.131825904205330)
#: Width of frame 0 in the complex plane, and the narrowing from one frame to the next.
WIDTH_0 = 3.0
ZOOM = 0.6
#: Escape radius squared; a large radius makes the smooth colouring smooth.
BAILOUT = 65536.0
#: Rows computed between two checkpoints.
CHUNK_ROWS = 8
#: Iterations per colour cycle of the palette.
CYCLE = 48.0

# (position 0..1, r, g, b): deep blue through white to amber and back to night.
PALETTE = (
    (0.0, 0, 7, 100),
    (0.16, 32, 107, 203),
    (0.42, 237, 255, 255),
    (0.6425, 255, 170, 0),
    (0.8575, 0, 2, 0),
    (1.0, 0, 7, 100),
)
INSIDE = (0, 0, 0)

_INV_LN2 = 1.4426950408889634


def log2(x: float) -> float:
    """log2 of a positive float with arithmetic alone, so every platform gets the same bits."""
    m, e = math.frexp(x)  # exact: x = m * 2**e, 0.5 <= m < 1
    s = (m - 1.0) / (m + 1.0)  # ln m = 2 atanh(s), |s| <= 1/3
    s2 = s * s
    ln_m = 2.0 * s * (1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9)))))
    return e + ln_m * _INV_LN2


def colour(nu: float) -> tuple[int, int, int]:
    t = (nu / CYCLE) % 1.0
    for k in range(1, len(PALETTE)):
        p1, r1, g1, b1 = PALETTE[k]
        if t <= p1:
            p0, r0, g0, b0 = PALETTE[k - 1]
            f = (t - p0) / (p1 - p0)
            return (int(r0 + (r1 - r0) * f), int(g0 + (g1 - g0) * f), int(b0 + (b1 - b0) * f))
    return PALETTE[-1][1:]


def escape(cr: float, ci: float, zr: float, zi: float, max_iter: int) -> tuple[int, int, int]:
    """The colour of one sample: black inside the set, else the smooth iteration count's."""
    zr2, zi2 = zr * zr, zi * zi
    n = 0
    while n < max_iter and zr2 + zi2 <= BAILOUT:
        zi = 2.0 * zr * zi + ci
        zr = zr2 - zi2 + cr
        zr2, zi2 = zr * zr, zi * zi
        n += 1
    if n >= max_iter:
        return INSIDE
    # Smooth iteration count: n + 1 - log2(log2 |z|).
    return colour(n + 1.0 - log2(0.5 * log2(zr2 + zi2)))


def render_row(
    y: float,
    x0: float,
    dx: float,
    width: int,
    *,
    samples: int,
    max_iter: int,
    julia: tuple[float, float] | None,
) -> bytes:
    """One row of pixels as PNG scanline bytes (filter type 0, then RGB triples).

    Each pixel is the mean of ``samples`` × ``samples`` points spread over it, which
    smooths the jagged edges of the filaments.
    """
    out = bytearray(b"\x00")
    offsets = [(k + 0.5) / samples - 0.5 for k in range(samples)]
    count = samples * samples
    for i in range(width):
        r = g = b = 0
        for oy in offsets:
            yy = y - oy * dx
            for ox in offsets:
                x = x0 + (i + 0.5 + ox) * dx
                if julia is not None:
                    rgb = escape(julia[0], julia[1], x, yy, max_iter)
                else:
                    # Points in the main cardioid or the period-2 bulb never escape.
                    xq = x - 0.25
                    q = xq * xq + yy * yy
                    if q * (q + xq) <= 0.25 * yy * yy or (x + 1.0) * (x + 1.0) + yy * yy <= 0.0625:
                        rgb = INSIDE
                    else:
                        rgb = escape(x, yy, 0.0, 0.0, max_iter)
                r += rgb[0]
                g += rgb[1]
                b += rgb[2]
        out += bytes((r // count, g // count, b // count))
    return bytes(out)


def png(width: int, height: int, scanlines: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    # A zlib stream of stored deflate blocks (see the module's docstring for why).
    stream = bytearray(b"\x78\x01")
    step = 65535
    for start in range(0, max(len(scanlines), 1), step):
        block = scanlines[start : start + step]
        final = 1 if start + step >= len(scanlines) else 0
        stream += struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF) + block
    stream += struct.pack(">I", zlib.adler32(scanlines) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", bytes(stream))
        + chunk(b"IEND", b"")
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Readers (the runner, a restarted job) see the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def report(progress: Path, fraction: float, message: str) -> None:
    write_atomic(progress, f"{fraction:.4f} {message}\n".encode())


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Render one tile of a fractal zoom frame to PNG.")
    p.add_argument("--frame", type=int, default=0, help="zoom frame, 0 = the whole set")
    p.add_argument("--tile", type=int, default=0, help="tile index, row by row from top left")
    p.add_argument("--grid", type=int, default=4, help="tiles per side of the frame")
    p.add_argument("--size", type=int, default=256, help="tile width and height in pixels")
    p.add_argument("--samples", type=int, default=3, help="samples per pixel side (anti-aliasing)")
    p.add_argument("--max-iter", type=int, default=1500, help="iterations before 'inside'")
    p.add_argument(
        "--julia", type=float, nargs=2, metavar=("RE", "IM"), help="render this Julia set"
    )
    a = p.parse_args(argv)
    if not 0 <= a.frame <= 60:
        p.error("--frame must be between 0 and 60 (doubles run out of precision beyond)")
    if not 1 <= a.grid <= 64:
        p.error("--grid must be between 1 and 64")
    if not 0 <= a.tile < a.grid * a.grid:
        p.error(f"--tile must be between 0 and {a.grid * a.grid - 1} for a grid of {a.grid}")
    if not 1 <= a.size <= 4096:
        p.error("--size must be between 1 and 4096 pixels")
    if not 1 <= a.samples <= 16:
        p.error("--samples must be between 1 and 16")
    if not 1 <= a.max_iter <= 1_000_000:
        p.error("--max-iter must be between 1 and 1000000")
    return a


def main(argv: list[str]) -> int:
    a = parse(argv)
    out_dir = Path(os.environ.get("HEATSHARE_OUTPUT", "out"))
    ckpt_dir = Path(os.environ.get("HEATSHARE_CHECKPOINT", "checkpoint"))
    progress = Path(os.environ.get("HEATSHARE_PROGRESS", ".progress"))
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    width = WIDTH_0 * ZOOM**a.frame
    dx = width / (a.grid * a.size)
    col, row = a.tile % a.grid, a.tile // a.grid
    # Top-left corner of the tile; y grows upwards in the plane, downwards in the image.
    x0 = CENTRE[0] - width / 2 + col * a.size * dx
    y_top = CENTRE[1] + width / 2 - row * a.size * dx
    julia = (a.julia[0], a.julia[1]) if a.julia else None
    params = {
        "frame": a.frame,
        "tile": a.tile,
        "grid": a.grid,
        "size": a.size,
        "samples": a.samples,
        "max_iter": a.max_iter,
        "julia": list(julia) if julia else None,
    }

    # A checkpoint is only trusted for the very same arguments.
    meta = ckpt_dir / "fractal.json"
    meta_bytes = json.dumps(params, sort_keys=True).encode()
    if not meta.exists() or meta.read_bytes() != meta_bytes:
        for old in ckpt_dir.glob("rows-*.bin"):
            old.unlink()
        write_atomic(meta, meta_bytes)

    row_bytes = 1 + 3 * a.size
    rows: list[bytes] = []
    resumed = 0
    started = time.monotonic()
    for first in range(0, a.size, CHUNK_ROWS):
        count = min(CHUNK_ROWS, a.size - first)
        saved = ckpt_dir / f"rows-{first:05d}.bin"
        if saved.exists() and saved.stat().st_size == count * row_bytes:
            data = saved.read_bytes()
            rows += [data[k * row_bytes : (k + 1) * row_bytes] for k in range(count)]
            resumed += count
            continue
        for r in range(first, first + count):
            y = y_top - (r + 0.5) * dx
            rows.append(
                render_row(y, x0, dx, a.size, samples=a.samples, max_iter=a.max_iter, julia=julia)
            )
        write_atomic(saved, b"".join(rows[first : first + count]))
        done = first + count
        report(progress, done / a.size * 0.99, f"row {done} of {a.size}")

    image = png(a.size, a.size, b"".join(rows))
    info = dict(params)
    info.update(
        {
            "centre": list(CENTRE),
            "frame_width": width,
            "tile_origin": [x0, y_top],
            "pixel_size": dx,
            "png_sha256": hashlib.sha256(image).hexdigest(),
        }
    )
    write_atomic(out_dir / "tile.png", image)
    write_atomic(
        out_dir / "tile.json", (json.dumps(info, sort_keys=True, indent=1) + "\n").encode()
    )
    report(progress, 1.0, f"tile {a.tile} of frame {a.frame} done")
    sys.stdout.write(
        f"fractal: frame {a.frame} tile {a.tile}/{a.grid * a.grid}, {a.size}x{a.size} px, "
        f"{resumed} rows from a checkpoint, {time.monotonic() - started:.1f} s\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The demo network's example jobs, run for real on the host's python3.

Sizes are small so each run takes well under a few seconds; the defaults (for the demo)
take tens of seconds.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from jobhelpers import (
    JOBS,
    PROGRESS_LINE,
    Slot,
    load_module,
    make_slot,
    read_png,
    run,
    start,
)

from heatshare.protocol.coordinator_api import Resources

# Small tiles: a few hundred milliseconds each.
TILE = ["--frame", "12", "--tile", "5", "--grid", "4", "--size", "24", "--samples", "2"]
# A tile deep in the zoom with many points inside the set: long enough (about half a second
# here) to be stopped midway, after some but not all of its five blocks of rows.
SLOW_TILE = ["--frame", "24", "--tile", "9", "--size", "40", "--samples", "2"]


def _render(tmp_path: Path, name: str, args: list[str]) -> tuple[Slot, bytes]:
    slot = make_slot(tmp_path / name, "fractal")
    done = run(slot, "render.py", *args)
    assert done.returncode == 0, done.stderr
    return slot, (slot.out / "tile.png").read_bytes()


def _watch_progress(
    slot: Slot, process: subprocess.Popen[str], stop_after: float | None
) -> tuple[list[str], str]:
    """Every distinct progress line seen while the job runs, and what it wrote to stderr.

    Kills the job once its progress passes ``stop_after`` (and before it finishes).
    """
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            text = slot.progress.read_text()
        except FileNotFoundError:
            text = None
        if text is not None and (not seen or seen[-1] != text):
            seen.append(text)
            fraction = float(text.split()[0])
            if stop_after is not None and stop_after <= fraction < 0.99:
                process.send_signal(signal.SIGKILL)
                process.wait()
                break
        time.sleep(0.005)
    _, stderr = process.communicate(timeout=60)
    final = slot.progress.read_text() if slot.progress.exists() else None
    if final is not None and (not seen or seen[-1] != final):
        seen.append(final)
    return seen, stderr


def _assert_well_formed(lines: list[str]) -> list[float]:
    fractions = []
    for line in lines:
        match = PROGRESS_LINE.match(line)
        assert match, f"malformed progress line {line!r}"
        fractions.append(float(match["fraction"]))
    assert fractions == sorted(fractions), f"progress went backwards: {fractions}"
    return fractions


# --- the examples' descriptions -------------------------------------------------------------


@pytest.mark.parametrize("job", ["fractal", "matrix"])
def test_each_example_has_a_valid_job_json_and_readme(job: str) -> None:
    spec = json.loads((JOBS / job / "job.json").read_text())
    assert spec["name"] == job
    Resources.model_validate(spec["resources"])  # raises on a bad or unknown field
    assert isinstance(spec["price_minor"], int) and spec["price_minor"] > 0
    assert spec["command"][0] == "python3"
    assert (JOBS / job / spec["command"][1]).is_file()
    assert (JOBS / job / "README.md").read_text().startswith(f"# {job}")


def test_job_json_default_commands_parse(tmp_path: Path) -> None:
    """Each default command's arguments are accepted by its script's own parser."""
    for job in ("fractal", "matrix"):
        spec = json.loads((JOBS / job / "job.json").read_text())
        module = load_module(job, spec["command"][1])
        module.parse(spec["command"][2:])  # exits (SystemExit) on an argument it refuses


# --- fractal --------------------------------------------------------------------------------


def test_fractal_writes_a_valid_png_of_the_asked_size(tmp_path: Path) -> None:
    slot, data = _render(tmp_path, "a", TILE)
    png = read_png(data)
    assert (png.width, png.height, png.bit_depth, png.colour_type) == (24, 24, 8, 2)
    assert png.chunk_kinds == [b"IHDR", b"IDAT", b"IEND"]
    colours = {png.pixels[i : i + 3] for i in range(0, len(png.pixels), 3)}
    assert len(colours) > 50, "the tile should show the fractal's colours, not a flat fill"
    info = json.loads((slot.out / "tile.json").read_text())
    assert info["png_sha256"] == hashlib.sha256(data).hexdigest()
    assert (info["frame"], info["tile"], info["size"]) == (12, 5, 24)
    assert slot.progress.read_text() == "1.0000 tile 5 of frame 12 done\n"


def test_fractal_is_deterministic_and_tiles_differ(tmp_path: Path) -> None:
    _, first = _render(tmp_path, "a", TILE)
    _, again = _render(tmp_path, "b", TILE)
    assert first == again
    other_args = list(TILE)
    other_args[3] = "6"  # the next tile
    _, other = _render(tmp_path, "c", other_args)
    assert other != first


def test_fractal_frame_zero_shows_the_set_inside_black(tmp_path: Path) -> None:
    """The middle of frame 0 (one tile, the whole view) holds the black main cardioid."""
    _, data = _render(
        tmp_path,
        "a",
        ["--frame", "0", "--grid", "1", "--tile", "0", "--size", "32", "--samples", "1"],
    )
    png = read_png(data)
    # Frame 0 is 3 wide around (-0.7436, 0.1318): the pixel at -0.25 + 0.1318i is inside.
    col = round((-0.25 - (-0.743643887037151 - 1.5)) / 3 * 32)
    row = 16
    at = (row * 32 + col) * 3
    assert png.pixels[at : at + 3] == b"\x00\x00\x00"
    assert png.pixels[0:3] != b"\x00\x00\x00"  # the top-left corner is outside the set


def test_fractal_julia_option(tmp_path: Path) -> None:
    _, julia = _render(tmp_path, "a", [*TILE, "--julia", "-0.8", "0.156"])
    _, mandel = _render(tmp_path, "b", TILE)
    assert read_png(julia).width == 24
    assert julia != mandel


def test_fractal_progress_lines_are_whole_and_rise_to_one(tmp_path: Path) -> None:
    slot = make_slot(tmp_path / "a", "fractal")
    process = start(slot, "render.py", *SLOW_TILE)
    lines, stderr = _watch_progress(slot, process, stop_after=None)
    assert process.returncode == 0, stderr
    fractions = _assert_well_formed(lines)
    assert fractions[-1] == 1.0
    assert len(lines) >= 3, lines  # progress was reported along the way, not only at the end
    assert not list(slot.root.glob(".progress.tmp")), "a temporary progress file was left"


def test_fractal_resumes_from_its_checkpoint_to_the_same_bytes(tmp_path: Path) -> None:
    _, whole = _render(tmp_path, "whole", SLOW_TILE)

    slot = make_slot(tmp_path / "stopped", "fractal")
    process = start(slot, "render.py", *SLOW_TILE)
    lines, _ = _watch_progress(slot, process, stop_after=0.1)
    assert process.returncode == -signal.SIGKILL, "the job ended before it could be stopped"
    _assert_well_formed(lines)
    kept = sorted(p.name for p in slot.checkpoint.glob("rows-*.bin"))
    assert 0 < len(kept) < 40 // 8, kept
    assert not (slot.out / "tile.png").exists()

    done = run(slot, "render.py", *SLOW_TILE)
    assert done.returncode == 0, done.stderr
    assert f"{8 * len(kept)} rows from a checkpoint" in done.stdout
    assert (slot.out / "tile.png").read_bytes() == whole


def test_fractal_ignores_a_checkpoint_of_other_arguments(tmp_path: Path) -> None:
    slot, _ = _render(tmp_path, "a", TILE)
    other = list(TILE)
    other[1] = "13"
    done = run(slot, "render.py", *other)
    assert done.returncode == 0, done.stderr
    assert "0 rows from a checkpoint" in done.stdout
    _, fresh = _render(tmp_path, "b", other)
    assert (slot.out / "tile.png").read_bytes() == fresh


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tile", "16", "--grid", "4"], "--tile must be between 0 and 15"),
        (["--size", "0"], "--size must be between"),
        (["--frame", "x"], "invalid int value"),
    ],
)
def test_fractal_refuses_bad_arguments_with_a_sentence(
    tmp_path: Path, args: list[str], says: str
) -> None:
    slot = make_slot(tmp_path / "a", "fractal")
    done = run(slot, "render.py", *args)
    assert done.returncode == 2
    assert says in done.stderr


# --- matrix ---------------------------------------------------------------------------------


def test_splitmix64_matches_the_reference_sequence() -> None:
    matrix = load_module("matrix", "matrix.py")
    stream = matrix.splitmix64(1234567)
    # Published outputs of Vigna's splitmix64.c for the seed 1234567.
    assert [next(stream) for _ in range(3)] == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
    ]


def test_matrix_product_verifies_and_matches_a_plain_product(tmp_path: Path) -> None:
    slot = make_slot(tmp_path / "a", "matrix")
    done = run(slot, "matrix.py", "--n", "40", "--seed", "7", "--block", "8")
    assert done.returncode == 0, done.stderr
    report = json.loads((slot.out / "report.json").read_text())
    assert report["verified"] is True
    assert report["freivalds_failed_round"] is None

    # The same matrices, multiplied the schoolbook way.
    a, b = load_module("matrix", "matrix.py").matrices(40, 7, 1000)
    c = [[sum(a[i][k] * b[k][j] for k in range(40)) for j in range(40)] for i in range(40)]
    text = "".join(",".join(str(v) for v in row) + "\n" for row in c)
    assert report["product_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert report["product_trace"] == sum(c[i][i] for i in range(40))
    assert slot.progress.read_text() == "1.0000 40x40 product verified\n"


def test_matrix_is_deterministic(tmp_path: Path) -> None:
    reports = []
    for name in ("a", "b"):
        slot = make_slot(tmp_path / name, "matrix")
        assert run(slot, "matrix.py", "--n", "30", "--seed", "3").returncode == 0
        reports.append((slot.out / "report.json").read_bytes())
    assert reports[0] == reports[1]


def test_freivalds_detects_a_single_wrong_entry() -> None:
    matrix = load_module("matrix", "matrix.py")
    a, b = matrix.matrices(30, 11, 1000)
    c = matrix.multiply_rows(a, list(zip(*b, strict=True)))
    assert matrix.freivalds(a, b, c, 20, 11) is None
    for i, j, delta in [(0, 0, 1), (17, 29, -1), (29, 3, 10**6)]:
        wrong = [list(row) for row in c]
        wrong[i][j] += delta
        assert matrix.freivalds(a, b, wrong, 20, 11) is not None, (i, j)


def test_matrix_job_fails_on_a_corrupted_checkpoint(tmp_path: Path) -> None:
    """A product resumed from a damaged block is caught by the check: exit 3, not a result."""
    slot = make_slot(tmp_path / "a", "matrix")
    args = ["--n", "32", "--seed", "5", "--block", "8"]
    assert run(slot, "matrix.py", *args).returncode == 0
    block = slot.checkpoint / "block-00008.txt"
    lines = block.read_text().splitlines()
    values = lines[3].split(",")
    values[5] = str(int(values[5]) + 1)
    lines[3] = ",".join(values)
    block.write_text("\n".join(lines) + "\n")

    done = run(slot, "matrix.py", *args)
    assert done.returncode == 3
    assert "is wrong: Freivalds round" in done.stderr
    report = json.loads((slot.out / "report.json").read_text())
    assert report["verified"] is False
    assert isinstance(report["freivalds_failed_round"], int)


def test_matrix_resumes_from_its_checkpoint_to_the_same_report(tmp_path: Path) -> None:
    args = ["--n", "160", "--seed", "9", "--block", "4"]
    whole = make_slot(tmp_path / "whole", "matrix")
    assert run(whole, "matrix.py", *args).returncode == 0

    slot = make_slot(tmp_path / "stopped", "matrix")
    process = start(slot, "matrix.py", *args)
    lines, _ = _watch_progress(slot, process, stop_after=0.2)
    assert process.returncode == -signal.SIGKILL, "the job ended before it could be stopped"
    _assert_well_formed(lines)
    kept = len(list(slot.checkpoint.glob("block-*.txt")))
    assert 0 < kept < 160 // 4

    done = run(slot, "matrix.py", *args)
    assert done.returncode == 0, done.stderr
    assert f"{4 * kept} rows from a checkpoint" in done.stdout
    assert (slot.out / "report.json").read_bytes() == (whole.out / "report.json").read_bytes()


def test_matrix_refuses_bad_arguments_with_a_sentence(tmp_path: Path) -> None:
    slot = make_slot(tmp_path / "a", "matrix")
    done = run(slot, "matrix.py", "--n", "10", "--block", "0")
    assert done.returncode == 2
    assert "--block must be between 1 and 4000" in done.stderr

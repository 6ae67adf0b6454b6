"""The runner's small parts on real files: progress lines as jobs write them, the limits of a
resumed job, output files for the app, and which slots are kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_journal import T0, make_lease

from heatshare.jobs.bundle import pack_outputs
from heatshare.jobs.runner import JobRunner, limits_for, parse_progress, read_progress, tail
from heatshare.jobs.sandbox import NoSandbox
from heatshare.protocol.coordinator_api import Resources
from heatshare.protocol.local_api import JobPhase
from heatshare.store.jobs import JobJournal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.42 tile 5 of 12\n", (0.42, "tile 5 of 12")),
        ("0.1\n0.2 two\n", (0.2, "two")),
        ("0.5 half\nnot a number\n\n", (0.5, "half")),  # garbage after a good line
        ("1.7 over\n", (1.0, "over")),  # clamped
        ("-3\n", (0.0, "")),
        ("0.3 ok\nnan\ninf\n", (0.3, "ok")),  # not finite: ignored
        ("0.9 " + "x" * 900, (0.9, "x" * 500)),
        ("", None),
        ("\x00\xff garbage", None),
    ],
)
def test_progress_lines(text: str, expected: tuple[float, str] | None) -> None:
    assert parse_progress(text) == expected


def test_progress_is_read_from_the_files_tail(tmp_path: Path) -> None:
    path = tmp_path / ".progress"
    assert read_progress(path) is None
    path.write_bytes(b"\xff\xfe" * 10_000 + b"\n0.75 nearly\n")
    assert read_progress(path) == (0.75, "nearly")
    assert tail(path, 7) == "nearly\n"
    assert tail(tmp_path / "absent", 10) == ""


def test_a_resumed_job_gets_the_rest_of_its_wall_time() -> None:
    lease = make_lease(1).model_copy(
        update={"resources": Resources(wall_time_s=100, memory_bytes=64 << 20, cpu_cores=2)}
    )
    limits = limits_for(lease, elapsed_s=30.5)
    assert limits.wall_time_s == 69.5
    assert (limits.memory_bytes, limits.cpu_cores) == (64 << 20, 2)
    assert limits_for(lease, elapsed_s=500).wall_time_s == 1.0


def test_outputs_are_listed_and_read_from_the_result_or_the_out_folder(tmp_path: Path) -> None:
    journal = JobJournal.open(tmp_path / "h.sqlite3")
    runner = JobRunner(tmp_path, NoSandbox("none here"), journal)
    try:
        journal.add_lease(make_lease(1), network="n", now=T0)
        out = runner.slot(1) / "job" / "out"
        (out / "tiles").mkdir(parents=True)
        (out / "tiles" / "a.png").write_bytes(b"png")
        (out / "sum.txt").write_text("42")
        rec = journal.get(1)
        assert rec is not None
        assert runner.output_names(rec) == ["sum.txt", "tiles/a.png"]
        assert runner.read_output(1, "tiles/a.png") == b"png"
        pack_outputs(out, runner.result_path(1))
        (out / "sum.txt").write_text("changed after packing")
        assert runner.output_names(rec) == ["sum.txt", "tiles/a.png"]
        assert runner.read_output(1, "sum.txt") == b"42"  # the archive is what was sent
        for bad in ("../h.sqlite3", "/etc/passwd", "", "a/../../b"):
            with pytest.raises(ValueError, match="not the name of an output file"):
                runner.read_output(1, bad)
        with pytest.raises(KeyError):
            runner.read_output(1, "absent.txt")
        with pytest.raises(KeyError):
            runner.read_output(2, "sum.txt")
    finally:
        journal.close()


def test_only_active_and_the_last_finished_slots_are_kept(tmp_path: Path) -> None:
    journal = JobJournal.open(tmp_path / "h.sqlite3")
    runner = JobRunner(tmp_path, NoSandbox("none here"), journal, keep=2)
    try:
        for i in range(1, 6):
            journal.add_lease(make_lease(i), network="n", now=T0 + i)
            runner.slot(i).mkdir(parents=True)
            (runner.slot(i) / "log.txt").write_text("log")
        for i in (1, 2, 3):
            journal.set_phase(i, JobPhase.DONE, now=T0 + 10 + i, finished_at=T0 + 10 + i)
        (runner.slots_dir / "77").mkdir()  # not in the journal
        (runner.slots_dir / "stray.txt").write_text("x")
        runner.prune()
        assert sorted(p.name for p in runner.slots_dir.iterdir()) == ["2", "3", "4", "5"]
    finally:
        journal.close()

"""Files a job controls are read without following its links: the agent may run as root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heatshare.jobs.runner import open_job_file, read_progress


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "host-secret"
    path.write_text("0.5 the host's secret\n")
    return path


def test_a_progress_file_that_links_to_a_host_file_is_not_read(tmp_path: Path, secret: Path):
    job = tmp_path / "job"
    job.mkdir()
    (job / ".progress").symlink_to(secret)
    assert read_progress(job / ".progress") is None


def test_a_progress_fifo_does_not_block_the_reader(tmp_path: Path):
    job = tmp_path / "job"
    job.mkdir()
    os.mkfifo(job / ".progress")
    assert read_progress(job / ".progress") is None


def test_a_plain_progress_file_is_read(tmp_path: Path):
    job = tmp_path / "job"
    job.mkdir()
    (job / ".progress").write_text("0.25 rows 64 of 256\n")
    assert read_progress(job / ".progress") == (0.25, "rows 64 of 256")


def test_an_output_folder_that_links_out_is_refused(tmp_path: Path, secret: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(secret.parent)
    with pytest.raises(OSError, match="leaves"):
        open_job_file(out / "sub" / secret.name, out)
    (out / "ok.txt").write_text("fine")
    with open_job_file(out / "ok.txt", out) as f:
        assert f.read() == b"fine"

"""The ``heatshare`` command line, and the binding check that explains the old exit crash."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pytestqt.qtbot import QtBot

from heatshare.__about__ import __version__
from heatshare.gui.binding_check import binding_is_sound, leaked_references
from heatshare.gui.main import TOKEN_ENV, parse_args


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heatshare.gui", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_version_and_help() -> None:
    assert run("--version").stdout.strip() == f"heatshare {__version__}"
    help_text = run("--help").stdout
    for option in ("--profile-dir", "--connect", "--token", "--start-hidden", "--version"):
        assert option in help_text


def test_connect_takes_the_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "secret")
    args = parse_args(["--connect", "shed.local:47821"])
    assert (args.connect, args.token) == ("shed.local:47821", "secret")
    args = parse_args(["--connect", "shed.local:47821", "--token", "given"])
    assert args.token == "given"


def test_bad_arguments_say_why() -> None:
    bad = run("--connect", "shed.local")
    assert bad.returncode == 2
    assert "HOST:PORT" in bad.stderr
    lonely = run("--token", "x")
    assert lonely.returncode == 2
    assert "--connect" in lonely.stderr


def test_the_installed_binding_keeps_its_references(qtbot: QtBot) -> None:
    # PySide6 6.12.0 on Python 3.11 loses one reference to None per void call: the cause of
    # "Fatal Python error: none_dealloc". The pinned binding must not.
    assert leaked_references() == {"None": 0, "True": 0} or sys.version_info >= (3, 12)
    assert binding_is_sound()

"""The three programs explain themselves: ``--help`` on every command, ``--version``.

Each program runs in a subprocess, as the installed launcher a person types, and every
command's help is checked against its parser: each option and subcommand is listed with a
line that says what it does, and the command has a description.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from heatshare.__about__ import __version__
from heatshare.agent.cli import build_parser as agent_parser
from heatshare.coordinator.cli import build_parser as coordinator_parser
from heatshare.gui.main import build_parser as app_parser

PARSERS = {
    "heatshare": app_parser,
    "heatshare-agent": agent_parser,
    "heatshare-coordinator": coordinator_parser,
}


def program(name: str) -> str:
    """The launcher the package installs: beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    assert found, f"{name} is not installed (pip install -e .)"
    return found


def run(name: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATSHARE_")}
    env.update(extra_env)
    env["COLUMNS"] = "100"  # argparse wraps to the terminal's width; fixed, so checks hold
    return subprocess.run(
        [program(name), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """Every command path with its parser and the help line its parent gives it."""
    if not path:
        yield path, parser, None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            lines = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, lines.get(name)
                yield from commands(sub, (*path, name))


ALL = [
    pytest.param(prog, path, id=" ".join((prog, *path)))
    for prog, build in PARSERS.items()
    for path, _p, _h in commands(build())
]


def flat(text: str) -> str:
    """Text without its whitespace: argparse re-wraps lines, also after a hyphen."""
    return "".join(text.split())


@pytest.mark.parametrize("prog", list(PARSERS))
def test_version(prog: str) -> None:
    done = run(prog, "--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{prog} {__version__}\n", "")


@pytest.mark.parametrize(("prog", "path"), ALL)
def test_every_command_explains_itself(prog: str, path: tuple[str, ...]) -> None:
    parser, line = next((p, h) for q, p, h in commands(PARSERS[prog]()) if q == path)
    if path:
        assert line, f"{prog} {' '.join(path)} has no line in its parent's list"
    assert parser.description, f"{prog} {' '.join(path)} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, (
            f"{prog} {' '.join(path)}: {action.option_strings or action.dest} has no help"
        )
        assert len(action.help) >= 10, action.help

    done = run(prog, *path, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = flat(done.stdout)
    assert done.stdout.startswith(f"usage: {' '.join((prog, *path))} ")
    assert flat(parser.description) in out
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert re.search(rf"\b{re.escape(choice.dest)}\b", done.stdout)
                assert flat(str(choice.help)) in out
            continue
        for option in action.option_strings:
            assert option in done.stdout
        if action.help and "%(" not in action.help:
            assert flat(action.help) in out


def test_the_app_help_names_what_a_householder_uses() -> None:
    out = flat(run("heatshare", "--help").stdout)
    for option, says in [
        ("--version", "version"),
        ("--demo", "demo network"),
        ("--connect HOST:PORT", "another machine"),
        ("--token TOKEN", "token"),
        ("--profile-dir DIR", "every file"),
        ("--start-hidden", "tray"),
        ("--start-at-login {on,off}", "at login"),
    ]:
        assert flat(option) in out
        assert flat(says) in out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--token", "abc"), "--token goes with --connect"),
        (("--connect", "nowhere"), "HOST:PORT"),
        (("--no-such-option",), "unrecognized arguments: --no-such-option"),
    ],
)
def test_the_app_refuses_a_wrong_command_line_in_a_sentence(
    args: tuple[str, ...], says: str
) -> None:
    done = run("heatshare", *args)
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_the_services_refuse_a_missing_command_in_a_sentence() -> None:
    for prog in ("heatshare-agent", "heatshare-coordinator"):
        done = run(prog)
        assert done.returncode == 2
        assert "the following arguments are required: COMMAND" in done.stderr


def test_start_at_login_is_switched_from_the_command_line(tmp_path: Path) -> None:
    """What an installer or a script runs; the same entry the Settings switch writes."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    entry = tmp_path / "config" / "autostart" / "org.heatshare.Heatshare.desktop"
    done = run("heatshare", "--start-at-login", "on", **env)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout == f"Heatshare will start in the tray at login ({entry}).\n"
    text = entry.read_text()
    assert "--start-hidden" in text
    assert f"\nTryExec={program('heatshare')}\n" in text

    done = run("heatshare", "--start-at-login", "off", **env)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout == f"Heatshare will not start at login ({entry}).\n"
    assert not entry.exists()


def test_start_at_login_says_why_it_could_not(tmp_path: Path) -> None:
    blocker = tmp_path / "config"
    blocker.write_text("a file where the config folder should be")
    done = run("heatshare", "--start-at-login", "on", XDG_CONFIG_HOME=str(blocker))
    assert done.returncode == 1
    assert done.stderr.startswith("Could not change starting at login: ")
    assert "Traceback" not in done.stderr

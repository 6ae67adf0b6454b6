"""``heatshare-agent`` as a client of the API, its argument parsing and its profile lock."""

from __future__ import annotations

import argparse
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_api_support import TOKEN, Agent, start_agent

from heatshare.__about__ import __version__
from heatshare.agent import cli
from heatshare.agent.lock import ProfileLock
from heatshare.protocol.discovery import Paths, RuntimeInfo, write_runtime
from heatshare.protocol.local_api import AgentStatus


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = start_agent(tmp_path)
    a.tick(2)
    yield a
    a.close()


@pytest.fixture
def profile(tmp_path: Path, agent: Agent) -> Path:
    """A profile whose token and runtime file point at the in-process agent."""
    root = tmp_path / "profile"
    paths = Paths.for_profile(root)
    paths.ensure()
    paths.token_file.write_text(TOKEN)
    write_runtime(paths, RuntimeInfo(host="127.0.0.1", port=agent.api.port, pid=1, version="x"))
    return root


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:47821", ("127.0.0.1", 47821)),
        ("shed.local:8080", ("shed.local", 8080)),
        ("[::1]:47821", ("::1", 47821)),
    ],
)
def test_addresses_parse(text: str, expected: tuple[str, int]) -> None:
    assert cli.parse_address(text) == expected


@pytest.mark.parametrize("text", ["47821", ":47821", "host:", "host:port", "host:70000", "h:0"])
def test_bad_addresses_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_address(text)


def test_listen_may_ask_for_any_port() -> None:
    assert cli.parse_address("127.0.0.1:0", allow_zero=True) == ("127.0.0.1", 0)


@pytest.mark.parametrize("argv", [["--version"], ["run", "--version"], ["status", "--version"]])
def test_version_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"heatshare-agent {__version__}"


@pytest.mark.parametrize(
    "argv", [["--help"], ["run", "--help"], ["status", "--help"], ["stop", "-h"]]
)
def test_help_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0
    assert "--profile-dir" in capsys.readouterr().out or argv == ["--help"]


def test_status_json_is_one_object(profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--json", "--profile-dir", str(profile)]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["state"] == "idle"
    assert isinstance(data["heat_w"], float)
    assert data["heat_provenance"] == "estimate"
    assert data["temperatures"] == {"cpu": 48.0, "gpu0": 66.0}
    AgentStatus.model_validate(data)


def test_status_as_text(profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--profile-dir", str(profile)]) == 0
    out = capsys.readouterr().out
    assert "testhost: idle" in out
    assert "estimated from utilisation" in out
    assert "gpu0 66 °C" in out
    assert "£0.00" in out


def test_status_connects_to_a_named_address(
    tmp_path: Path, agent: Agent, profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Paths.for_profile(profile).runtime_file.unlink()
    argv = ["status", "--json", "--profile-dir", str(profile), "--connect"]
    assert cli.main([*argv, f"127.0.0.1:{agent.api.port}"]) == 0
    assert json.loads(capsys.readouterr().out)["hostname"] == "testhost"


def test_status_on_another_machine_takes_its_token(
    tmp_path: Path, agent: Agent, capsys: pytest.CaptureFixture[str]
) -> None:
    """A laptop asking the shed's agent: its own profile has no token for it."""
    argv = ["status", "--json", "--profile-dir", str(tmp_path / "laptop")]
    argv += ["--connect", f"127.0.0.1:{agent.api.port}"]
    assert cli.main(argv) == 1
    assert "token" in capsys.readouterr().err
    assert cli.main([*argv, "--token", TOKEN]) == 0
    assert json.loads(capsys.readouterr().out)["hostname"] == "testhost"


def test_status_without_an_agent_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--profile-dir", str(tmp_path / "empty")]) == 3
    err = capsys.readouterr().err
    assert "No agent is running for this profile" in err
    assert "heatshare-agent run" in err


def test_status_with_a_stale_runtime_file_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    paths = Paths.for_profile(tmp_path / "stale")
    paths.ensure()
    write_runtime(paths, RuntimeInfo(host="127.0.0.1", port=port, pid=1, version="x"))
    assert cli.main(["status", "--json", "--profile-dir", str(tmp_path / "stale")]) == 3
    assert "no agent answers" in capsys.readouterr().err


def test_status_with_the_wrong_token_exits_1(
    profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Paths.for_profile(profile).token_file.write_text("not-the-token")
    assert cli.main(["status", "--profile-dir", str(profile)]) == 1
    assert "token" in capsys.readouterr().err


def test_stop_asks_the_agent_to_shut_down(
    agent: Agent, profile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["stop", "--profile-dir", str(profile), "--connect", f"127.0.0.1:{agent.api.port}"]
    assert cli.main(argv) == 0
    assert agent.shutdown.wait(2)


def test_the_profile_lock_admits_one_holder(tmp_path: Path) -> None:
    first, second = ProfileLock(tmp_path / "agent.lock"), ProfileLock(tmp_path / "agent.lock")
    assert first.acquire()
    assert first.holder_pid() == os.getpid()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
    second.release()  # twice is harmless

"""``heatshare-agent enrol|demo|leave|jobs|earnings`` as clients of the agent's local API.

The job engine is the one stand-in (``network_double``); the CLI, the HTTP server and the
service are real, as in ``test_api_cli.py``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from network_double import NetworkDouble, Summary, a_job, some_earnings
from test_api_support import TOKEN, Agent, start_agent

from heatshare.agent import cli
from heatshare.agent.lock import ProfileLock
from heatshare.agent.work import NetworkError
from heatshare.protocol.discovery import Paths, RuntimeInfo, write_runtime
from heatshare.protocol.local_api import EarningsResponse, JobPhase, JobsResponse


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = start_agent(tmp_path)
    yield a
    a.close()


@pytest.fixture
def net(agent: Agent) -> NetworkDouble:
    double = NetworkDouble()
    agent.service.attach_network(double)
    return double


@pytest.fixture
def profile(tmp_path: Path, agent: Agent, net: NetworkDouble) -> Path:
    """A profile whose token and runtime file point at the in-process agent."""
    root = tmp_path / "profile"
    paths = Paths.for_profile(root)
    paths.ensure()
    paths.token_file.write_text(TOKEN)
    write_runtime(paths, RuntimeInfo(host="127.0.0.1", port=agent.api.port, pid=1, version="x"))
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["enrol", "demo", "leave", "jobs", "earnings"])
def test_help_explains_each_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--profile-dir" in out
    words = {
        "enrol": "pairing code",
        "demo": "demo credits",
        "leave": "forgotten",
        "jobs": "in progress",
        "earnings": "balance",
    }[command]
    assert words in " ".join(out.split())


def test_the_top_level_help_lists_the_network_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("enrol", "demo", "leave", "jobs", "earnings"):
        assert command in out


def test_enrol(profile: Path, net: NetworkDouble, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "enrol", "https://network.example", "ABCD-1234", "--profile-dir", str(profile)
    )
    assert (code, err) == (0, "")
    assert ("enrol", "https://network.example", "ABCD-1234") in net.calls
    assert "enrolled in the network at https://network.example as node 7 (account Ada)" in out
    assert "run here in the bubblewrap sandbox" in out


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (410, "This pairing code has expired; ask the network's operator for a new one."),
        (502, "The certificate of https://network.example is not trusted, so nothing was sent."),
    ],
)
def test_a_refused_enrolment_exits_1_with_the_reason(
    profile: Path, net: NetworkDouble, capsys: pytest.CaptureFixture[str], status: int, message: str
) -> None:
    net.raises["enrol"] = NetworkError(message, status=status)
    code, out, err = run(
        capsys, "enrol", "https://network.example", "ABCD-1234", "--profile-dir", str(profile)
    )
    assert code == 1
    assert out == ""
    assert err == f"heatshare-agent: {message}\n"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["enrol", "network.example", "ABCD"], "is not a network address"),
        (["enrol", "https://network.example", "AB CD"], "is not a pairing code"),
        (["enrol", "https://network..example", "ABCD"], "is not a host name"),
        (["enrol", "https://network.example:0x50", "ABCD"], "port"),
        (["enrol", "https://network.example"], "required: CODE"),
        (["jobs", "--limit", "0"], "from 1 to 1000"),
    ],
)
def test_usage_errors_exit_2(
    profile: Path,
    net: NetworkDouble,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    words: str,
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--profile-dir", str(profile)])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err
    assert net.calls == []


def test_without_an_agent_the_commands_say_it_must_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = str(tmp_path / "empty")
    for argv in (["enrol", "https://network.example", "ABCD"], ["jobs"], ["earnings", "--json"]):
        code, out, err = run(capsys, *argv, "--profile-dir", empty)
        assert code == 3
        assert out == ""
        assert "No agent is running for this profile" in err
        assert "heatshare-agent run" in err


def test_demo_and_leave(
    profile: Path, net: NetworkDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "demo", "--profile-dir", str(profile))
    assert code == 0
    assert "enrolled in the demo network as node 7 (account demo)" in out
    code, out, _ = run(capsys, "leave", "--profile-dir", str(profile))
    assert code == 0
    assert "not enrolled" in out
    assert [c[0] for c in net.calls] == ["start_demo", "leave"]


def test_jobs_json_is_one_object(
    profile: Path, net: NetworkDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    net.jobs_answer = JobsResponse(current=[a_job(12)], history=[a_job(11, JobPhase.DONE)])
    code, out, _ = run(capsys, "jobs", "--json", "--limit", "7", "--profile-dir", str(profile))
    assert code == 0
    assert JobsResponse.model_validate(json.loads(out)) == net.jobs_answer
    assert ("jobs", 7) in net.calls


def test_jobs_as_a_table(
    profile: Path, net: NetworkDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "jobs", "--profile-dir", str(profile))
    assert (code, out) == (0, "No jobs yet.\n")
    net.jobs_answer = JobsResponse(
        current=[a_job(12)],
        history=[
            a_job(11, JobPhase.DONE, progress=1.0, credited_minor=25, result_status="accepted"),
            a_job(10, JobPhase.FAILED, progress=None, energy_j=None, error="It ran out of memory."),
        ],
    )
    code, out, _ = run(capsys, "jobs", "--profile-dir", str(profile))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "In progress:"
    assert lines[1].split() == [
        *["attempt", "job", "label", "phase", "progress", "ran", "energy", "earned", "note"]
    ]
    running = lines[2]
    assert "mandelbrot tile 3" in running and "running" in running and "42 %" in running
    assert "1 min 15 s" in running and "0.0025 kWh" in running and "(CRD 0.25)" in running
    assert "tile 5 of 12" in running
    assert "Recent:" in lines
    done = next(ln for ln in lines if ln.strip().startswith("11 "))
    assert "CRD 0.25" in done and "(CRD" not in done and "accepted" in done
    failed = next(ln for ln in lines if ln.strip().startswith("10 "))
    assert "It ran out of memory." in failed and "—" in failed


def test_earnings_json_holds_the_balance_as_an_integer(
    profile: Path, net: NetworkDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    net.earnings_answer = some_earnings()
    code, out, _ = run(capsys, "earnings", "--json", "--profile-dir", str(profile))
    assert code == 0
    data = json.loads(out)
    assert data["balance_minor"] == 1234 and type(data["balance_minor"]) is int
    assert data["currency"] == "CRD"
    assert EarningsResponse.model_validate(data) == some_earnings()


def test_earnings_as_text(
    profile: Path, net: NetworkDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    net.earnings_answer = some_earnings()
    code, out, _ = run(capsys, "earnings", "--profile-dir", str(profile))
    assert code == 0
    assert "This machine   CRD 12.34" in out
    assert "Its account    CRD 20.00" in out
    assert "Today          CRD 2.50" in out
    assert "credit job 3 attempt 11" in out


def test_earnings_before_enrolling_exits_1(
    profile: Path, net: NetworkDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    net.raises["earnings"] = NetworkError("This machine is not enrolled in a network.", status=404)
    code, out, err = run(capsys, "earnings", "--json", "--profile-dir", str(profile))
    assert (code, out) == (1, "")
    assert "not enrolled" in err
    assert "heatshare-agent enrol URL CODE" in err


def test_commands_reach_an_agent_at_a_named_address(
    tmp_path: Path, agent: Agent, net: NetworkDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    net.earnings_answer = some_earnings()
    argv = ["earnings", "--json", "--profile-dir", str(tmp_path / "laptop")]
    argv += ["--connect", f"127.0.0.1:{agent.api.port}", "--token", TOKEN]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert json.loads(out)["balance_minor"] == 1234


def test_status_shows_the_job_and_todays_earnings(
    profile: Path, net: NetworkDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "status", "--profile-dir", str(profile))
    assert code == 0
    assert "Job " not in out and "Earned today" not in out
    net.work = Summary("mandelbrot tile 3", 0.42, 250, "CRD")
    code, out, _ = run(capsys, "status", "--profile-dir", str(profile))
    assert "  Job            mandelbrot tile 3, 42 %" in out
    assert "  Earned today   CRD 2.50" in out


def test_a_command_waits_for_an_agent_that_is_starting(
    tmp_path: Path, agent: Agent, net: NetworkDouble, capsys: pytest.CaptureFixture[str]
) -> None:
    """The profile is locked by a live process that publishes its address a moment later."""
    root = tmp_path / "starting"
    paths = Paths.for_profile(root)
    paths.ensure()
    paths.token_file.write_text(TOKEN)
    lock = ProfileLock(paths.config_dir / cli.LOCK_FILE)
    assert lock.acquire()
    info = RuntimeInfo(host="127.0.0.1", port=agent.api.port, pid=os.getpid(), version="x")
    publish = threading.Timer(0.5, write_runtime, (paths, info))
    publish.start()
    try:
        # The holder is this very process: a command never waits for itself ...
        started = time.monotonic()
        code, _, err = run(capsys, "jobs", "--json", "--profile-dir", str(root))
        assert code == 3 and "No agent is running" in err
        assert time.monotonic() - started < 0.5
        # ... but does for another live process holding the lock.
        (paths.config_dir / cli.LOCK_FILE).write_text(f"{os.getppid()}\n")
        code, out, _ = run(capsys, "jobs", "--json", "--profile-dir", str(root))
        assert code == 0
        assert json.loads(out) == {"current": [], "history": []}
    finally:
        publish.cancel()
        lock.release()


def test_a_stale_lock_file_does_not_make_a_command_wait(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = Paths.for_profile(tmp_path / "stale")
    paths.ensure()
    (paths.config_dir / cli.LOCK_FILE).write_text("4194305\n")
    started = time.monotonic()
    code, _, err = run(capsys, "earnings", "--profile-dir", str(tmp_path / "stale"))
    assert code == 3 and "No agent is running" in err
    assert time.monotonic() - started < 1.0

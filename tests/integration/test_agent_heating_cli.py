"""``heatshare-agent heating`` against the real agent process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agent_process import AgentProcess, run_cli
from heatshare.protocol.heating import HeatingStatus, HeatMode


def cli(agent: AgentProcess, *args: str) -> tuple[int, str, str]:
    out = run_cli("heating", *args, "--profile-dir", str(agent.profile))
    return out.returncode, out.stdout, out.stderr


def wait_stepped(agent: AgentProcess) -> None:
    client = agent.client()
    deadline = time.monotonic() + 10
    while client.status().heating is None:
        assert time.monotonic() < deadline, "the heating loop never ran"
        time.sleep(0.1)


def test_show_change_and_read_back(agent: AgentProcess) -> None:
    wait_stepped(agent)
    code, out, err = cli(agent)
    assert code == 0, err
    assert out.startswith("Heating: earn first;")
    assert "Target" in out and "Why" in out

    code, out, err = cli(agent, "mode", "heat-first")
    assert code == 0, err
    assert out.startswith("Heating: heat first;")

    code, out, err = cli(agent, "setpoint", "21.5", "--json")
    assert code == 0, err
    status = HeatingStatus.model_validate_json(out)
    assert status.setpoint_c == 21.5 and status.setpoint_source == "override"

    code, out, err = cli(agent, "setpoint", "-0.5", "--json")
    assert code == 0, err
    assert json.loads(out)["setpoint_c"] == 21.0

    code, out, err = cli(agent, "boost")
    assert code == 0, err
    assert "boost until" in out.splitlines()[0]
    code, out, err = cli(agent, "boost", "0", "--json")
    assert code == 0, err
    assert json.loads(out)["boost_until"] is None

    code, out, err = cli(agent, "setpoint", "clear", "--json")
    assert code == 0, err
    assert json.loads(out)["setpoint_source"] in ("comfort", "eco")
    assert agent.client().heating().mode is HeatMode.HEAT_FIRST


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("mode", "toasty"), "the mode is one of heat_first, earn_first, quiet, off"),
        (("mode",), "the mode is one of"),
        (("boost", "999"), "a boost lasts 0 to 240 minutes"),
        (("boost", "soon"), "a boost lasts 0 to 240 minutes"),
        (("setpoint", "warm"), "give the setpoint as degrees Celsius"),
        (("setpoint", "45"), "is not accepted"),
        (("setpoint",), "give the setpoint as degrees Celsius"),
        (("stop",), "invalid choice"),
    ],
)
def test_mistakes_are_usage_errors_that_say_what_is_accepted(
    args: tuple[str, ...], words: str
) -> None:
    out = run_cli("heating", *args)
    assert out.returncode == 2
    assert words in out.stderr
    assert "Traceback" not in out.stderr


def test_without_an_agent_it_says_so(tmp_path: Path) -> None:
    out = run_cli("heating", "--profile-dir", str(tmp_path))
    assert out.returncode == 3
    assert "No agent is running" in out.stderr

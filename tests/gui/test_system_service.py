"""The agent as a system service: the states systemctl reports, pkexec's refusals, the switch.

The fake runner replays what the real programs print and return. systemctl's words were
recorded from systemd 252 (Debian 12) on this machine: ``is-enabled`` on a unit file that is
absent, disabled, enabled and masked (``systemctl --root=DIR``), and ``enable --now`` where
PID 1 is not systemd. pkexec's come from pkexec(1) and its source: 126 when the person closes
the prompt, 127 when not authorised or when no authentication agent can ask. The last tests
run the real ``systemctl is-enabled``.
"""

from __future__ import annotations

import getpass
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from PySide6.QtWidgets import QCheckBox, QLabel
from pytestqt.qtbot import QtBot

from heatshare.__about__ import __agent_unit__
from heatshare.gui.settings_dialog import SettingsDialog
from heatshare.gui.system_service import (
    AGENT_UNIT,
    NOT_INSTALLED_SENTENCE,
    OFF_SENTENCE,
    ON_SENTENCE,
    RunResult,
    ServiceState,
    SystemService,
    agent_unit,
    run_command,
)
from heatshare.gui.tasks import TaskRunner

SYSTEMCTL = "/usr/bin/systemctl"
IS_ENABLED = ("systemctl", "is-enabled", AGENT_UNIT)
ENABLE = ("pkexec", SYSTEMCTL, "enable", "--now", AGENT_UNIT)
DISABLE = ("pkexec", SYSTEMCTL, "disable", "--now", AGENT_UNIT)

# systemd 252, recorded here.
NO_UNIT = RunResult(
    1, "", f"Failed to get unit file state for {AGENT_UNIT}: No such file or directory\n"
)
DISABLED = RunResult(1, "disabled\n", "")
ENABLED = RunResult(0, "enabled\n", "")
MASKED = RunResult(1, "masked\n", "")
ENABLED_NOW = RunResult(
    0,
    "",
    f"Created symlink /etc/systemd/system/multi-user.target.wants/{AGENT_UNIT} → "
    "/usr/lib/systemd/system/heatshare-agent@.service.\n",
)
NO_UNIT_ENABLE = RunResult(1, "", f"Failed to enable unit, unit {AGENT_UNIT} does not exist.\n")
NOT_BOOTED = RunResult(
    1,
    "",
    f"Created symlink /etc/systemd/system/multi-user.target.wants/{AGENT_UNIT} → "
    "/usr/lib/systemd/system/heatshare-agent@.service.\n"
    "System has not been booted with systemd as init system (PID 1). Can't operate.\n"
    "Failed to connect to bus: Host is down\n",
)
START_FAILED = RunResult(
    1,
    "",
    f"Job for {AGENT_UNIT} failed because the control process exited with error code.\n"
    f'See "systemctl status {AGENT_UNIT}" and "journalctl -xeu {AGENT_UNIT}" for details.\n',
)
# pkexec(1).
DISMISSED = RunResult(126, "", "Error executing command as another user: Request dismissed\n")
NOT_AUTHORISED = RunResult(
    127,
    "",
    "Error executing command as another user: Not authorized\n\nThis incident has been reported.\n",
)
NO_AGENT = RunResult(
    127, "", "Error executing command as another user: No authentication agent found.\n"
)


class FakeRunner:
    """Answers each command from a script; is-enabled answers with the unit's current state."""

    def __init__(self, state: RunResult, answers: dict[tuple[str, ...], object] | None = None):
        self.state = state
        self.answers = answers or {}
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, args: Sequence[str], timeout: float) -> RunResult:
        call = tuple(args)
        self.calls.append(call)
        assert timeout > 0
        if call == IS_ENABLED:
            return self.state
        answer = self.answers[call]
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, tuple)
        result, self.state = answer  # what it said, and the unit's state afterwards
        assert isinstance(result, RunResult)
        return result


def service(runner: FakeRunner, *, euid: int = 1000, platform: str = "linux") -> SystemService:
    return SystemService(
        runner,
        platform=platform,
        euid=euid,
        which=lambda name: SYSTEMCTL if name == "systemctl" else None,
    )


def test_the_unit_is_this_users_instance_of_the_template_the_packages_install() -> None:
    assert __agent_unit__ == "heatshare-agent@.service"
    assert f"heatshare-agent@{getpass.getuser()}.service" == AGENT_UNIT
    assert agent_unit("alice") == "heatshare-agent@alice.service"
    template = Path(__file__).parents[2] / "packaging" / "linux" / __agent_unit__
    assert "User=%i" in template.read_text("utf-8")


@pytest.mark.parametrize(
    ("answer", "state", "sentence"),
    [
        (ENABLED, ServiceState.ON, ON_SENTENCE),
        (DISABLED, ServiceState.OFF, OFF_SENTENCE),
        (NO_UNIT, ServiceState.NOT_INSTALLED, NOT_INSTALLED_SENTENCE),
        (RunResult(4, "not-found\n", ""), ServiceState.NOT_INSTALLED, NOT_INSTALLED_SENTENCE),
        (MASKED, ServiceState.MASKED, "an administrator has masked"),
        (RunResult(0, "static\n", ""), ServiceState.UNKNOWN, "(systemd says: static)"),
    ],
)
def test_status_follows_is_enabled(answer: RunResult, state: ServiceState, sentence: str) -> None:
    runner = FakeRunner(answer)
    status = service(runner).status()
    assert status.state is state
    assert sentence in status.sentence
    assert status.changeable == (state in (ServiceState.ON, ServiceState.OFF))
    assert runner.calls == [IS_ENABLED]


def test_not_linux_or_no_systemctl_is_unsupported_and_runs_nothing() -> None:
    runner = FakeRunner(ENABLED)
    assert not service(runner, platform="win32").supported
    assert service(runner, platform="darwin").status().state is ServiceState.UNSUPPORTED
    no_systemd = SystemService(runner, platform="linux", euid=1000, which=lambda _n: None)
    assert not no_systemd.supported
    assert no_systemd.status().sentence == "Not available: this system does not use systemd."
    assert runner.calls == []


def test_turning_on_asks_pkexec_and_reads_the_state_back() -> None:
    runner = FakeRunner(DISABLED, {ENABLE: (ENABLED_NOW, ENABLED)})
    outcome = service(runner).set_enabled(True)
    assert outcome.ok
    assert outcome.status.state is ServiceState.ON
    assert outcome.sentence == ON_SENTENCE
    assert runner.calls == [ENABLE, IS_ENABLED]


def test_turning_off() -> None:
    runner = FakeRunner(ENABLED, {DISABLE: (RunResult(0, "", "Removed …\n"), DISABLED)})
    outcome = service(runner).set_enabled(False)
    assert outcome.ok
    assert outcome.status.state is ServiceState.OFF


def test_root_needs_no_pkexec() -> None:
    runner = FakeRunner(DISABLED, {ENABLE[1:]: (ENABLED_NOW, ENABLED)})
    assert service(runner, euid=0).set_enabled(True).ok
    assert runner.calls[0] == (SYSTEMCTL, "enable", "--now", AGENT_UNIT)


@pytest.mark.parametrize(
    ("answer", "sentence"),
    [
        (DISMISSED, "The password prompt was closed: nothing was changed."),
        (NOT_AUTHORISED, "The administrator's permission was refused: nothing was changed."),
        (NO_AGENT, "No password prompt could be shown (no polkit authentication agent"),
        (
            FileNotFoundError(2, "No such file or directory", "pkexec"),
            "it is not installed (Debian and Ubuntu: the pkexec or policykit-1 package)",
        ),
        (subprocess.TimeoutExpired(list(ENABLE), 300), "No answer within 5 minutes"),
    ],
)
def test_a_refused_or_failed_pkexec_changes_nothing_and_says_why(
    answer: object, sentence: str
) -> None:
    runner = FakeRunner(
        DISABLED, {ENABLE: answer if isinstance(answer, BaseException) else (answer, DISABLED)}
    )
    outcome = service(runner).set_enabled(True)
    assert not outcome.ok
    assert sentence in outcome.sentence
    assert outcome.status.state is ServiceState.OFF  # read again, not assumed
    assert runner.calls == [ENABLE, IS_ENABLED]


def test_systemctl_failures_after_authorisation() -> None:
    # The unit went away between the dialog's read and the click (the package was removed).
    runner = FakeRunner(DISABLED, {ENABLE: (NO_UNIT_ENABLE, NO_UNIT)})
    outcome = service(runner).set_enabled(True)
    assert (outcome.ok, outcome.sentence) == (False, NOT_INSTALLED_SENTENCE)
    assert outcome.status.state is ServiceState.NOT_INSTALLED

    # A container: enable writes its links, the start cannot happen.
    runner = FakeRunner(DISABLED, {ENABLE: (NOT_BOOTED, ENABLED)})
    outcome = service(runner).set_enabled(True)
    assert not outcome.ok
    assert outcome.sentence == (
        "This system was not started by systemd, so the service cannot run now."
    )
    assert outcome.status.state is ServiceState.ON

    runner = FakeRunner(DISABLED, {ENABLE: (START_FAILED, ENABLED)})
    outcome = service(runner).set_enabled(True)
    assert not outcome.ok
    assert outcome.sentence == (
        f"The service was turned on but did not start: `systemctl status {AGENT_UNIT}` says why."
    )


# -- the switch in the settings dialog ----------------------------------------------------------


def open_dialog(qtbot: QtBot, svc: SystemService | None) -> SettingsDialog:
    from decimal import Decimal

    from heatshare.gui.autostart.noop import NoAutostart
    from heatshare.protocol.local_api import Settings

    settings = Settings(tariff_per_kwh=Decimal("0.245"), currency="GBP", temperature_unit="C")
    tasks = TaskRunner(immediate=True)
    dialog = SettingsDialog(settings, NoAutostart("test"), system_service=svc, tasks=tasks)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def switch(dialog: SettingsDialog) -> tuple[QCheckBox, QLabel]:
    box = next(
        b
        for b in dialog.findChildren(QCheckBox)
        if b.text() == "Keep heating when nobody is logged in"
    )
    return box, dialog.keep_heating_note


def test_the_switch_shows_the_state_and_turns_the_service_on(qtbot: QtBot) -> None:
    runner = FakeRunner(DISABLED, {ENABLE: (ENABLED_NOW, ENABLED)})
    dialog = open_dialog(qtbot, service(runner))
    box, note = switch(dialog)
    assert box.isVisible() and box.isEnabled() and not box.isChecked()
    assert note.text() == OFF_SENTENCE
    box.click()  # what a person's click does
    assert box.isChecked() and box.isEnabled()
    assert note.text() == ON_SENTENCE
    assert runner.calls == [IS_ENABLED, ENABLE, IS_ENABLED]


def test_a_dismissed_prompt_puts_the_switch_back(qtbot: QtBot) -> None:
    runner = FakeRunner(DISABLED, {ENABLE: (DISMISSED, DISABLED)})
    dialog = open_dialog(qtbot, service(runner))
    box, note = switch(dialog)
    box.click()
    assert not box.isChecked() and box.isEnabled()
    assert note.text() == "The password prompt was closed: nothing was changed."


def test_not_installed_from_a_package_disables_the_switch(qtbot: QtBot) -> None:
    dialog = open_dialog(qtbot, service(FakeRunner(NO_UNIT)))
    box, note = switch(dialog)
    assert box.isVisible() and not box.isEnabled() and not box.isChecked()
    assert note.text() == NOT_INSTALLED_SENTENCE


def test_no_service_or_no_systemd_hides_the_switch(qtbot: QtBot) -> None:
    runner = FakeRunner(ENABLED)
    for svc in (None, service(runner, platform="darwin")):
        dialog = open_dialog(qtbot, svc)
        box, note = switch(dialog)
        assert not box.isVisible() and not note.isVisible()
    assert runner.calls == []


def test_an_answer_after_the_dialog_closed_goes_nowhere(qtbot: QtBot) -> None:
    runner = FakeRunner(DISABLED)
    dialog = open_dialog(qtbot, service(runner))
    dialog.reject()
    dialog._in_background(lambda: None, lambda _v: pytest.fail("delivered after close"))


# -- the real systemctl -------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="no systemctl on this machine")
def test_the_real_systemctl_answers_as_replayed() -> None:
    """``systemctl is-enabled`` reads unit files, so it answers without systemd as PID 1."""
    real = SystemService(run_command)
    assert real.supported
    status = real.status()
    # Where the package is installed the unit exists (off by default); elsewhere it does not.
    assert status.state in (ServiceState.NOT_INSTALLED, ServiceState.OFF, ServiceState.ON)
    raw = run_command(["systemctl", "is-enabled", "heatshare-no-such-unit.service"], 10)
    assert (raw.returncode, raw.stdout) in ((1, ""), (4, "not-found\n"))
    assert SystemService(lambda _a, _t: raw, which=shutil.which).status().state is (
        ServiceState.NOT_INSTALLED
    )

"""The agent as a system service on Linux, so heating survives logout and reboots.

The Linux packages install the systemd template unit ``heatshare-agent@.service``, off by
default; its instance for a user (:data:`AGENT_UNIT` for this one) runs that user's own agent
on that user's own profile, so the app finds it as it finds any agent of the user. The settings
dialog's "Keep heating when nobody is logged in" asks for administrator rights through
``pkexec`` and runs ``systemctl enable --now`` (or ``disable --now``); its state is read with
``systemctl is-enabled``. Every outcome becomes one sentence for the householder.

The command runner is injected: the app passes :func:`run_command`, tests a fake that replays
what systemctl and pkexec really print and return. No Qt here: the dialog calls this off the
UI thread (a password prompt can take as long as the person takes).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from heatshare.__about__ import __agent_unit__


def agent_unit(user: str) -> str:
    """The instance of the agent's template unit that runs ``user``'s agent."""
    return __agent_unit__.replace("@.", f"@{user}.", 1)


def _this_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container): the unit needs one
        return str(os.getuid()) if hasattr(os, "getuid") else "user"


AGENT_UNIT = agent_unit(_this_user())
# is-enabled answers at once; enable --now waits for the password prompt and the start.
READ_TIMEOUT_S = 10.0
CHANGE_TIMEOUT_S = 300.0
# pkexec's own exit codes (pkexec(1)): the person dismissed the prompt; not authorised, no
# authentication agent, or pkexec could not run the program.
PKEXEC_DISMISSED = 126
PKEXEC_REFUSED = 127


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a command printed and returned."""

    returncode: int
    stdout: str
    stderr: str


# Runs an argument list; raises FileNotFoundError when the program is not there and
# subprocess.TimeoutExpired when it outlives the timeout.
Runner = Callable[[Sequence[str], float], RunResult]


def run_command(args: Sequence[str], timeout: float) -> RunResult:
    """The real runner: the command's output as text, its exit code."""
    done = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, stdin=None
    )
    return RunResult(done.returncode, done.stdout, done.stderr)


class ServiceState(Enum):
    ON = "on"
    OFF = "off"
    MASKED = "masked"  # the administrator forbade it: only they can undo that
    NOT_INSTALLED = "not_installed"  # no unit: the app was not installed from a package
    UNSUPPORTED = "unsupported"  # not Linux, or no systemd: the control is not shown
    UNKNOWN = "unknown"  # systemctl failed in a way not foreseen: its words are shown


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """The service's state and the sentence shown under the switch."""

    state: ServiceState
    sentence: str

    @property
    def enabled(self) -> bool:
        return self.state is ServiceState.ON

    @property
    def changeable(self) -> bool:
        return self.state in (ServiceState.ON, ServiceState.OFF)


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    """What turning the service on or off did: whether it worked, a sentence, the state now."""

    ok: bool
    sentence: str
    status: ServiceStatus


ON_SENTENCE = (
    "The agent runs as a system service: it starts with the computer and keeps heating "
    "when nobody is logged in."
)
OFF_SENTENCE = (
    "The agent runs while you are logged in. Turning this on asks for an administrator's password."
)
NOT_INSTALLED_SENTENCE = (
    "Not available: Heatshare was not installed from its package, so the system service "
    f"({AGENT_UNIT}) is not on this computer."
)
MASKED_SENTENCE = (
    f"Not available: an administrator has masked the system service ({AGENT_UNIT}); "
    f"`systemctl unmask {AGENT_UNIT}` allows it again."
)
NO_SYSTEMD_SENTENCE = "Not available: this system does not use systemd."
# systemctl's words when PID 1 is not systemd (a container, some minimal systems).
_NOT_BOOTED_WITH_SYSTEMD = "has not been booted with systemd"
# is-enabled's answers that mean the unit starts at boot (systemctl(1), is-enabled).
_ON_WORDS = {"enabled", "enabled-runtime", "linked", "linked-runtime", "alias", "indirect"}
_MASKED_WORDS = {"masked", "masked-runtime"}


class SystemService:
    """Reads and changes whether the agent's systemd unit is enabled.

    Args:
        runner: Runs a command (:func:`run_command` by default; tests pass a fake).
        unit: The unit's name.
        platform: A ``sys.platform`` value (tests); this platform by default.
        euid: The effective user id (tests); root needs no pkexec.
        which: Finds a program on ``PATH`` (tests); :func:`shutil.which` by default.
    """

    def __init__(
        self,
        runner: Runner = run_command,
        *,
        unit: str = AGENT_UNIT,
        platform: str | None = None,
        euid: int | None = None,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self._run = runner
        self.unit = unit
        self._platform = sys.platform if platform is None else platform
        self._euid = euid if euid is not None else (os.geteuid() if hasattr(os, "geteuid") else -1)
        self._which = which

    @property
    def supported(self) -> bool:
        """Linux with a ``systemctl``: anywhere else the switch is not shown."""
        return self._platform.startswith("linux") and self._which("systemctl") is not None

    def status(self) -> ServiceStatus:
        """The unit's state from ``systemctl is-enabled``."""
        if not self.supported:
            return ServiceStatus(ServiceState.UNSUPPORTED, NO_SYSTEMD_SENTENCE)
        try:
            result = self._run(["systemctl", "is-enabled", self.unit], READ_TIMEOUT_S)
        except FileNotFoundError:
            return ServiceStatus(ServiceState.UNSUPPORTED, NO_SYSTEMD_SENTENCE)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return ServiceStatus(
                ServiceState.UNKNOWN, f"Heatshare could not ask systemd about the service: {exc}."
            )
        return self._read_state(result)

    def _read_state(self, result: RunResult) -> ServiceStatus:
        word = result.stdout.strip().splitlines()[0] if result.stdout.strip() else ""
        if word in _ON_WORDS:
            return ServiceStatus(ServiceState.ON, ON_SENTENCE)
        if word == "disabled":
            return ServiceStatus(ServiceState.OFF, OFF_SENTENCE)
        if word in _MASKED_WORDS:
            return ServiceStatus(ServiceState.MASKED, MASKED_SENTENCE)
        # No unit file: "Failed to get unit file state for …: No such file or directory" (rc 1)
        # and nothing on stdout (systemd 252); "not-found" on stdout in newer systemd.
        if word == "not-found" or "No such file" in result.stderr:
            return ServiceStatus(ServiceState.NOT_INSTALLED, NOT_INSTALLED_SENTENCE)
        # static, generated, transient: the package's unit always has [Install]; anything
        # else means someone changed it, so the switch keeps its hands off.
        said = _said(result) or f"exit code {result.returncode}"
        return ServiceStatus(
            ServiceState.UNKNOWN,
            f"Heatshare cannot tell whether the system service is on (systemd says: {said}).",
        )

    def set_enabled(self, on: bool) -> ChangeOutcome:
        """``systemctl enable --now`` (or ``disable --now``), through pkexec unless root."""
        verb = "enable" if on else "disable"
        systemctl = self._which("systemctl") or "systemctl"
        command = [systemctl, verb, "--now", self.unit]
        if self._euid != 0:
            # pkexec resolves a bare name itself, but the absolute path is what its
            # password prompt shows the person.
            command = ["pkexec", *command]
        try:
            result = self._run(command, CHANGE_TIMEOUT_S)
        except FileNotFoundError:
            return self._failed(
                "Heatshare needs pkexec to ask for an administrator's password, and it is not "
                "installed (Debian and Ubuntu: the pkexec or policykit-1 package). Nothing "
                "was changed."
            )
        except subprocess.TimeoutExpired:
            return self._failed(
                f"No answer within {CHANGE_TIMEOUT_S / 60:.0f} minutes; nothing was changed."
            )
        except OSError as exc:
            return self._failed(f"Heatshare could not run {command[0]}: {exc}.")
        return self._outcome(on, result)

    def _outcome(self, on: bool, result: RunResult) -> ChangeOutcome:  # noqa: PLR0911 - one per case
        said = _said(result)
        if result.returncode == 0:
            status = self.status()
            return ChangeOutcome(status.enabled == on, status.sentence, status)
        if self._euid != 0 and result.returncode == PKEXEC_DISMISSED:
            return self._failed("The password prompt was closed: nothing was changed.")
        if self._euid != 0 and result.returncode == PKEXEC_REFUSED:
            if "No authentication agent" in said or "no tty" in said:
                return self._failed(
                    "No password prompt could be shown (no polkit authentication agent runs "
                    "in this session): nothing was changed. An administrator can run "
                    f"`sudo systemctl {'enable' if on else 'disable'} --now {self.unit}`."
                )
            return self._failed("The administrator's permission was refused: nothing was changed.")
        if "does not exist" in said:
            return self._failed(NOT_INSTALLED_SENTENCE)
        if _NOT_BOOTED_WITH_SYSTEMD in said:
            # enable wrote its links before the start failed: the state says which is true.
            return self._failed(
                "This system was not started by systemd, so the service cannot run now.",
            )
        if on and said.startswith("Job for"):
            return self._failed(
                "The service was turned on but did not start: "
                f"`systemctl status {self.unit}` says why."
            )
        return self._failed(f"systemctl refused: {said or f'exit code {result.returncode}'}.")

    def _failed(self, sentence: str) -> ChangeOutcome:
        status = self.status()
        return ChangeOutcome(False, sentence, status)


def _said(result: RunResult) -> str:
    """What a command said on stderr (else stdout), as one line without the trailing dot."""
    text = (result.stderr.strip() or result.stdout.strip()).replace("\n", " ")
    return " ".join(text.split()).rstrip(".")

"""The Windows and macOS recipes and their workflow, checked as far as this Linux machine can.

Inno Setup, PyInstaller on Windows and macOS, codesign and hdiutil do not run here (see
docs/packaging.md); what can be checked is that each file parses and says what it must: the
workflow's YAML, the Info.plist (plistlib), the Inno Setup script's sections and keys, the
shell script's syntax, and that the installer's start-at-login value is the one the app's
own switch writes.
"""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from heatshare.__about__ import __app_id__, __app_name__, __version__
from heatshare.gui.autostart import START_HIDDEN
from heatshare.gui.autostart.windows import RUN_KEY, WindowsAutostart

ROOT = Path(__file__).resolve().parents[2]
ISS = ROOT / "packaging" / "windows" / "heatshare.iss"
PLIST = ROOT / "packaging" / "macos" / "Info.plist"
DMG_SCRIPT = ROOT / "packaging" / "macos" / "build-dmg.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "packages.yml"
SPEC = ROOT / "packaging" / "heatshare.spec"
ICNS = ROOT / "resources" / "icons" / "org.heatshare.Heatshare.icns"


# -- the workflow -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in job["steps"])


def test_the_workflow_builds_on_each_platforms_runner(workflow: dict[Any, Any]) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers)
    jobs = workflow["jobs"]
    assert {job["runs-on"] for job in jobs.values()} == {
        "ubuntu-latest",
        "windows-latest",
        "macos-latest",
    }
    for name, job in jobs.items():
        text = steps_text(job)
        assert "actions/checkout@" in text
        assert "actions/upload-artifact@" in text, f"{name} uploads nothing"
        upload = next(s for s in job["steps"] if "upload-artifact" in s.get("uses", ""))
        assert upload["with"]["if-no-files-found"] == "error"
        for step in job["steps"]:
            assert "run" in step or "uses" in step, step


def test_each_job_bundles_with_the_spec_and_makes_its_package(workflow: dict[Any, Any]) -> None:
    jobs = {job["runs-on"]: steps_text(job) for job in workflow["jobs"].values()}
    assert "make deb" in jobs["ubuntu-latest"]
    assert "apt-get install -y ./dist/heatshare_*.deb" in jobs["ubuntu-latest"]
    for runner in ("windows-latest", "macos-latest"):
        assert "pyinstaller --noconfirm" in jobs[runner]
        assert "packaging/heatshare.spec" in jobs[runner]
        assert "pyinstaller==${{ env.PYINSTALLER_VERSION }}" in jobs[runner]
    assert r"/DAppVersion=${{ steps.version.outputs.version }}" in jobs["windows-latest"]
    assert r"packaging\windows\heatshare.iss" in jobs["windows-latest"]
    assert "packaging/macos/build-dmg.sh" in jobs["macos-latest"]
    # Installed and removed once on Windows: the programs, the login entry, the uninstaller.
    assert "/VERYSILENT" in jobs["windows-latest"]
    assert "unins000.exe" in jobs["windows-latest"]


def test_the_workflow_pins_the_pyinstaller_the_project_pins(workflow: dict[Any, Any]) -> None:
    pinned = re.search(r'"pyinstaller==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned, "pyproject.toml pins no PyInstaller"
    assert workflow["env"]["PYINSTALLER_VERSION"] == pinned.group(1)


# -- macOS --------------------------------------------------------------------------------------


def test_the_info_plist_makes_a_menu_bar_app() -> None:
    text = PLIST.read_text(encoding="utf-8").replace("@VERSION@", __version__)
    info = plistlib.loads(text.encode("utf-8"))
    assert info["LSUIElement"] is True
    assert info["CFBundleIdentifier"] == __app_id__ == "org.heatshare.Heatshare"
    assert info["CFBundleName"] == __app_name__
    assert info["CFBundlePackageType"] == "APPL"
    assert info["CFBundleShortVersionString"] == info["CFBundleVersion"] == __version__
    assert info["CFBundleIconFile"] == ICNS.name
    assert info["NSHighResolutionCapable"] is True
    # The executable PyInstaller puts in Contents/MacOS is the spec's EXE name.
    assert re.search(rf'name="{re.escape(info["CFBundleExecutable"])}"', SPEC.read_text())
    assert "@VERSION@" in PLIST.read_text(encoding="utf-8")  # the script fills it in


def test_the_icns_is_an_icon_file() -> None:
    data = ICNS.read_bytes()
    assert data[:4] == b"icns"
    assert int.from_bytes(data[4:8], "big") == len(data)


def test_the_dmg_script_is_sound_shell_and_does_what_it_says() -> None:
    subprocess.run(["sh", "-n", str(DMG_SCRIPT)], check=True)
    assert DMG_SCRIPT.stat().st_mode & 0o111, "not executable"
    text = DMG_SCRIPT.read_text(encoding="utf-8")
    for needed in (
        "packaging/macos/Info.plist",
        "plutil -lint",
        "org.heatshare.Heatshare.icns",
        "codesign --force --deep --sign -",
        "hdiutil create",
        "-format UDZO",
        "hdiutil verify",
        "ln -s /Applications",
    ):
        assert needed in text, needed
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(DMG_SCRIPT)], check=True)


# -- Windows ------------------------------------------------------------------------------------


def iss_sections() -> dict[str, list[str]]:
    """The script's sections, each a list of its lines (comments and blanks dropped)."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for raw in ISS.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        found = re.fullmatch(r"\[(\w+)\]", line)
        if found:
            current = found.group(1)
            assert current not in sections, f"[{current}] twice"
            sections[current] = []
        else:
            sections[current].append(line)
    return sections


def setup_keys() -> dict[str, str]:
    keys: dict[str, str] = {}
    for line in iss_sections()["Setup"]:
        key, sep, value = line.partition("=")
        assert sep, line
        assert key not in keys, f"{key} twice"
        keys[key.strip()] = value.strip()
    return keys


def entries(section: str) -> list[dict[str, str]]:
    """``Name: "x"; Filename: "y"`` lines as dicts (Inno's parameter syntax, quotes doubled)."""
    out = []
    for line in iss_sections()[section]:
        params: dict[str, str] = {}
        for match in re.finditer(r'(\w+):\s*("(?:[^"]|"")*"|[^;]*)\s*(?:;|$)', line):
            value = match.group(2).strip()
            if value.startswith('"'):
                value = value[1:-1].replace('""', '"')
            params[match.group(1)] = value
        out.append(params)
    return out


def test_the_iss_has_the_sections_an_installer_needs() -> None:
    sections = iss_sections()
    for name in ("Setup", "Tasks", "Files", "Icons", "Registry", "Run", "UninstallRun"):
        assert sections.get(name), f"no [{name}]"
    # The user's data is never deleted: nothing under the data folders is removed.
    assert "UninstallDelete" not in sections
    assert not re.search(r"\{(local|user)appdata\}", ISS.read_text(encoding="utf-8"))


def test_the_version_comes_from_a_define_and_is_required() -> None:
    preamble = "\n".join(iss_sections()[""])
    assert "#ifndef AppVersion" in preamble
    assert "#error" in preamble
    keys = setup_keys()
    assert keys["AppVersion"] == "{#AppVersion}"
    assert keys["VersionInfoVersion"] == "{#AppVersion}"
    assert keys["OutputBaseFilename"] == "Heatshare-{#AppVersion}-setup"


def test_the_setup_keys() -> None:
    keys = setup_keys()
    # {{ is a literal brace: the id reads {GUID}, fixed for every version.
    assert re.fullmatch(r"\{\{[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}\}", keys["AppId"])
    assert keys["AppName"] == "{#AppName}"
    assert '#define AppName "Heatshare"' in "\n".join(iss_sections()[""])
    assert keys["DefaultDirName"] == r"{autopf}\{#AppName}"
    assert keys["PrivilegesRequired"] == "lowest"
    assert keys["UninstallDisplayIcon"] == r"{app}\{#AppExe}"
    icon = (ISS.parent / keys["SetupIconFile"].replace("\\", "/")).resolve()
    assert icon == ROOT / "resources" / "icons" / "org.heatshare.Heatshare.ico"
    assert icon.read_bytes()[:4] == b"\x00\x00\x01\x00"  # an .ico's header
    assert (ISS.parent / keys["OutputDir"].replace("\\", "/")).resolve() == ROOT / "dist"


def test_tasks_shortcuts_and_files() -> None:
    tasks = {t["Name"]: t for t in entries("Tasks")}
    assert set(tasks) == {"desktopicon", "startatlogin"}
    assert tasks["desktopicon"].get("Flags") == "unchecked"  # a desktop icon is asked for
    icons = entries("Icons")
    start_menu = [i for i in icons if i["Name"].startswith("{group}")]
    desktop = [i for i in icons if i["Name"].startswith("{autodesktop}")]
    assert [i["Filename"] for i in start_menu] == [r"{app}\{#AppExe}"]
    assert [(i["Filename"], i["Tasks"]) for i in desktop] == [(r"{app}\{#AppExe}", "desktopicon")]
    files = entries("Files")
    bundle = files[0]
    assert bundle["Source"] == r"{#SourceDir}\*"
    assert {"recursesubdirs", "createallsubdirs"} <= set(bundle["Flags"].split())
    # The app starts its agent as heatshare-agent.exe beside itself (gui/bridge.py).
    assert {f.get("DestName") for f in files} >= {
        "heatshare-agent.exe",
        "heatshare-coordinator.exe",
    }
    assert '#define AppExe "heatshare.exe"' in "\n".join(iss_sections()[""])


def test_start_at_login_is_the_value_the_app_writes() -> None:
    (entry,) = entries("Registry")
    assert entry["Root"] == "HKCU"
    assert entry["Subkey"] == RUN_KEY
    assert entry["Tasks"] == "startatlogin"
    assert entry["Flags"] == "uninsdeletevalue"
    assert entry["ValueName"] == "{#AppName}"
    # The installer's value and the settings switch's, for a folder with a space in it:
    # the app then shows the switch on, and turning it off removes the same value.
    folder = r"C:\Users\Ann Smith\AppData\Local\Programs\Heatshare"
    written = entry["ValueData"].replace("{app}", folder).replace("{#AppExe}", "heatshare.exe")
    app = WindowsAutostart([rf"{folder}\heatshare.exe"], run_key=_NoRegistry())
    assert app.value_name == __app_name__
    assert written == app.command_line(start_hidden=True)
    assert written.endswith(START_HIDDEN)


class _NoRegistry:
    def get(self, name: str) -> str | None:
        raise AssertionError("not read")

    def set(self, name: str, value: str) -> None:
        raise AssertionError("not written")

    def delete(self, name: str) -> None:
        raise AssertionError("not deleted")


def test_the_app_is_stopped_before_its_files_are_removed() -> None:
    (stop,) = entries("UninstallRun")
    assert stop["Filename"] == r"{sys}\taskkill.exe"
    for exe in ("heatshare.exe", "heatshare-agent.exe", "heatshare-coordinator.exe"):
        assert f"/IM {exe}" in stop["Parameters"]
    assert "RunOnceId" in stop
    (launch,) = entries("Run")
    assert launch["Filename"] == r"{app}\{#AppExe}"
    assert {"postinstall", "skipifsilent", "nowait"} <= set(launch["Flags"].split())

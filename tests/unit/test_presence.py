"""Presence: battery, exclusive programs and games, against real processes and real psutil.

Programs are real processes started under chosen names (a copy of ``sleep``); games are those
processes reported as graphics processes by the fake NVML, as the real one would report them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import psutil
import pytest

from fakes.fake_pynvml import FakePynvml, load_recording
from heatshare.sensors import presence
from heatshare.sensors.presence import (
    GAME_MIN_MEMORY_BYTES,
    on_battery,
    program_key,
    running_exclusive,
    running_games,
)

GIB = 1024**3


class Spawn(Protocol):
    def __call__(self, name: str, *, detached: bool = False) -> int: ...


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``sleep`` under a chosen program name; its process id.

    ``detached``: not a descendant of this process (as a game the householder started is not a
    descendant of the agent): started through a shell that exits at once. Every process is ended
    after the test.
    """
    sleep = shutil.which("sleep")
    assert sleep is not None
    pids: list[int] = []

    def start(name: str, *, detached: bool = False) -> int:
        exe = tmp_path / name
        shutil.copy(sleep, exe)
        if detached:
            out = subprocess.run(
                ["sh", "-c", '"$0" 60 >/dev/null 2>&1 & echo $!', str(exe)],
                check=True,
                capture_output=True,
                text=True,
            )
            pid = int(out.stdout.strip())
        else:
            child = subprocess.Popen([str(exe), "60"])
            CHILDREN[child.pid] = child
            pid = child.pid
        pids.append(pid)
        # The kernel sets the new name at exec; wait until psutil sees it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).exe() == str(exe):
                    return pid
            except psutil.Error:
                pass
            time.sleep(0.01)
        raise AssertionError(f"{name} did not start")

    yield start
    for pid in pids:
        end(pid)


# Children of this process by id: ended through their Popen, which reaps them.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def end(pid: int) -> None:
    """Kill ``pid`` and wait until it is gone (reaped here, or by whoever adopted it)."""
    child = CHILDREN.pop(pid, None)
    if child is not None:
        child.kill()
        child.wait()
        return
    # Another's child stays a zombie until its adopter reaps it (a second or two here): as
    # good as gone, to the programs and to NVML.
    try:
        proc = psutil.Process(pid)
        proc.kill()
        deadline = time.monotonic() + 5
        while proc.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, f"process {pid} outlived its kill"
            time.sleep(0.005)
    except psutil.NoSuchProcess:
        pass


def test_battery_is_what_psutil_says_or_unknown() -> None:
    battery = psutil.sensors_battery()
    expected = (
        None if battery is None or battery.power_plugged is None else not battery.power_plugged
    )
    assert on_battery() is expected


def test_program_names_compare_without_case_and_exe() -> None:
    assert program_key(" Steam.EXE ") == "steam"
    assert program_key("steam") == "steam"
    assert program_key("blender.exe.exe") == "blender.exe"


def test_an_exclusive_program_is_found_while_it_runs(spawn: Spawn) -> None:
    assert running_exclusive(["HsFakeGame"]) == ()
    pid = spawn("hsfakegame")
    assert running_exclusive(["Blender", "HsFakeGame", "hsfakegame.exe"]) == ("HsFakeGame",)
    end(pid)
    assert running_exclusive(["HsFakeGame"]) == ()


def test_a_program_that_ended_but_is_not_yet_reaped_is_not_running(spawn: Spawn) -> None:
    pid = spawn("hsdeadgame", detached=True)
    assert running_exclusive(["hsdeadgame"]) == ("hsdeadgame",)
    end(pid)
    assert running_exclusive(["hsdeadgame"]) == ()


def test_a_windows_style_name_matches_either_way(spawn: Spawn) -> None:
    spawn("hsrender.exe")
    spawn("hseditor")
    assert running_exclusive(["HSRENDER", "HsEditor.exe", "absent"]) == ("HSRENDER", "HsEditor.exe")


def test_a_name_longer_than_the_kernels_fifteen_characters_is_found(spawn: Spawn) -> None:
    # Linux keeps 15 characters of a process's name; psutil reads the rest from its command line.
    spawn("heatshare-exclusive-long-name")
    assert running_exclusive(["heatshare-exclusive-long-name"]) == (
        "heatshare-exclusive-long-name",
    )
    assert running_exclusive(["heatshare-exclu"]) == ()  # a prefix is not the program


def test_no_names_reads_no_processes() -> None:
    assert running_exclusive([]) == ()
    assert running_exclusive(["  ", ".exe"]) == ()


# -- games on the GPU ---------------------------------------------------------------------------


def fake_nvml(gpus: int = 1) -> FakePynvml:
    rec = load_recording()
    rec["devices"] = [rec["devices"][0]] * gpus
    for tick in rec["ticks"]:
        tick["devices"] = [tick["devices"][0]] * gpus
    fake = FakePynvml(rec)
    fake.nvmlInit()
    return fake


def test_a_headless_card_has_no_games() -> None:
    assert running_games(fake_nvml()) == ()


def test_a_graphics_process_of_another_program_is_a_game(spawn: Spawn) -> None:
    game = spawn("hsracinggame", detached=True)
    nvml = fake_nvml(gpus=2)
    nvml.graphics_processes = {1: [{"pid": game, "usedGpuMemory": 2 * GIB}]}
    assert running_games(nvml) == ("hsracinggame",)
    assert nvml.calls["nvmlDeviceGetGraphicsRunningProcesses"] == 2  # every card is asked
    end(game)
    assert running_games(nvml) == ()  # gone: not a game any more


def test_the_agents_own_jobs_and_the_desktop_are_not_games(spawn: Spawn) -> None:
    job = spawn("hsrenderjob")  # a child of this process, as the agent's jobs are
    xorg = spawn("Xorg", detached=True)
    browser = spawn("firefox", detached=True)
    listed = spawn("hslistedjob", detached=True)
    small = spawn("hsvideoplayer", detached=True)
    nvml = fake_nvml()
    nvml.graphics_processes = {
        0: [
            {"pid": job, "usedGpuMemory": 4 * GIB},
            {"pid": xorg, "usedGpuMemory": 1 * GIB},
            {"pid": browser, "usedGpuMemory": 1 * GIB},
            {"pid": small, "usedGpuMemory": GAME_MIN_MEMORY_BYTES - 1},
        ]
    }
    assert running_games(nvml) == ()
    # ``ours`` covers jobs that do not descend from the agent.
    nvml.graphics_processes[0].append({"pid": listed, "usedGpuMemory": GIB})
    assert running_games(nvml, ours={listed}) == ()
    assert running_games(nvml) == ("hslistedjob",)


@pytest.mark.parametrize("name", ["SearchHost.exe", "steamwebhelper", "gnome-shell", "Code"])
def test_the_windows_shell_and_everyday_programs_are_not_games_even_where_memory_is_unknown(
    spawn: Spawn, name: str
) -> None:
    # Under Windows (WDDM) NVML lists the shell's helpers as graphics processes, memory unknown.
    pid = spawn(name, detached=True)
    nvml = fake_nvml()
    nvml.graphics_processes = {0: [{"pid": pid, "usedGpuMemory": None}]}
    assert running_games(nvml) == ()


def test_the_own_processes_are_this_one_and_its_children(spawn: Spawn) -> None:
    child = spawn("hschild")
    other = spawn("hsother", detached=True)
    own = presence._own_processes()
    assert psutil.Process().pid in own
    assert child in own
    assert other not in own


def test_memory_unknown_counts_as_a_game(spawn: Spawn) -> None:
    # Windows (WDDM) drivers do not say how much memory a process holds: pynvml gives None.
    game = spawn("hsstrategygame", detached=True)
    nvml = fake_nvml()
    nvml.graphics_processes = {0: [{"pid": game, "usedGpuMemory": None}]}
    assert running_games(nvml) == ("hsstrategygame",)


def test_one_program_on_two_cards_is_named_once(spawn: Spawn) -> None:
    game = spawn("hsbiggame", detached=True)
    nvml = fake_nvml(gpus=2)
    entry = {"pid": game, "usedGpuMemory": GIB}
    nvml.graphics_processes = {0: [entry], 1: [entry]}
    assert running_games(nvml) == ("hsbiggame",)


def test_a_card_that_will_not_say_is_skipped_and_the_others_still_count(spawn: Spawn) -> None:
    game = spawn("hsshooter", detached=True)
    nvml = fake_nvml(gpus=2)
    nvml.graphics_errors = {0: "NVMLError_NotSupported"}
    nvml.graphics_processes = {1: [{"pid": game, "usedGpuMemory": GIB}]}
    assert running_games(nvml) == ("hsshooter",)
    assert nvml.calls["nvmlDeviceGetGraphicsRunningProcesses_v2"] == 0  # it would say the same


def test_bindings_newer_than_the_driver_fall_back_to_v2(spawn: Spawn) -> None:
    game = spawn("hsplatformer", detached=True)
    nvml = fake_nvml()
    nvml.graphics_v2_only = True
    nvml.graphics_processes = {0: [{"pid": game, "usedGpuMemory": GIB}]}
    assert running_games(nvml) == ("hsplatformer",)
    assert nvml.calls["nvmlDeviceGetGraphicsRunningProcesses_v2"] == 1


def test_nvml_shut_down_finds_no_games() -> None:
    nvml = fake_nvml()
    nvml.nvmlShutdown()
    assert running_games(nvml) == ()

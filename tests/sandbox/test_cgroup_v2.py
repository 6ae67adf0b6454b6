"""The cgroup v2 job group, against a fake tree: which group it goes under, what it writes.

These machines run cgroup v1 for memory and pids, so the kernel's side of v2 is not
exercised here; the tree below mirrors what systemd delegates to a desktop user.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from heatshare.jobs.limits import CgroupV2
from heatshare.jobs.sandbox import Limits

OWN = "/user.slice/user-1000.slice/user@1000.service/app.slice/app-heatshare.scope"
LIMITS = Limits(
    memory_bytes=256 << 20, max_processes=48, disk_bytes=1 << 30, wall_time_s=60, cpu_cores=2
)


def _group(path: Path, handed_down: str, controllers: str = "cpu memory pids") -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.subtree_control").write_text(handed_down + "\n")
    (path / "cgroup.controllers").write_text(controllers + "\n")
    (path / "cgroup.procs").write_text("")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    mount = tmp_path / "cgroup"
    _group(mount, "cpu io memory pids")
    _group(mount / "user.slice", "cpu memory pids")
    _group(mount / "user.slice/user-1000.slice", "cpu memory pids")
    _group(mount / "user.slice/user-1000.slice/user@1000.service", "memory pids")
    _group(mount / "user.slice/user-1000.slice/user@1000.service/app.slice", "memory pids")
    _group(mount / OWN.lstrip("/"), "")  # holds the agent: hands nothing down
    return mount


def test_the_job_groups_go_under_the_nearest_group_that_hands_down_memory_and_pids(
    tree: Path,
) -> None:
    base = CgroupV2.base(tree, OWN)
    assert base == tree / "user.slice/user-1000.slice/user@1000.service/app.slice/heatshare-jobs"


def test_no_group_handing_down_memory_is_an_error(tmp_path: Path) -> None:
    mount = tmp_path / "cgroup"
    _group(mount, "cpu io")
    _group(mount / "agent.scope", "")
    with pytest.raises(OSError, match="hands down memory and pids"):
        CgroupV2.base(mount, "/agent.scope")


def test_a_job_group_gets_its_limits_and_goes_again(tree: Path) -> None:
    base = CgroupV2.base(tree, OWN)
    # What the kernel shows in a new group: the controllers its parent hands down.
    _group(base, "", controllers="memory pids")
    group = CgroupV2.create("job-1-1", LIMITS, base=base)
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"
    job = base / "job-1-1"
    assert (job / "memory.max").read_text() == str(256 << 20)
    # The job's 48, and the wrapper and its keeper (bubblewrap.py).
    assert (job / "pids.max").read_text() == "50"
    assert not (job / "cpu.max").exists()  # cpu is not handed down to this user
    group.add(1234)
    assert (job / "cgroup.procs").read_text() == "1234"
    (job / "pids.events").write_text("max 3\n")
    (job / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n")
    assert group.process_limit_hits() == 3
    assert group.oom_kills() == 1


def test_cpu_is_limited_where_it_is_handed_down(tree: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    _group(base, "", controllers="cpu memory pids")
    CgroupV2.create("job-1-2", LIMITS, base=base)
    assert (base / "job-1-2" / "cpu.max").read_text() == "200000 100000"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"


def test_a_group_without_memory_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base"
    _group(base, "", controllers="cpu pids")
    with pytest.raises(OSError, match="memory and pids"):
        CgroupV2.create("job-1-3", LIMITS, base=base)

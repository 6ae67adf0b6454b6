"""Benchmark: what the sandbox adds to the start of a job.

Times a trivial job from start to its result, N times each, interleaved so that the
machine's drift touches all alike:

* plain: ``subprocess.run(command)`` — what starting the command costs anyway;
* sandbox: ``BubblewrapSandbox().start(request).wait()`` — bubblewrap with every
  namespace, the system's binds, the cgroups (memory, pids, cpu) made and removed, the
  rlimits, the watch thread that reaps it;
* sandbox without cgroups: the rlimit fallback, to show what the cgroups cost;
* bare bwrap: ``subprocess.run`` of the job's bubblewrap command line, to show what
  bubblewrap and the kernel's namespaces cost by themselves.

Judged by: median(sandbox) - median(plain) <= 30 ms. The last line is one JSON object.

Run: ``.venv/bin/python bench/sandbox_start.py [--runs N] [--command true|python]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from heatshare.jobs.bubblewrap import BubblewrapSandbox
from heatshare.jobs.sandbox import Limits, Outcome, SandboxRequest

TARGET_MS = 30.0
# The programs the sandbox's PATH finds, so plain and sandboxed runs start the same binary.
JOB_PATH = "/usr/local/bin:/usr/bin:/bin"
COMMANDS = {"true": ["true"], "python": ["python3", "-c", "pass"]}
LIMITS = Limits(
    memory_bytes=512 << 20, max_processes=64, disk_bytes=256 << 20, wall_time_s=60, cpu_cores=1
)


def time_plain(command: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True)
    return (time.perf_counter() - t0) * 1000


def time_sandbox(sandbox: BubblewrapSandbox, request: SandboxRequest) -> float:
    t0 = time.perf_counter()
    result = sandbox.start(request).wait()
    elapsed = (time.perf_counter() - t0) * 1000
    assert result is not None
    assert result.outcome is Outcome.EXITED
    assert result.exit_code == 0, result
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--command", choices=sorted(COMMANDS), default="true")
    args = parser.parse_args()
    command = COMMANDS[args.command]
    program = shutil.which(command[0], path=JOB_PATH)
    if program is None:
        raise SystemExit(f"{command[0]} is not on {JOB_PATH}")
    command = [program, *command[1:]]
    sandbox = BubblewrapSandbox()
    fallback = BubblewrapSandbox(use_cgroups=False)
    problem = sandbox.problem()
    if problem is not None:
        raise SystemExit(problem)
    fallback.problem()
    with tempfile.TemporaryDirectory(prefix="hs-bench-") as tmp:
        slot = Path(tmp) / "job"
        slot.mkdir()
        request = SandboxRequest(
            slot=slot, command=command, limits=LIMITS, log_path=Path(tmp) / "job.log"
        )
        for _ in range(3):  # warm the page cache and bwrap's first start
            time_plain(command)
            time_sandbox(sandbox, request)
            time_sandbox(fallback, request)
        plain: list[float] = []
        boxed: list[float] = []
        boxed_no_cgroup: list[float] = []
        bare: list[float] = []
        bwrap = sandbox.bwrap_argv(request)
        for _ in range(args.runs):
            plain.append(time_plain(command))
            bare.append(time_plain(bwrap))
            boxed.append(time_sandbox(sandbox, request))
            boxed_no_cgroup.append(time_sandbox(fallback, request))
    figures = {
        "command": " ".join(command),
        "runs": args.runs,
        "plain_ms": round(statistics.median(plain), 2),
        "sandbox_ms": round(statistics.median(boxed), 2),
        "sandbox_no_cgroup_ms": round(statistics.median(boxed_no_cgroup), 2),
        "sandbox_p90_ms": round(statistics.quantiles(boxed, n=10)[-1], 2),
        "bare_bwrap_ms": round(statistics.median(bare), 2),
    }
    figures["added_ms"] = round(figures["sandbox_ms"] - figures["plain_ms"], 2)
    figures["added_no_cgroup_ms"] = round(figures["sandbox_no_cgroup_ms"] - figures["plain_ms"], 2)
    figures["target_ms"] = TARGET_MS
    figures["ok"] = figures["added_ms"] <= TARGET_MS
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {python}, {platform.release()}")
    print(f"plain subprocess ({figures['command']}): median {figures['plain_ms']:.1f} ms")
    print(
        f"sandbox:                  median {figures['sandbox_ms']:.1f} ms, "
        f"p90 {figures['sandbox_p90_ms']:.1f} ms"
    )
    print(f"sandbox without cgroups:  median {figures['sandbox_no_cgroup_ms']:.1f} ms")
    print(f"bare bwrap, same command line: median {figures['bare_bwrap_ms']:.1f} ms")
    print(f"added by the sandbox: {figures['added_ms']:.1f} ms (goal <= {TARGET_MS:g} ms)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

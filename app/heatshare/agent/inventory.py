"""What this machine offers the network: the inventory the agent enrols with.

Leases are matched against it (GPUs and their memory, CPU cores, memory, OS and architecture,
the sandbox), so every figure comes from the agent's own sensors or the OS; a figure nobody
can read is left out (``None``), never guessed.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import platform
import sys
from collections.abc import Sequence

import psutil

from heatshare.__about__ import __version__
from heatshare.domain.readings import GpuReading, HostReading
from heatshare.protocol.coordinator_api import GpuInventory, Inventory, SandboxKind

log = logging.getLogger(__name__)

# platform.machine() spells one architecture several ways; the network matches one spelling.
_ARCH = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}
# The CUDA driver library, by OS: present where the NVIDIA driver installed CUDA support.
_LIBCUDA = {"linux": ("libcuda.so.1", "libcuda.so"), "windows": ("nvcuda.dll",)}


def os_name() -> str:
    """``"linux"``, ``"windows"`` or ``"darwin"``."""
    return platform.system().lower() or sys.platform


def arch_name() -> str:
    """``"x86_64"``, ``"aarch64"``, …: the CPU architecture as the network names it."""
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine) or "unknown"


@functools.cache
def cuda_present() -> bool:
    """Whether the CUDA driver library loads here (once per process; the answer is kept).

    Loading it is the test a CUDA program makes first: an NVIDIA card whose driver lacks
    CUDA, or a container that hides the library, cannot run a CUDA job.
    """
    for name in _LIBCUDA.get(os_name(), ()):
        try:
            ctypes.CDLL(name)
        except OSError as exc:
            log.debug("%s does not load: %s", name, exc)
            continue
        log.info("CUDA driver library found (%s)", name)
        return True
    return False


def sandbox_kind(kind: str, problem: str | None) -> SandboxKind:
    """The sandbox the network may count on: none where the sandbox reports a problem."""
    if problem is not None:
        return SandboxKind.NONE
    try:
        return SandboxKind(kind)
    except ValueError:
        return SandboxKind.NONE


def build_inventory(
    *,
    hostname: str,
    host: HostReading | None,
    gpus: Sequence[GpuReading],
    sandbox: SandboxKind,
    cuda: bool,
) -> Inventory:
    """The inventory from one sensor snapshot (``host`` None: ask the OS directly).

    Args:
        hostname: the machine's name, as the agent reports it.
        host: the latest host reading, or None before the first sample.
        gpus: the GPUs NVML sees (their total memory where the card reports it).
        sandbox: the sandbox jobs would run in here.
        cuda: whether the CUDA driver library loads (see :func:`cuda_present`).
    """
    cores = (host.logical_cpus if host is not None else None) or psutil.cpu_count() or 1
    memory = host.mem_total_bytes if host is not None else None
    if memory is None:
        memory = int(psutil.virtual_memory().total)
    return Inventory(
        hostname=(hostname or "unknown")[:255],
        os=os_name()[:40],
        arch=arch_name()[:40],
        cpu_cores=max(1, min(cores, 4096)),
        memory_bytes=max(0, memory),
        gpus=[
            GpuInventory(name=g.name[:200], memory_bytes=g.mem_total_bytes, cuda=cuda)
            for g in gpus[:64]
        ],
        sandbox=sandbox,
        agent_version=__version__[:40],
    )


__all__ = ["arch_name", "build_inventory", "cuda_present", "os_name", "sandbox_kind"]

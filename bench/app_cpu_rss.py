"""Benchmark: the app's CPU with the window open and hidden in the tray; RSS with 24 h loaded.

* CPU: a real agent on a temp profile and the real app as a process, measured with psutil
  over ``--seconds`` each: once with the window open, once started hidden in the tray. The
  app runs on an Xvfb display with a real tray host (``trayer``) so that "hidden in the tray"
  is the real thing; without Xvfb/trayer it falls back to offscreen and skips the hidden case.
* RSS: in this process, the real window and chart panel with 24 h × 8 series of 1 s history
  loaded (86,400 points each, through the same HistoryResponse path as the agent's answer).

Judged by: CPU open <= 2 %, hidden <= 0.2 % (of one core), RSS <= 150 MiB.

Run: ``.venv/bin/python bench/app_cpu_rss.py [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agent import start_agent, stop

CPU_OPEN_PCT = 2.0
CPU_HIDDEN_PCT = 0.2
RSS_MIB = 150.0


def start_x() -> tuple[str, list[subprocess.Popen[bytes]]] | None:
    if not (shutil.which("Xvfb") and shutil.which("trayer")):
        return None
    display = f":{200 + os.getpid() % 500}"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    tray = subprocess.Popen(
        ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request"],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return display, [tray, xvfb]


def measure_cpu(profile: Path, env: dict[str, str], hidden: bool, seconds: float) -> float:
    args = [sys.executable, "-m", "heatshare.gui", "--profile-dir", str(profile)]
    if hidden:
        args.append("--start-hidden")
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        time.sleep(6.0)  # start-up, first history load and chart build are not the steady state
        p = psutil.Process(proc.pid)
        c0 = p.cpu_times()
        t0 = time.monotonic()
        time.sleep(seconds)
        c1 = p.cpu_times()
        wall = time.monotonic() - t0
        return 100.0 * ((c1.user - c0.user) + (c1.system - c0.system)) / wall
    finally:
        stop(proc)


def measure_rss(step: int) -> float:
    """RSS with 24 h of 8 series loaded at ``step`` seconds (1: raw; 60: the agent's choice)."""
    if "DISPLAY" not in os.environ:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from datetime import UTC, datetime

    import numpy as np
    from PySide6.QtWidgets import QApplication

    from heatshare.gui.bridge import HistoryResult
    from heatshare.gui.charts import ChartPanel, lines_for
    from heatshare.gui.window import MainWindow
    from heatshare.protocol.local_api import AgentStatus, HistoryResponse, SeriesData

    app = QApplication([])
    window = MainWindow()
    now = time.time()
    charts = ChartPanel(lambda *_: 1, clock=lambda: now)
    window.set_charts(charts)
    window.show()
    charts.set_active(True)
    charts.set_range(86_400)
    charts.set_gpus([0, 1])
    names = [ln.series for ln in lines_for([0, 1])]
    t = np.arange(now - 86_400, now, float(step))
    response = HistoryResponse(
        start=now - 86_400,
        end=now,
        resolution_s=step,
        series=[
            SeriesData(name=n, unit="", t=t.tolist(), mean=(60 + np.sin(t / 500)).tolist())
            for n in names
        ],
    )
    charts._pending = 1
    charts.load_history(HistoryResult(1, response))
    del response
    for _ in range(5):
        app.processEvents()  # the deferred heap trim after a big answer runs here
    window.set_status(
        AgentStatus.model_validate(
            {
                "protocol_version": 1,
                "agent_version": "bench",
                "hostname": "bench",
                "state": "heating",
                "sample_time": datetime.fromtimestamp(now, UTC),
                "heat_w": 300.0,
            }
        )
    )
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    window.grab()
    rss = psutil.Process().memory_info().rss / 2**20
    charts.stop()
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--rss-step",
        type=int,
        default=60,
        help="resolution of the 24 h history loaded for the RSS figure: 60 is what the "
        "agent serves for a 24 h range; 1 is the worst case of raw seconds",
    )
    parser.add_argument("--rss-only", action="store_true")
    args = parser.parse_args()
    print(
        f"machine: {platform.node()} {platform.machine()} {platform.python_version()}, "
        f"{psutil.cpu_count()} CPUs"
    )
    if args.rss_only:
        x = None
        step = args.rss_step
        rss = measure_rss(step)
        print(
            f"RSS with 24 h × 8 series at {step} s: {rss:.1f} MiB "
            f"(target <= {RSS_MIB:.0f} MiB: ratio {rss / RSS_MIB:.2f})"
        )
        return
    x = start_x()
    env = {**os.environ}
    if x is not None:
        env["DISPLAY"] = x[0]
        env.pop("QT_QPA_PLATFORM", None)
    else:
        env["QT_QPA_PLATFORM"] = "offscreen"
    try:
        with tempfile.TemporaryDirectory(prefix="hs-bench-cpu-") as tmp:
            profile = Path(tmp) / "profile"
            agent = start_agent(profile)
            try:
                open_pct = measure_cpu(profile, env, False, args.seconds)
                print(
                    f"CPU, window open ({args.seconds:.0f} s): {open_pct:.2f} % "
                    f"(target <= {CPU_OPEN_PCT} %: ratio {open_pct / CPU_OPEN_PCT:.2f})"
                )
                if x is not None:
                    hid = measure_cpu(profile, env, True, args.seconds)
                    print(
                        f"CPU, hidden in the tray ({args.seconds:.0f} s): {hid:.3f} % "
                        f"(target <= {CPU_HIDDEN_PCT} %: ratio {hid / CPU_HIDDEN_PCT:.2f})"
                    )
                else:
                    print("CPU, hidden in the tray: skipped (needs Xvfb and trayer)")
            finally:
                stop(agent)
    finally:
        if x is not None:
            for p in x[1]:
                stop(p)
    step = args.rss_step
    rss = measure_rss(step)
    print(
        f"RSS with 24 h × 8 series loaded at {step} s resolution: {rss:.1f} MiB "
        f"(target <= {RSS_MIB:.0f} MiB: ratio {rss / RSS_MIB:.2f})"
    )


if __name__ == "__main__":
    main()

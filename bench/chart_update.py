"""Benchmark: one chart update with 24 h × 8 series at 1 s resolution (86,400 points each).

Builds the real ChartPanel (2 GPUs: heat, CPU, 2 GPU powers; CPU and 2 GPU temperatures;
cumulative heat = 8 curves), loads a HistoryResponse of the agent's shape for 24 h at 1 s,
shows it at 1200 × 800, then times N updates: one status appended to every series and a
full repaint of the panel (``_repaint_if_dirty`` + ``grab()``, which renders every plot).
Offscreen platform unless DISPLAY is set. Judged by: p95 <= 10 ms.

Run: ``.venv/bin/python bench/chart_update.py [--updates 200]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import UTC, datetime

import numpy as np

TARGET_MS = 10.0
POINTS = 86_400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    if "DISPLAY" not in os.environ:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from heatshare.gui.bridge import HistoryResult
    from heatshare.gui.charts import ChartPanel, lines_for
    from heatshare.protocol.local_api import AgentStatus, HistoryResponse, SeriesData

    app = QApplication([])
    now = time.time()
    clock = [now]
    panel = ChartPanel(lambda *_: 1, clock=lambda: clock[0])
    panel.resize(1200, 800)
    panel.show()
    panel.set_active(True)
    panel.set_range(86_400)
    panel.set_gpus([0, 1])
    names = [ln.series for ln in lines_for([0, 1])]
    assert len(names) == 8
    t = np.arange(now - POINTS, now, 1.0)
    rng = np.random.default_rng(1)
    series = []
    for n in names:
        v = 60 + 20 * np.sin(t / 900) + rng.normal(0, 3, POINTS)
        if n == "heat.energy_kwh":
            v = np.cumsum(np.abs(v)) / 3_600_000
        series.append(SeriesData(name=n, unit="", t=t.tolist(), mean=v.tolist()))
    response = HistoryResponse(start=now - POINTS, end=now, resolution_s=1, series=series)
    panel._pending = 1
    t_load = time.perf_counter()
    panel.load_history(HistoryResult(1, response))
    panel.grab()
    load_ms = (time.perf_counter() - t_load) * 1000
    assert all(len(panel.buffers[n]) == POINTS for n in names)

    def status(ts: float) -> AgentStatus:
        return AgentStatus.model_validate(
            {
                "protocol_version": 1,
                "agent_version": "bench",
                "hostname": "bench",
                "state": "heating",
                "sample_time": datetime.fromtimestamp(ts, UTC),
                "heat_w": 300.0,
                "heat_today_kwh": 2.0 + ts / 1e9,
                "gpus": [
                    {"index": 0, "name": "a", "power_w": 150.0, "temp_c": 65.0},
                    {"index": 1, "name": "b", "power_w": 120.0, "temp_c": 61.0},
                ],
                "host": {"cpu_power_w": 30.0, "cpu_temp_c": 55.0},
            }
        )

    for i in range(5):  # warm-up
        clock[0] = now + i
        panel.append_status(status(clock[0]))
        panel._repaint_if_dirty()
        panel.grab()
    samples = []
    for i in range(args.updates):
        clock[0] = now + 10 + i
        s = status(clock[0])  # parsing is the bridge's work, on its thread: not timed
        t0 = time.perf_counter()
        panel.append_status(s)
        panel._repaint_if_dirty()
        panel.grab()
        samples.append((time.perf_counter() - t0) * 1000)

    panel.stop()
    p50 = statistics.median(samples)
    p95 = float(np.percentile(samples, 95))
    print(
        f"machine: {platform.node()} {platform.machine()} {platform.python_version()}, "
        f"platform {app.platformName()}"
    )
    print(f"24 h × 8 series × {POINTS} points: initial load + first paint {load_ms:.0f} ms")
    print(
        f"update (append 8 points + full repaint), {args.updates} runs: "
        f"p50 {p50:.2f} ms, p95 {p95:.2f} ms, max {max(samples):.2f} ms"
    )
    print(
        f"target p95 <= {TARGET_MS:.0f} ms: ratio {p95 / TARGET_MS:.2f} -> "
        f"{'PASS' if p95 <= TARGET_MS else 'FAIL'}"
    )


if __name__ == "__main__":
    main()

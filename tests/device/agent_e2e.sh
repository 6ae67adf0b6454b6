#!/bin/bash
# The real agent on a machine with an NVIDIA GPU: its status and history through the local
# API while the GPU idles and then works, and its CPU and memory over a minute.
# Run from the repository root; needs python3 with nvidia-ml-py, psutil, requests, pydantic,
# platformdirs (PyTorch, where present, makes the load). Files land in ${OUT:-device-out}.
set -u
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/app${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
P=$(mktemp -d)
nvidia-smi -L
python3 -m heatshare.agent run --profile-dir "$P" --listen 127.0.0.1:0 >"$OUT/agent.out" 2>&1 &
AGENT=$!
sleep 4
python3 -m heatshare.agent status --profile-dir "$P"
python3 - <<'PY' || echo "no PyTorch: no load"
import time
import torch
a = torch.randn(8192, 8192, device="cuda")
t = time.time()
while time.time() - t < 8:
    a @ a
    torch.cuda.synchronize()
PY
python3 -m heatshare.agent status --json --profile-dir "$P" | tee "$OUT/status.json"
echo
python3 -m heatshare.agent status --profile-dir "$P"
python3 - "$P" <<'PY'
import json, sys, time
from heatshare.protocol.client import AgentClient
from heatshare.protocol.discovery import Paths, read_runtime, read_token
paths = Paths.for_profile(sys.argv[1])
client = AgentClient(read_runtime(paths).base_url, read_token(paths))
now = time.time()
h = client.history(["heat.power_w", "gpu0.power_w", "gpu0.temp_c", "gpu0.util_pct"], now - 60, now)
for s in h.series:
    vals = [v for v in s.mean if v is not None]
    print(f"{s.name}: {len(vals)} points, min {min(vals):.1f}, max {max(vals):.1f} {s.unit}")
st = client.status()
g = st.gpus[0]
checks = {
    "gpu_seen": len(st.gpus) >= 1,
    "gpu_power_from_energy_counter": g.power_provenance == "energy_counter",
    "gpu_power_w": g.power_w,
    "gpu_temp_c": g.temp_c,
    "fan_none_when_not_supported": g.fan_pct is None,
    "heat_w": st.heat_w,
    "heat_provenance": st.heat_provenance,
    "heat_today_kwh": st.heat_today_kwh,
    "history_has_gpu_power": any(s.name == "gpu0.power_w" and s.t for s in h.series),
}
print("CHECKS " + json.dumps(checks, default=str))
PY
kill -TERM "$AGENT"; wait "$AGENT"; echo "agent exited $?"
python3 bench/agent_cpu.py --seconds ${CPU_SECONDS:-60} --poll

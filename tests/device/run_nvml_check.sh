#!/usr/bin/env bash
# The GPU machine's check, in one go (see README.md beside this file). Run from the repository
# root; writes into OUT (default ./device-out): the recording, the log, nvidia-smi's view.
set -uo pipefail
OUT=${OUT:-device-out}
mkdir -p "$OUT"
nvidia-smi -q -d POWER,TEMPERATURE,CLOCK,MEMORY >"$OUT/nvidia-smi.txt" 2>&1
PYTHONUNBUFFERED=1 PYTHONPATH=app python3 bench/nvml_check.py \
    --ticks "${TICKS:-12}" --load-after "${LOAD_AFTER:-4}" --record "$OUT/recording.json" \
    2>&1 | tee "$OUT/nvml_check.log"
rc=${PIPESTATUS[0]}
# The unit tests again, replaying what was just recorded, and reading the real card.
if [ -f "$OUT/recording.json" ]; then
    cp "$OUT/recording.json" tests/data/nvml/recording.json
    # -c /dev/null: the project's pytest settings name plugins (pytest-qt) a GPU box lacks.
    PYTHONPATH=app python3 -m pytest -q -p no:cacheprovider -c /dev/null --rootdir . -W error \
        tests/device tests/unit/test_sensors_nvml.py tests/unit/test_heat.py 2>&1 \
        | tee "$OUT/pytest.log"
    rc=$((rc | PIPESTATUS[0]))
fi
exit "$rc"

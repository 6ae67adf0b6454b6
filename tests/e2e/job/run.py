"""A small real job: counts STEPS steps of DELAY seconds, checkpointing each, then writes
its result. Restarted, it goes on from its checkpoint and says so in its log."""

import os
import pathlib
import sys
import time

steps, delay = int(sys.argv[1]), float(sys.argv[2])
size = int(sys.argv[3]) if len(sys.argv) > 3 else 0
checkpoint = pathlib.Path(os.environ["HEATSHARE_CHECKPOINT"]) / "step"
start = int(checkpoint.read_text()) if checkpoint.exists() else 0
print(f"job {os.environ['HEATSHARE_JOB_ID']} starts at step {start} of {steps}", flush=True)
for i in range(start, steps):
    time.sleep(delay)
    # Atomically: a job may be stopped at any instruction, and must find a whole checkpoint.
    checkpoint.with_name("step.tmp").write_text(str(i + 1))
    checkpoint.with_name("step.tmp").replace(checkpoint)
    with pathlib.Path(os.environ["HEATSHARE_PROGRESS"]).open("a") as f:
        f.write(f"{(i + 1) / steps:.3f} step {i + 1} of {steps}\n")
out = pathlib.Path(os.environ["HEATSHARE_OUTPUT"])
(out / "result.txt").write_text(f"steps={steps} total={sum(range(steps))}\n")
if size:
    # Bytes that do not compress, the same on every machine: a result that takes a while
    # to upload through a slow link.
    import hashlib

    block, chunks = b"heatshare", []
    for _ in range(size // 32 + 1):
        block = hashlib.sha256(block).digest()
        chunks.append(block)
    (out / "blob.bin").write_bytes(b"".join(chunks)[:size])
print("done", flush=True)

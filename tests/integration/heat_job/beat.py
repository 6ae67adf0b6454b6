"""A job for the heating tests: writes the time every 50 ms to /job/beat (a frozen job writes
nothing) and ends after SECONDS of run time. With CHECKPOINT_EVERY, it checkpoints that often
and keeps $HEATSHARE_CHECKPOINT_ETA saying how far the next checkpoint is. Each start appends
a line to /job/checkpoint/starts, so a restart shows."""

import os
import pathlib
import sys
import time

seconds = float(sys.argv[1])
every = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
checkpoint = pathlib.Path(os.environ["HEATSHARE_CHECKPOINT"])
with (checkpoint / "starts").open("a") as f:
    f.write(f"{time.time()!r}\n")
done = checkpoint / "ran"
ran = float(done.read_text()) if done.exists() else 0.0
eta = pathlib.Path(os.environ["HEATSHARE_CHECKPOINT_ETA"])
progress = pathlib.Path(os.environ["HEATSHARE_PROGRESS"])
beat = pathlib.Path("/job/beat")


def put(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


last = time.monotonic()
since_checkpoint = 0.0
while ran < seconds:
    time.sleep(0.05)
    now = time.monotonic()
    step = min(now - last, 0.2)  # a longer gap is a freeze, not work
    last = now
    ran += step
    since_checkpoint += step
    put(beat, repr(time.time()))
    if every:
        if since_checkpoint >= every:
            put(done, repr(ran))
            since_checkpoint = 0.0
        put(eta, f"{every - since_checkpoint:.2f}")
    with progress.open("a") as f:
        f.write(f"{ran / seconds:.3f} {ran:.1f} s\n")
(pathlib.Path(os.environ["HEATSHARE_OUTPUT"]) / "done.txt").write_text("done\n")

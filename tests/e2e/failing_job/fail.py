"""A real job that fails: says it started, works for SECONDS, then exits with code 3."""

import os
import pathlib
import sys
import time

seconds = float(sys.argv[1])
with pathlib.Path(os.environ["HEATSHARE_PROGRESS"]).open("a") as f:
    f.write("0.1 started\n")
print(f"job {os.environ['HEATSHARE_JOB_ID']} works for {seconds} s", flush=True)
time.sleep(seconds)
print("boom: the input tile is missing", flush=True)
sys.exit(3)

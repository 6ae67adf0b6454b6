"""Checks a large integer matrix product: computes C = A·B and verifies it with Freivalds.

A and B are ``n`` × ``n`` matrices of integers in ``[-range, range]`` drawn from a
SplitMix64 stream seeded with ``--seed``, so anyone can rebuild them from the seed alone.
C is computed block of rows by block of rows in exact integer arithmetic; then
Freivalds' check (``A·(B·r) == C·r`` for random 0/1 vectors ``r``) confirms it: a wrong
C survives one round with probability at most 1/2, so ``--rounds`` rounds miss an error
with probability at most 2**-rounds. A machine whose memory or CPU flips a bit fails it.

Runs on the host's own ``python3`` (standard library only) inside the Heatshare sandbox:

- ``$HEATSHARE_OUTPUT/report.json``: the product's checksum and the verification;
- finished row blocks are kept in ``$HEATSHARE_CHECKPOINT``, so a restarted job carries
  on from the last finished block (and Freivalds checks the resumed rows as well);
- ``$HEATSHARE_PROGRESS`` holds one line, ``<fraction> <message>``.

Exit status: 0 when the product verifies, 3 when it does not (the report says which
round failed), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from operator import mul
from pathlib import Path

Matrix = list[list[int]]

_MASK = 0xFFFFFFFFFFFFFFFF
#: Mixed into the seed of the Freivalds vectors so they are not the matrices' own stream.
_VECTOR_SALT = 0x5DEECE66D


def splitmix64(seed: int) -> Iterator[int]:
    """The SplitMix64 generator: 64-bit outputs, the same on every platform and Python."""
    x = seed & _MASK
    while True:
        x = (x + 0x9E3779B97F4A7C15) & _MASK
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        yield z ^ (z >> 31)


def matrices(n: int, seed: int, value_range: int) -> tuple[Matrix, Matrix]:
    stream = splitmix64(seed)
    span = 2 * value_range + 1
    a = [[next(stream) % span - value_range for _ in range(n)] for _ in range(n)]
    b = [[next(stream) % span - value_range for _ in range(n)] for _ in range(n)]
    return a, b


def multiply_rows(a_rows: Matrix, b_columns: list[tuple[int, ...]]) -> Matrix:
    return [[sum(map(mul, row, col)) for col in b_columns] for row in a_rows]


def mat_vec(m: Matrix, v: list[int]) -> list[int]:
    return [sum(map(mul, row, v)) for row in m]


def freivalds(a: Matrix, b: Matrix, c: Matrix, rounds: int, seed: int) -> int | None:
    """The first round (1-based) that shows ``c != a·b``; None when all rounds pass."""
    bits = splitmix64(seed ^ _VECTOR_SALT)
    n = len(c)
    for k in range(1, rounds + 1):
        r = [next(bits) & 1 for _ in range(n)]
        if mat_vec(a, mat_vec(b, r)) != mat_vec(c, r):
            return k
    return None


def row_text(row: list[int]) -> str:
    return ",".join(map(str, row)) + "\n"


def write_atomic(path: Path, data: bytes) -> None:
    """Readers (the runner, a restarted job) see the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def report(progress: Path, fraction: float, message: str) -> None:
    write_atomic(progress, f"{fraction:.4f} {message}\n".encode())


def load_block(path: Path, rows: int, n: int) -> Matrix | None:
    """A checkpointed block, or None when it is missing or not of the expected shape."""
    try:
        lines = path.read_text().splitlines()
        block = [[int(v) for v in line.split(",")] for line in lines]
    except (OSError, ValueError):
        return None
    if len(block) != rows or any(len(r) != n for r in block):
        return None
    return block


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Compute and verify a large integer matrix product.")
    p.add_argument("--n", type=int, default=700, help="rows and columns of each matrix")
    p.add_argument("--seed", type=int, default=1, help="seed of the matrices")
    p.add_argument("--range", dest="value_range", type=int, default=1000, help="entries' bound")
    p.add_argument("--block", type=int, default=32, help="rows per block (checkpoint unit)")
    p.add_argument("--rounds", type=int, default=20, help="Freivalds rounds")
    a = p.parse_args(argv)
    if not 1 <= a.n <= 4000:
        p.error("--n must be between 1 and 4000")
    if not 0 <= a.seed < 2**64:
        p.error("--seed must be between 0 and 2**64 - 1")
    if not 1 <= a.value_range <= 10**9:
        p.error("--range must be between 1 and 1000000000")
    if not 1 <= a.block <= 4000:
        p.error("--block must be between 1 and 4000")
    a.block = min(a.block, a.n)
    if not 1 <= a.rounds <= 64:
        p.error("--rounds must be between 1 and 64")
    return a


def main(argv: list[str]) -> int:
    a = parse(argv)
    out_dir = Path(os.environ.get("HEATSHARE_OUTPUT", "out"))
    ckpt_dir = Path(os.environ.get("HEATSHARE_CHECKPOINT", "checkpoint"))
    progress = Path(os.environ.get("HEATSHARE_PROGRESS", ".progress"))
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    params = {"n": a.n, "seed": a.seed, "range": a.value_range, "block": a.block}
    meta = ckpt_dir / "matrix.json"
    meta_bytes = json.dumps(params, sort_keys=True).encode()
    if not meta.exists() or meta.read_bytes() != meta_bytes:
        for old in ckpt_dir.glob("block-*.txt"):
            old.unlink()
        write_atomic(meta, meta_bytes)

    a_mat, b_mat = matrices(a.n, a.seed, a.value_range)
    # No strict=: the host's python3 may predate 3.10, and the rows are equal by construction.
    b_columns = list(zip(*b_mat))  # noqa: B905
    c_mat: Matrix = []
    resumed = 0
    for first in range(0, a.n, a.block):
        count = min(a.block, a.n - first)
        saved = ckpt_dir / f"block-{first:05d}.txt"
        block = load_block(saved, count, a.n) if saved.exists() else None
        if block is not None:
            resumed += count
        else:
            block = multiply_rows(a_mat[first : first + count], b_columns)
            write_atomic(saved, "".join(map(row_text, block)).encode())
            done = first + count
            report(progress, 0.9 * done / a.n, f"rows {done} of {a.n} multiplied")
        c_mat += block

    report(progress, 0.9, f"verifying with {a.rounds} Freivalds rounds")
    failed_round = freivalds(a_mat, b_mat, c_mat, a.rounds, a.seed)
    checksum = hashlib.sha256()
    for row in c_mat:
        checksum.update(row_text(row).encode())
    result = {
        "n": a.n,
        "seed": a.seed,
        "range": a.value_range,
        "product_sha256": checksum.hexdigest(),
        "product_trace": sum(c_mat[i][i] for i in range(a.n)),
        "freivalds_rounds": a.rounds,
        "freivalds_failed_round": failed_round,
        "false_positive_bound": f"2^-{a.rounds}",
        "verified": failed_round is None,
    }
    write_atomic(
        out_dir / "report.json", (json.dumps(result, sort_keys=True, indent=1) + "\n").encode()
    )
    elapsed = time.monotonic() - started
    if failed_round is not None:
        report(progress, 1.0, f"product WRONG: Freivalds round {failed_round} failed")
        sys.stderr.write(
            f"matrix: the product of the {a.n}x{a.n} matrices of seed {a.seed} is wrong: "
            f"Freivalds round {failed_round} failed ({resumed} rows came from a checkpoint)\n"
        )
        return 3
    report(progress, 1.0, f"{a.n}x{a.n} product verified")
    sys.stdout.write(
        f"matrix: {a.n}x{a.n} product of seed {a.seed} verified by {a.rounds} Freivalds rounds, "
        f"{resumed} rows from a checkpoint, {elapsed:.1f} s\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

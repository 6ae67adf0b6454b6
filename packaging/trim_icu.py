"""Leave out of Qt's ICU data what Qt never asks ICU for in this app (Linux bundles).

PySide6's Linux wheels carry ICU's whole data library (``libicudata.so.73``, 31 MiB), and
QtCore links it. Qt keeps its own locale data (CLDR, compiled in), so of ICU's data it reads
collation (``QCollator``, also behind the file dialog's sorting: kept), case mapping,
normalisation and IDNA (the root items: kept), time-zone display names and legacy text
encodings (``QTimeZone::displayName``, ``QStringDecoder("Shift_JIS")``: the app uses neither).
Left out: break-iterator rules and dictionaries (Qt breaks text itself), unit, currency,
language, region and time-zone display names, transliteration, spelled-out numbers, and the
legacy encodings' conversion tables.

The data is taken from the library's ``.rodata`` (one symbol, ``icudt<N>_dat``), trimmed with
ICU's ``icupkg``, and made into a library again with ``genccode``, ``as`` and ``ld``, under
the same soname, so QtCore loads it as before. Usage: ``python packaging/trim_icu.py LIB``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOOLS = ("objcopy", "nm", "icupkg", "genccode", "as", "ld")
# Item names inside the package (``icupkg -l``), as regular expressions.
LEAVE_OUT = re.compile(r"^(brkitr|unit|curr|lang|region|translit|rbnf|zone)/|\.cnv$")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def items(dat: Path) -> list[str]:
    """The items of an ICU data package."""
    return [line.strip() for line in _run("icupkg", "-l", str(dat)).splitlines() if line.strip()]


def trim(lib: Path) -> tuple[int, int]:
    """Replace ``lib`` (an ``libicudata.so.N``) by its trimmed copy; the sizes before and after."""
    before = lib.stat().st_size
    symbols = re.findall(r"\bR (icudt(\d+)_dat)$", _run("nm", "-D", str(lib)), re.M)
    if len(symbols) != 1:
        raise RuntimeError(f"{lib} does not hold one ICU data symbol: {symbols}")
    _symbol, version = symbols[0]
    entry = f"icudt{version}"
    with tempfile.TemporaryDirectory(prefix="heatshare-icu-") as tmp:
        work = Path(tmp)
        dat = work / f"{entry}l.dat"  # "l": little-endian, ICU's name for it
        _run("objcopy", "-O", "binary", "--only-section=.rodata", str(lib), str(dat))
        names = items(dat)
        drop = [name for name in names if LEAVE_OUT.search(name)]
        if not drop or len(drop) == len(names):
            raise RuntimeError(f"unexpected ICU data in {lib}: {len(names)} items")
        (work / "drop.txt").write_text("\n".join(drop) + "\n")
        _run("icupkg", "-r", "drop.txt", dat.name, cwd=work)
        _run("genccode", "-q", "-a", "gcc", "-e", entry, dat.name, cwd=work)
        source = work / f"{entry}l_dat.S"
        # genccode's output is meant for the C preprocessor; `as` alone would read the
        # hidden-symbol line as an instruction and hide the very symbol QtCore needs.
        text = re.sub(r"#ifdef U_HIDE_DATA_SYMBOL\n.*?#endif\n", "", source.read_text(), flags=re.S)
        source.write_text(text)
        _run("as", "-o", "data.o", source.name, cwd=work)
        out = work / lib.name
        _run("ld", "-shared", "-soname", lib.name, "-o", str(out), "data.o", cwd=work)
        if f"R {entry}_dat" not in _run("nm", "-D", str(out)):
            raise RuntimeError(f"the trimmed {lib.name} does not export {entry}_dat")
        shutil.copyfile(out, lib)
    return before, lib.stat().st_size


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: trim_icu.py LIBICUDATA\n")
        return 2
    before, after = trim(Path(argv[0]))
    sys.stdout.write(f"{argv[0]}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

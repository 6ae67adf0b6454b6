"""ICU's data for the Linux bundle, trimmed by ``packaging/trim_icu.py`` and loaded by Qt.

The venv's own PySide6 is linked (hard links: no copy) into a temporary folder with the
trimmed library in place of the whole one, and a child Python imports Qt from there: what
the app relies on (collation, case mapping, IDNA) answers as with all of ICU's data, and what
was left out (time-zone display names, legacy encodings) is gone, as docs/benchmarks.md says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "packaging"))
import trim_icu  # noqa: E402 (the packaging folder is not a package)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or bool(trim_icu.missing_tools()),
    reason=f"Linux with {', '.join(trim_icu.TOOLS)} (scripts/system-deps.sh test)",
)

PROBE = r"""
import functools, json
from PySide6.QtCore import QCollator, QLocale, QStringDecoder, QTimeZone, QUrl
words = ["Äpfel", "apple", "Zebra", "öl", "ober", "ısı", "Istanbul", "çay"]
print(json.dumps({
    "sorted": {loc: sorted(words, key=functools.cmp_to_key(QCollator(QLocale(loc)).compare))
               for loc in ("en_GB", "sv_SE", "tr_TR")},
    "case": [QLocale("tr_TR").toUpper("ısı istanbul"), QLocale("de_DE").toUpper("straße")],
    "idna": QUrl.fromUserInput("http://bücher.example/").toEncoded().data().decode(),
    "zone": QTimeZone(b"Europe/London").displayName(
        QTimeZone.TimeType.StandardTime, QTimeZone.NameType.LongName, QLocale("en_GB")),
    "shift_jis": QStringDecoder("Shift_JIS").isValid(),
}))
"""


def probe(site: Path | None) -> dict[str, object]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=60,
        check=True,
    )  # fmt: skip
    answer = json.loads(done.stdout)
    assert isinstance(answer, dict)
    return answer


def test_qt_reads_the_trimmed_data_as_documented(tmp_path: Path) -> None:
    import PySide6

    package = Path(PySide6.__file__).parent
    (lib,) = (p for p in (package / "Qt" / "lib").glob("libicudata.so.*") if not p.is_symlink())
    site = tmp_path / "site"
    site.mkdir()
    subprocess.run(["cp", "-al", str(package), str(site / "PySide6")], check=True, timeout=60)
    trimmed = site / "PySide6" / "Qt" / "lib" / lib.name
    trimmed.unlink()  # a hard link to the venv's file: never write through it
    trimmed.write_bytes(lib.read_bytes())

    before, after = trim_icu.trim(trimmed)
    assert (before, lib.stat().st_size) == (lib.stat().st_size, before)  # the venv's untouched
    assert after < before / 3, (before, after)

    whole, trim = probe(None), probe(site)
    for kept in ("sorted", "case", "idna"):
        assert trim[kept] == whole[kept], kept
    assert whole["sorted"]["sv_SE"] != whole["sorted"]["en_GB"]  # the tailoring is really used
    assert whole["zone"] == "Greenwich Mean Time" and whole["shift_jis"] is True
    assert (trim["zone"], trim["shift_jis"]) == ("", False)  # left out, as documented

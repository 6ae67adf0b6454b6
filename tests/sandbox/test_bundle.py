"""Bundles are unpacked without trusting them; result archives are byte-for-byte repeatable."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from heatshare.jobs.bundle import (
    BundleError,
    pack_folder,
    pack_outputs,
    read_archive_member,
    sha256_file,
    unpack_bundle,
)


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_an_ordinary_bundle_unpacks_with_modes_and_nested_folders(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "b.tar.gz",
        [
            _file("run.py", b"print(1)\n"),
            _file("bin/tool", b"#!/bin/sh\n", 0o4755),
            _file("./data/a/b.txt", b"hello"),
            _link("data/alias", "a/b.txt"),
        ],
    )
    dest = tmp_path / "dest"
    unpack_bundle(archive, dest, max_bytes=1000)
    assert (dest / "run.py").read_bytes() == b"print(1)\n"
    assert (dest / "data/alias").read_text() == "hello"
    # No setuid bit survives; an executable stays executable.
    assert (dest / "bin/tool").stat().st_mode & 0o7777 == 0o755
    assert (dest / "run.py").stat().st_mode & 0o7777 == 0o644


@pytest.mark.parametrize(
    ("member", "words"),
    [
        (_file("/etc/evil"), "absolute path"),
        (_file("../evil"), "climbs out"),
        (_file("a/../../evil"), "climbs out"),
        (_link("escape", "/etc/passwd"), "absolute path"),
        (_link("escape", "../../outside"), "leads out"),
        (_link("hard", "/etc/passwd", tarfile.LNKTYPE), "absolute path"),
        (_link("hard", "../x", tarfile.LNKTYPE), "climbs out"),
        (_link("hard", "nothing-before", tarfile.LNKTYPE), "no earlier file"),
        (_special("dev", tarfile.CHRTYPE), "device, fifo"),
        (_special("blk", tarfile.BLKTYPE), "device, fifo"),
        (_special("fifo", tarfile.FIFOTYPE), "device, fifo"),
    ],
)
def test_a_hostile_member_is_refused_and_nothing_lands_outside(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], words: str
) -> None:
    archive = _tar(tmp_path / "b.tar.gz", [_file("ok.txt"), member])
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(BundleError, match=words):
        unpack_bundle(archive, dest, max_bytes=1000)
    assert not (tmp_path / "deep" / "evil").exists()
    assert not (tmp_path / "evil").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar.gz", "deep"]


def test_a_link_chain_that_resolves_out_is_refused(tmp_path: Path) -> None:
    # Each link on its own looks inside; together they climb above the destination.
    archive = _tar(
        tmp_path / "b.tar.gz",
        [_link("a/b/x", "../.."), _link("a/b/y", "x/..")],
    )
    with pytest.raises(BundleError, match="leads out"):
        unpack_bundle(archive, tmp_path / "dest", max_bytes=1000)


def test_writing_through_a_link_to_outside_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    archive = _tar(
        tmp_path / "b.tar.gz",
        [_link("d", "x/../.."), _file("d/outside/planted")],
    )
    with pytest.raises(BundleError):
        unpack_bundle(archive, tmp_path / "dest", max_bytes=1000)
    assert list((tmp_path / "outside").iterdir()) == []


def test_a_name_given_twice_is_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "b.tar.gz", [_file("a", b"1"), _file("a", b"2")])
    with pytest.raises(BundleError, match="twice"):
        unpack_bundle(archive, tmp_path / "dest", max_bytes=1000)


def test_a_huge_declared_size_is_refused_before_its_content_is_read(tmp_path: Path) -> None:
    # A header that claims 1 TiB, followed by nothing: refused from the header alone.
    info = tarfile.TarInfo("bomb")
    info.size = 1 << 40
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(gzip.compress(header + b"\0" * 1024))
    with pytest.raises(BundleError, match="more than 1000000 bytes"):
        unpack_bundle(archive, tmp_path / "dest", max_bytes=1_000_000)
    assert _listing(tmp_path / "dest") == []


def test_a_compression_bomb_stops_at_the_byte_limit(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "b.tar.gz", [_file("zeros", b"\0" * (4 << 20))])
    assert archive.stat().st_size < 64 * 1024
    with pytest.raises(BundleError, match="more than 1048576 bytes"):
        unpack_bundle(archive, tmp_path / "dest", max_bytes=1 << 20)


def test_too_many_files_are_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "b.tar.gz", [_file(f"f{i}") for i in range(11)])
    with pytest.raises(BundleError, match="more than 10 files"):
        unpack_bundle(archive, tmp_path / "dest", max_bytes=1000, max_files=10)


@pytest.mark.parametrize("content", [b"", b"not a gzip stream", gzip.compress(b"not a tar")])
def test_a_damaged_archive_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(content)
    with pytest.raises(BundleError, match=r"not a readable tar\.gz"):
        unpack_bundle(archive, tmp_path / "dest", max_bytes=1000)


def _outputs(root: Path, order: list[str]) -> Path:
    root.mkdir()
    for name in order:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {name}")
    if "run.sh" in order:
        (root / "run.sh").chmod(0o775)
    return root


def test_identical_outputs_give_byte_identical_archives(tmp_path: Path) -> None:
    names = ["tiles/t2.png", "run.sh", "tiles/t1.png", "summary.json", "z/a.txt"]
    a = _outputs(tmp_path / "a", names)
    b = _outputs(tmp_path / "b", list(reversed(names)))
    # Different times, owners' umask and creation order: none of it may show.
    os.utime(b / "summary.json", (1_000_000, 1_000_000))
    (b / "tiles/t1.png").chmod(0o600)
    sha_a, size_a = pack_outputs(a, tmp_path / "a.tar.gz")
    sha_b, size_b = pack_outputs(b, tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    assert (sha_a, size_a) == (sha_b, size_b)
    assert sha_a == hashlib.sha256((tmp_path / "a.tar.gz").read_bytes()).hexdigest()
    assert sha256_file(tmp_path / "a.tar.gz") == sha_a
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        "run.sh",
        "summary.json",
        "tiles",
        "tiles/t1.png",
        "tiles/t2.png",
        "z",
        "z/a.txt",
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.name: m.mode for m in members}["run.sh"] == 0o755
    assert {m.name: m.mode for m in members}["tiles/t1.png"] == 0o644
    # The gzip header carries no time and no file name.
    raw = (tmp_path / "a.tar.gz").read_bytes()
    assert raw[4:8] == b"\0\0\0\0"
    assert raw[3] & 0x08 == 0


def test_different_outputs_give_different_archives(tmp_path: Path) -> None:
    a = _outputs(tmp_path / "a", ["x.txt", "run.sh"])
    b = _outputs(tmp_path / "b", ["x.txt", "run.sh"])
    (b / "x.txt").write_text("something else")
    assert pack_outputs(a, tmp_path / "a.tar.gz")[0] != pack_outputs(b, tmp_path / "b.tar.gz")[0]


def test_a_packed_folder_unpacks_to_the_same_files(tmp_path: Path) -> None:
    source = _outputs(tmp_path / "src", ["render.py", "lib/util.py", "run.sh"])
    pack_folder(source, tmp_path / "bundle.tar.gz")
    unpack_bundle(tmp_path / "bundle.tar.gz", tmp_path / "dest", max_bytes=10_000)
    assert _listing(tmp_path / "dest") == _listing(source)
    assert (tmp_path / "dest/lib/util.py").read_text() == "content of lib/util.py"


def test_one_member_is_read_within_its_limit(tmp_path: Path) -> None:
    source = _outputs(tmp_path / "out", ["tile-1.png", "notes/readme.txt"])
    pack_outputs(source, tmp_path / "r.tar.gz")
    archive = tmp_path / "r.tar.gz"
    assert read_archive_member(archive, "notes/readme.txt", 100) == b"content of notes/readme.txt"
    assert read_archive_member(archive, "./tile-1.png", 100) == b"content of tile-1.png"
    with pytest.raises(BundleError, match="larger than 5 bytes"):
        read_archive_member(archive, "tile-1.png", 5)
    with pytest.raises(BundleError, match="no file named"):
        read_archive_member(archive, "absent.png", 100)
    with pytest.raises(BundleError, match="not a regular file"):
        read_archive_member(archive, "notes", 100)
    with pytest.raises(BundleError, match="climbs out"):
        read_archive_member(archive, "../etc/passwd", 100)


def test_large_outputs_cross_stored_blocks_and_read_back(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    data = os.urandom(300_000)  # several 64 KiB stored blocks
    (out / "big.bin").write_bytes(data)
    _, size = pack_outputs(out, tmp_path / "r.tar.gz")
    assert size > len(data)  # stored, not compressed
    assert read_archive_member(tmp_path / "r.tar.gz", "big.bin", 1 << 20) == data
    assert gzip.decompress((tmp_path / "r.tar.gz").read_bytes())[512 : 512 + 16] == data[:16]


def test_result_archive_bytes_do_not_depend_on_zlib(tmp_path: Path) -> None:
    # A fixed folder's archive has fixed bytes: stored blocks, no compressor involved.
    # If this value changes, honest machines on different versions disagree.
    out = tmp_path / "out"
    (out / "tiles").mkdir(parents=True)
    (out / "tiles" / "t0.txt").write_text("tile zero\n")
    (out / "summary.json").write_text('{"tiles": 1}\n')
    sha, size = pack_outputs(out, tmp_path / "r.tar.gz")
    assert (sha, size) == (GOLDEN_SHA256, GOLDEN_SIZE)


GOLDEN_SHA256 = "c656cfbf38d5fe1f89c438d96636bca7438cbe8a6b20804075f99794e3487558"
GOLDEN_SIZE = 10263

"""Job bundles and result archives: tar.gz, unpacked safely, packed deterministically.

A bundle comes from a stranger on the network, so unpacking trusts nothing in it: no
absolute names, no "..", no links that lead out of the destination, no devices or fifos,
a cap on the number of files and on their bytes (declared and actually written), and no
write anywhere but under the destination.

A result archive is packed so that two honest machines with the same outputs produce the
same bytes (sorted names, mtime 0, owner 0 without names, modes 0644/0755, gzip header
without time or file name): the coordinator compares replicated results by sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import struct
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

_CHUNK = 1 << 16


class BundleError(Exception):
    """A bundle or archive that cannot be used; the message is a sentence for the log."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _member_path(name: str) -> PurePosixPath:
    if not name or "\x00" in name:
        raise BundleError("The bundle holds a member without a usable name.")
    if name.startswith("/"):
        raise BundleError(
            f"The bundle holds an absolute path ({name!r}); only relative paths are allowed."
        )
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        raise BundleError(f"The bundle holds a path that climbs out of its folder ({name!r}).")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class _Unpacker:
    """One bundle's unpacking: the limits so far and the links to check at the end."""

    def __init__(self, root: Path, max_bytes: int, max_files: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.seen: dict[str, tarfile.TarInfo] = {}
        self.links: list[Path] = []
        self.declared = 0
        self.written = 0

    def _admit(self, member: tarfile.TarInfo) -> tuple[str, Path]:
        """Checks the member's name and the limits; returns its key and where it goes."""
        if len(self.seen) >= self.max_files:
            raise BundleError(f"The bundle holds more than {self.max_files} files.")
        key = str(_member_path(member.name))
        earlier = self.seen.get(key)
        if earlier is not None and not (member.isdir() and earlier.isdir()):
            raise BundleError(f"The bundle names {key!r} twice.")
        self.seen[key] = member
        if member.isfile():
            self.declared += member.size
            if self.declared > self.max_bytes:
                raise BundleError(
                    f"The bundle unpacks to more than {self.max_bytes} bytes, its limit."
                )
        target = self.root / key
        if key != "." and not _inside(target.parent.resolve(), self.root):
            raise BundleError(f"The bundle writes {key!r} through a link out of its folder.")
        # Archives often leave out the folder entries above their files.
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        return key, target

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        key, target = self._admit(member)
        if member.isdir():
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            if target.is_symlink() or not target.is_dir():
                raise BundleError(f"The bundle names {key!r} as a folder and as something else.")
        elif member.isfile():
            source = tar.extractfile(member)
            if source is None:
                raise BundleError(f"The bundle's member {key!r} cannot be read.")
            with source:
                self._write(source, target, 0o755 if member.mode & 0o111 else 0o644)
        elif member.issym():
            if member.linkname.startswith("/"):
                raise BundleError(f"The bundle holds a link to an absolute path ({key!r}).")
            target.symlink_to(member.linkname)
            self.links.append(target)
        elif member.islnk():
            # A hard link becomes a copy of the earlier member it names.
            source_key = str(_member_path(member.linkname))
            linked = self.seen.get(source_key)
            source_path = self.root / source_key
            if linked is None or not linked.isfile() or source_path.is_symlink():
                raise BundleError(f"The bundle holds a hard link ({key!r}) to no earlier file.")
            with source_path.open("rb") as copy_from:
                self._write(copy_from, target, source_path.stat().st_mode & 0o755)
        else:
            raise BundleError(f"The bundle holds a device, fifo or other special file ({key!r}).")

    def _write(self, source: IO[bytes], target: Path, mode: int) -> None:
        # O_EXCL and O_NOFOLLOW: never write through a link, never over an earlier member.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(_CHUNK):
                self.written += len(chunk)
                if self.written > self.max_bytes:
                    raise BundleError(
                        f"The bundle unpacks to more than {self.max_bytes} bytes, its limit."
                    )
                out.write(chunk)

    def check_links(self) -> None:
        # Checked once everything exists: a link's real target can depend on links made later.
        for link in self.links:
            if not _inside(link.resolve(), self.root):
                name = link.relative_to(self.root)
                raise BundleError(f"The bundle holds a link that leads out of its folder ({name}).")


def unpack_bundle(archive: Path, dest: Path, *, max_bytes: int, max_files: int = 10000) -> None:
    """Unpacks a tar.gz bundle into ``dest`` (created if absent, expected empty).

    Raises:
        BundleError: the archive is damaged or breaks a rule; nothing was written outside
            ``dest``, though ``dest`` may hold part of the bundle (the caller removes it).
    """
    dest.mkdir(parents=True, exist_ok=True)
    unpacker = _Unpacker(dest.resolve(), max_bytes, max_files)
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            # Iterating reads one header at a time, so each limit is checked before the
            # member's content is read or skipped: a huge declared size costs nothing.
            for member in tar:
                unpacker.member(tar, member)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise BundleError(f"The bundle is not a readable tar.gz archive ({exc}).") from exc
    except OSError as exc:
        raise BundleError(f"The bundle could not be unpacked ({exc}).") from exc
    unpacker.check_links()


def _entries(folder: Path) -> list[tuple[str, str]]:
    """(archive name, host path) of every entry under ``folder``, in sorted order."""
    found: list[tuple[str, str]] = []
    base = os.fspath(folder)
    for current, dirs, files in os.walk(base):
        dirs.sort()
        rel_dir = os.path.relpath(current, base)
        for name in sorted([*dirs, *files]):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            found.append((rel, f"{current}/{name}"))
    found.sort(key=lambda entry: entry[0].encode("utf-8", "surrogateescape"))
    return found


class _StoredGzip(io.RawIOBase):
    """A gzip stream of stored (uncompressed) deflate blocks, written by hand.

    Every zlib build compresses in its own way (zlib, zlib-ng, a distribution's patches),
    so compressed bytes differ between honest machines; stored blocks of a fixed size do
    not. The header has no time, no name, and "unknown" as its operating system.
    """

    _BLOCK = 65535  # the largest stored block deflate allows

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._buffer = bytearray()
        self._crc = 0
        self._size = 0
        raw.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def writable(self) -> bool:
        return True

    def tell(self) -> int:  # tarfile asks where it starts
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = bytes(data)
        self._crc = zlib.crc32(view, self._crc)
        self._size += len(view)
        self._buffer += view
        while len(self._buffer) > self._BLOCK:
            self._block(bytes(self._buffer[: self._BLOCK]), final=False)
            del self._buffer[: self._BLOCK]
        return len(view)

    def _block(self, data: bytes, *, final: bool) -> None:
        length = len(data)
        self._raw.write(struct.pack("<BHH", 1 if final else 0, length, length ^ 0xFFFF) + data)

    def close(self) -> None:
        if not self.closed:
            self._block(bytes(self._buffer), final=True)
            self._raw.write(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        super().close()


def _add_entries(tar: tarfile.TarFile, folder: Path) -> None:
    for rel, name in _entries(folder):
        path = Path(name)
        st = path.lstat()
        info = tarfile.TarInfo(rel)
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        if stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.fspath(path.readlink())
            info.mode = 0o777
            tar.addfile(info)
        elif stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        elif stat.S_ISREG(st.st_mode):
            info.mode = 0o755 if st.st_mode & 0o111 else 0o644
            with path.open("rb") as f:
                info.size = os.fstat(f.fileno()).st_size
                tar.addfile(info, f)


def pack_folder(folder: Path, archive: Path) -> tuple[str, int]:
    """Packs ``folder``'s contents into a compressed tar.gz (a bundle); returns (sha256, size).

    Sorted names, mtime 0, owner 0 without names, modes 0644/0755, a gzip header without
    time or name: the same folder gives the same bytes on this machine (other zlib builds
    may compress differently; see :func:`pack_outputs`). Regular files, folders and
    symbolic links are packed; fifos and sockets are left out (they hold no data). The
    archive may not lie inside ``folder``.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add_entries(tar, folder)
    return sha256_file(archive), archive.stat().st_size


def pack_outputs(out_dir: Path, archive: Path) -> tuple[str, int]:
    """The result archive of a job's ``/job/out``; returns (sha256, size).

    As :func:`pack_folder`, but the gzip stream is stored, not compressed, so that two
    honest machines give byte-identical archives whatever zlib they have: replication
    compares results by sha256. (Outputs worth compressing are best compressed by the job.)
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    with (
        archive.open("wb") as raw,
        _StoredGzip(raw) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add_entries(tar, out_dir)
    return sha256_file(archive), archive.stat().st_size


def read_archive_member(archive: Path, name: str, max_bytes: int) -> bytes:
    """One regular file's bytes from a tar.gz archive (a job's output, for the app).

    Raises:
        BundleError: the archive is damaged, the member is absent or not a regular file,
            or it is larger than ``max_bytes``.
    """
    wanted = str(_member_path(name))
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                if str(_member_path(member.name)) != wanted:
                    continue
                if not member.isfile():
                    raise BundleError(f"{name!r} in the archive is not a regular file.")
                if member.size > max_bytes:
                    raise BundleError(
                        f"{name!r} is larger than {max_bytes} bytes, the limit for reading it."
                    )
                source = tar.extractfile(member)
                if source is None:
                    raise BundleError(f"{name!r} in the archive cannot be read.")
                with source:
                    return source.read(max_bytes + 1)[:max_bytes]
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise BundleError(f"The archive is not a readable tar.gz file ({exc}).") from exc
    raise BundleError(f"The archive holds no file named {name!r}.")

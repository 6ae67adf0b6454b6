"""Content-addressed files: bundles and results, named by their sha256.

Why a folder and not a table: a 64 MiB upload streams to disk and a download is sent from
the file, so neither is held in memory or in a database row; the database stays small,
so leasing and backups stay fast. Files are written to a temporary name and renamed, so a
name always holds complete bytes; the database refers to a blob only after it is in
place. Content addressing makes a repeated upload a no-op and lets several app servers
share one folder (a shared volume) without coordinating.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path
from types import TracebackType

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


#: An upload's temporary file older than this was left by a crash (uploads take minutes at most).
_STALE_UPLOAD_S = 24 * 3600


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._remove_stale_uploads()

    def _remove_stale_uploads(self) -> None:
        # Only old ones: other app servers sharing this folder may be receiving uploads now.
        cutoff = time.time() - _STALE_UPLOAD_S
        for leftover in self._tmp.glob("upload-*"):
            with contextlib.suppress(OSError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()

    def path(self, sha256: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def _adopt(self, tmp: Path, sha256: str) -> None:
        final = self.path(sha256)
        final.parent.mkdir(exist_ok=True)
        if final.exists():
            tmp.unlink()
        else:
            tmp.replace(final)


class BlobWriter:
    """Streams an upload to a temporary file while counting and hashing it."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store._tmp, prefix="upload-")
        self._file = os.fdopen(fd, "wb")
        self._path = Path(name)
        self._hash = hashlib.sha256()
        self._adopted = False
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def commit(self) -> str:
        """Move the bytes under their digest; returns it."""
        self.finish()
        return self.adopt()

    def finish(self) -> None:
        """Make the bytes durable under the temporary name (blocks on the disk: a thread's job)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def adopt(self) -> str:
        """After :meth:`finish`: move the bytes under their digest (a rename); returns it."""
        sha = self.sha256
        if not self._adopted:  # a batch run again after a rollback adopts again
            self._store._adopt(self._path, sha)
            self._adopted = True
        return sha

    def discard(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._adopted:
            self.discard()

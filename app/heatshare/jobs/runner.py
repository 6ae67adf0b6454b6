"""The life of one leased job on this machine, each step journaled before it is taken.

Files (under the agent's data folder):

- ``bundles/<sha256>.tar.gz``: bundles, cached by checksum (the demo's jobs share a few);
- ``slots/<attempt_id>/job/``: the unpacked bundle, mounted at ``/job`` in the sandbox, with
  ``out/`` (the outputs) and ``checkpoint/`` (kept when the job is stopped and restarted);
- ``slots/<attempt_id>/log.txt``: the job's output, beside (not inside) what it can write;
- ``slots/<attempt_id>/result.tar.gz``: the packed outputs, deterministic bytes.

Once the network accepted a result the job folder goes; the result archive and the log of the
last :attr:`JobRunner.keep` finished attempts stay, for the app's jobs page.

One :class:`JobRunner` serves one thread (the agent's job thread): the sandbox ties each job
to the thread that started it (``PR_SET_PDEATHSIG``), so jobs are only ever started there.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import stat
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Final

from heatshare.jobs import bundle
from heatshare.jobs.sandbox import (
    CHECKPOINT_DIR,
    CHECKPOINT_ETA_FILE,
    JOB_ROOT,
    OUTPUT_DIR,
    PROGRESS_FILE,
    Limits,
    Outcome,
    Sandbox,
    SandboxProcess,
    SandboxRequest,
    SandboxResult,
    SandboxUnavailable,
)
from heatshare.network.client import (
    AuthLost,
    Conflict,
    CoordinatorClient,
    Gone,
    Rejected,
    Unreachable,
)
from heatshare.protocol.coordinator_api import MAX_RESULT_BYTES, AttemptState, Failure, Lease
from heatshare.protocol.local_api import JobPhase
from heatshare.store.jobs import AttemptRecord, JobJournal

log = logging.getLogger(__name__)

RESULT_NAME: Final = "result.tar.gz"
LOG_NAME: Final = "log.txt"
JOB_DIR: Final = "job"
LOG_TAIL_CHARS: Final = 20_000
#: How often a running job's progress goes to the network (which also extends its lease).
PROGRESS_EVERY_S: Final = 10.0
_KEEP_BUNDLES: Final = 16
#: A checkpoint ETA further past due than this is a claim the job forgot: not believed.
ETA_STALE_S: Final = 10.0


class StopReason(StrEnum):
    """Why the agent stops a running job before it ends by itself."""

    SHUTDOWN = "shutdown"  # the agent stops: the job restarts in its slot next time
    PAUSE = "pause"  # the householder paused: restarted on resume
    HEATING = "heating"  # the thermostat wants no heat for a while: restarted when it does
    CANCEL = "cancel"  # the network no longer wants it: dropped
    LEAVE = "leave"  # the machine leaves the network: dropped


class Step(StrEnum):
    """Where :meth:`JobRunner.process` left an attempt."""

    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # still RUNNING in the journal; resumes later
    OUTBOX = "outbox"  # the result waits for the network


class Report(StrEnum):
    """What became of a failure report sent from the outbox."""

    SENT = "sent"  # the network recorded the failure
    WAITING = "waiting"  # no answer: it stays in the outbox
    STALE = "stale"  # the network no longer wants it (dropped)


@dataclass(frozen=True, slots=True)
class LiveJob:
    """What the app shows of the job in progress; replaced whole, read without a lock."""

    attempt_id: int
    label: str
    phase: JobPhase
    progress: float | None
    message: str
    run_started: float | None  # monotonic, while the sandbox runs


def parse_progress(text: str) -> tuple[float, str] | None:
    """The last well-formed ``<fraction> [message]`` line of a progress file, or None.

    Jobs write what they like: garbage lines, percentages above 1, NaN. Only a finite number
    counts, clamped to 0..1; the message is cut to 500 characters.
    """
    for line in reversed(text.splitlines()):
        head, _, message = line.strip().partition(" ")
        try:
            value = float(head)
        except ValueError:
            continue
        if not math.isfinite(value):
            continue
        return min(1.0, max(0.0, value)), message.strip()[:500]
    return None


def open_job_file(path: Path, root: Path) -> BinaryIO:
    """Open a file the job wrote, for reading, without letting the job aim the agent elsewhere.

    The job controls everything under its slot: a symbolic link (at the end or in a folder on
    the way) could point the agent, which may run as root, at a host file, and a FIFO would
    block the reader. So the path must stay under ``root`` once resolved, the last step is
    opened without following links, and only a regular file is read.

    Raises:
        OSError: anything else (a link, a FIFO, a path leaving ``root``, no such file).
    """
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(path.parent)
    if os.path.commonpath([real_root, real_parent]) != real_root:
        raise OSError(f"{path} leaves the job's folder")
    fd = os.open(Path(real_parent) / path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_progress(path: Path) -> tuple[float, str] | None:
    """Parse the tail of a job's progress file; a missing or unreadable file is None."""
    try:
        with open_job_file(path, path.parent) as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            data = f.read(4096)
    except OSError:
        return None
    return parse_progress(data.decode("utf-8", errors="replace"))


def read_checkpoint_eta(path: Path, now: float) -> float | None:
    """Seconds to the job's next checkpoint, from the number it wrote and when it wrote it.

    The file holds one number of seconds, counted from the moment it was written (its
    modification time). None where there is no file, no finite non-negative number, or the
    checkpoint is long overdue.
    """
    try:
        with open_job_file(path, path.parent) as f:
            written = os.fstat(f.fileno()).st_mtime
            text = f.read(64).decode("ascii", errors="replace")
    except OSError:
        return None
    try:
        seconds = float(text.strip().split()[0]) if text.strip() else math.nan
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    left = seconds - max(0.0, now - written)
    if left < -ETA_STALE_S:
        return None
    return max(0.0, left)


def tail(path: Path, chars: int) -> str:
    """The last ``chars`` characters (roughly: bytes) of a text file, or ""."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - chars))
            return f.read().decode("utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def limits_for(lease: Lease, elapsed_s: float) -> Limits:
    """The sandbox limits of a lease; the wall time is what is left after earlier runs."""
    r = lease.resources
    return Limits(
        memory_bytes=r.memory_bytes,
        max_processes=r.max_processes,
        disk_bytes=r.disk_bytes,
        wall_time_s=max(1.0, r.wall_time_s - elapsed_s),
        cpu_cores=r.cpu_cores,
    )


def archive_names(archive: Path) -> list[str]:
    """The regular files in a result archive, as the app lists them."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            return sorted(_clean_name(m.name) for m in tar.getmembers() if m.isfile())
    except (OSError, tarfile.TarError):
        return []


def _clean_name(name: str) -> str:
    name = name.removeprefix("./")
    return name.removeprefix(f"{OUTPUT_DIR}/")


class JobRunner:
    """Takes attempts through their phases (see the module's docstring).

    Args:
        data_dir: the agent's data folder (``slots/`` and ``bundles/`` go there).
        sandbox: where jobs run; never called where its ``problem()`` is not None.
        journal: the job journal.
        energy_j: the machine's cumulative energy (J), or None where unknown.
        keep: how many finished attempts keep their files for the app.
    """

    def __init__(
        self,
        data_dir: Path,
        sandbox: Sandbox,
        journal: JobJournal,
        *,
        energy_j: Callable[[], float | None] = lambda: None,
        keep: int = 20,
        progress_every_s: float = PROGRESS_EVERY_S,
        poll_s: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.slots_dir = data_dir / "slots"
        self.bundles_dir = data_dir / "bundles"
        self.sandbox = sandbox
        self.journal = journal
        self.keep = keep
        self._energy_j = energy_j
        self._progress_every_s = progress_every_s
        self._poll_s = poll_s
        self._clock = clock
        self.live: LiveJob | None = None
        #: How long a stopped job gets to end by itself (SIGTERM) before SIGKILL.
        self.stop_grace_s = 5.0
        # The heating controller's hold on the running job, set from its thread: the job in
        # the sandbox now, and what it should be (frozen, on how many cores).
        self._hold_lock = threading.Lock()
        self._proc: SandboxProcess | None = None
        self._proc_gpu = False
        self._want_frozen = False
        self._want_cores: int | None = None

    # --- the heating controller's hold (any thread) ----------------------------------------

    def hold(self, *, frozen: bool, cpu_cores: int | None) -> None:
        """Freeze or thaw the running job, and limit a CPU job's cores; kept for the next."""
        with self._hold_lock:
            changed_freeze = frozen != self._want_frozen
            changed_cores = cpu_cores != self._want_cores
            self._want_frozen, self._want_cores = frozen, cpu_cores
            proc = self._proc
            if proc is None:
                return
            if changed_freeze:
                self._apply_freeze(proc)
            if changed_cores and not self._proc_gpu:
                proc.limit_cores(cpu_cores)

    def _apply_freeze(self, proc: SandboxProcess) -> None:
        if self._want_frozen:
            if proc.freeze():
                log.info("Job frozen in place")
            else:
                log.info("This sandbox cannot freeze a job")
        else:
            proc.thaw()
            log.info("Job thawed")

    @property
    def frozen(self) -> bool:
        """Whether the running job is held frozen now."""
        with self._hold_lock:
            return self._proc is not None and self._want_frozen

    def checkpoint_eta_s(self) -> float | None:
        """The running job's seconds to its next checkpoint, where it says (else None)."""
        live = self.live
        if live is None or live.run_started is None:
            return None
        path = self.slot(live.attempt_id) / JOB_DIR / CHECKPOINT_ETA_FILE
        return read_checkpoint_eta(path, time.time())

    # --- paths ---------------------------------------------------------------------------

    def slot(self, attempt_id: int) -> Path:
        return self.slots_dir / str(int(attempt_id))

    def result_path(self, attempt_id: int) -> Path:
        return self.slot(attempt_id) / RESULT_NAME

    def log_path(self, attempt_id: int) -> Path:
        return self.slot(attempt_id) / LOG_NAME

    def output_names(self, rec: AttemptRecord) -> list[str]:
        """The attempt's output files: from its result archive, else its out/ folder."""
        archive = self.result_path(rec.attempt_id)
        if archive.is_file():
            return archive_names(archive)
        out = self.slot(rec.attempt_id) / JOB_DIR / OUTPUT_DIR
        if not out.is_dir():
            return []
        return sorted(
            str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and not p.is_symlink()
        )

    def read_output(self, attempt_id: int, name: str) -> bytes:
        """One output file's bytes, by its listed name.

        Raises:
            ValueError: the name is not a plain relative path.
            KeyError: no such file is kept for this attempt.
        """
        parts = Path(name).parts
        if not name or name.startswith("/") or ".." in parts or "\\" in name or "\0" in name:
            raise ValueError(f"{name!r} is not the name of an output file.")
        archive = self.result_path(attempt_id)
        if archive.is_file():
            try:
                return bundle.read_archive_member(archive, name, MAX_RESULT_BYTES)
            except bundle.BundleError as exc:
                raise KeyError(name) from exc
        out = self.slot(attempt_id) / JOB_DIR / OUTPUT_DIR
        try:
            with open_job_file(out / name, out) as f:
                return f.read()  # bounded by the job's disk limit
        except OSError as exc:
            raise KeyError(name) from exc

    # --- the life of an attempt ----------------------------------------------------------

    def process(
        self,
        attempt_id: int,
        client: CoordinatorClient,
        should_stop: Callable[[int], StopReason | None],
    ) -> Step:
        """Take one attempt as far as it can go now, from whatever phase the journal says.

        Raises:
            AuthLost: the network no longer knows this machine; the attempt stays as it is.
        """
        rec = self._get(attempt_id)
        self._show(rec, None)
        try:
            if rec.phase in (JobPhase.LEASED, JobPhase.DOWNLOADING):
                step = self._prepare(rec, client)
                if step is None:
                    step = self._run(self._get(attempt_id), client, should_stop)
                if step is not None:
                    return step
                rec = self._get(attempt_id)
            elif rec.phase is JobPhase.RUNNING and rec.exit_code != 0:
                step = self._resume_run(rec, client, should_stop)
                if step is not None:
                    return step
                rec = self._get(attempt_id)
            if rec.phase is JobPhase.RUNNING:  # exited 0: pack its outputs
                step = self._pack(rec)
                if step is not None:
                    return step
                rec = self._get(attempt_id)
            if rec.phase in (JobPhase.UPLOADING, JobPhase.OUTBOX):
                return self._upload(rec, client)
            return Step(rec.phase.value) if rec.phase in _FINAL_STEPS else Step.STOPPED
        finally:
            self.live = None

    def drop(self, attempt_id: int, reason: str, *, phase: JobPhase = JobPhase.CANCELLED) -> None:
        """End an attempt here without running it further (cancelled, or the machine left)."""
        rec = self.journal.get(attempt_id)
        if rec is None or not rec.active:
            return
        self.journal.set_phase(
            attempt_id,
            phase,
            now=self._clock(),
            note=reason,
            error=reason,
            finished_at=self._clock(),
        )
        self._finish_slot(attempt_id)

    def _get(self, attempt_id: int) -> AttemptRecord:
        rec = self.journal.get(attempt_id)
        if rec is None:
            raise KeyError(attempt_id)
        return rec

    def _show(self, rec: AttemptRecord, run_started: float | None) -> None:
        self.live = LiveJob(
            rec.attempt_id, rec.label, rec.phase, rec.progress, rec.progress_message, run_started
        )

    def _prepare(self, rec: AttemptRecord, client: CoordinatorClient) -> Step | None:
        """Download (or reuse) the bundle, check it, unpack it into a fresh slot."""
        lease = rec.lease
        self.journal.set_phase(rec.attempt_id, JobPhase.DOWNLOADING, now=self._clock())
        self._show(self._get(rec.attempt_id), None)
        self.bundles_dir.mkdir(parents=True, exist_ok=True)
        cached = self.bundles_dir / f"{lease.bundle_sha256}.tar.gz"
        if cached.is_file() and bundle.sha256_file(cached) != lease.bundle_sha256:
            cached.unlink()  # damaged on disk: fetch it again
        if not cached.is_file():
            step = self._fetch(rec, client, cached)
            if step is not None:
                return step
        else:
            os.utime(cached)  # most recently used, for the cache's pruning
        job_dir = self.slot(rec.attempt_id) / JOB_DIR
        if job_dir.exists():
            shutil.rmtree(job_dir)  # a half-unpacked slot from before a crash
        job_dir.mkdir(parents=True)
        try:
            bundle.unpack_bundle(cached, job_dir, max_bytes=lease.resources.disk_bytes)
        except (bundle.BundleError, OSError, tarfile.TarError) as exc:
            return self._fail(rec, client, f"The job's bundle could not be unpacked: {exc}")
        for sub in (OUTPUT_DIR, CHECKPOINT_DIR):
            (job_dir / sub).mkdir(exist_ok=True)
        self._prune_bundles()
        return None

    def _fetch(self, rec: AttemptRecord, client: CoordinatorClient, dest: Path) -> Step | None:
        try:
            client.download_bundle(rec.lease, dest)
        except (Gone, Conflict) as exc:
            return self._cancel(rec, f"The network withdrew the job: {exc}")
        except AuthLost:
            raise
        except Rejected as exc:
            if exc.status == 404:
                return self._cancel(rec, f"The network withdrew the job: {exc}")
            if exc.status >= 500 and exc.status != 502:
                log.info("Bundle of attempt %d not fetched: %s", rec.attempt_id, exc)
                return Step.STOPPED  # the network's trouble: try again later
            return self._fail(rec, client, f"The job's bundle could not be fetched: {exc}")
        except Unreachable as exc:
            log.info("Bundle of attempt %d not fetched: %s", rec.attempt_id, exc)
            return Step.STOPPED
        return None

    def _resume_run(
        self,
        rec: AttemptRecord,
        client: CoordinatorClient,
        should_stop: Callable[[int], StopReason | None],
    ) -> Step | None:
        if rec.runs > 0:
            # A restart (after a stop, a crash or a reboot): only while the lease still holds.
            try:
                answer = client.progress(rec.attempt_id, rec.progress or 0.0, "resuming")
                if answer.cancel:
                    return self._cancel(rec, "The network no longer needs this job.")
            except (Gone, Conflict) as exc:
                return self._cancel(rec, f"The job's lease has ended: {exc}")
            except AuthLost:
                raise
            except Rejected as exc:
                if exc.status == 404:
                    return self._cancel(rec, f"The job's lease has ended: {exc}")
            except Unreachable:
                pass  # run it anyway: the result waits in the outbox if need be
        job_dir = self.slot(rec.attempt_id) / JOB_DIR
        if not job_dir.is_dir():
            # The slot is gone (cleaned by hand?): start over from the bundle.
            self.journal.set_phase(
                rec.attempt_id, JobPhase.LEASED, now=self._clock(), note="slot missing"
            )
            step = self._prepare(self._get(rec.attempt_id), client)
            if step is not None:
                return step
        return self._run(self._get(rec.attempt_id), client, should_stop)

    def _run(
        self,
        rec: AttemptRecord,
        client: CoordinatorClient,
        should_stop: Callable[[int], StopReason | None],
    ) -> Step | None:
        lease = rec.lease
        slot = self.slot(rec.attempt_id)
        job_dir = slot / JOB_DIR
        for sub in (OUTPUT_DIR, CHECKPOINT_DIR):
            (job_dir / sub).mkdir(exist_ok=True)
        env = {
            **lease.env,
            "HEATSHARE_OUTPUT": f"{JOB_ROOT}/{OUTPUT_DIR}",
            "HEATSHARE_CHECKPOINT": f"{JOB_ROOT}/{CHECKPOINT_DIR}",
            "HEATSHARE_PROGRESS": f"{JOB_ROOT}/{PROGRESS_FILE}",
            "HEATSHARE_CHECKPOINT_ETA": f"{JOB_ROOT}/{CHECKPOINT_ETA_FILE}",
            "HEATSHARE_JOB_ID": str(lease.job_id),
            "HEATSHARE_ATTEMPT_ID": str(lease.attempt_id),
        }
        request = SandboxRequest(
            slot=job_dir,
            command=list(lease.command),
            limits=limits_for(lease, rec.elapsed_s),
            log_path=slot / LOG_NAME,
            env=env,
            gpu=lease.resources.gpus > 0,
        )
        # A checkpoint ETA from an earlier run says nothing about this one.
        (job_dir / CHECKPOINT_ETA_FILE).unlink(missing_ok=True)
        self.journal.start_run(rec.attempt_id, now=self._clock())
        rec = self._get(rec.attempt_id)
        energy0 = self._energy()
        t0 = time.monotonic()
        try:
            proc = self.sandbox.start(request)
        except SandboxUnavailable as exc:
            self.journal.add_run_time(rec.attempt_id, seconds=0.0, energy_j=None, now=self._clock())
            return self._fail(rec, client, f"The sandbox could not start the job: {exc}")
        self._show(rec, t0)
        with self._hold_lock:
            self._proc, self._proc_gpu = proc, lease.resources.gpus > 0
            if self._want_frozen:
                self._apply_freeze(proc)
            if self._want_cores is not None and not self._proc_gpu:
                proc.limit_cores(self._want_cores)
        try:
            result, stopped = self._watch(rec, proc, client, should_stop, t0)
        finally:
            with self._hold_lock:
                self._proc = None
        # Time frozen is not run time: the job's time limit is counted without it.
        elapsed = max(0.0, time.monotonic() - t0 - proc.frozen_s)
        energy1 = self._energy()
        energy = None if energy0 is None or energy1 is None else max(0.0, energy1 - energy0)
        self.journal.add_run_time(
            rec.attempt_id, seconds=elapsed, energy_j=energy, now=self._clock()
        )
        self._note_progress(rec.attempt_id, job_dir, t0)
        if stopped in (StopReason.CANCEL, StopReason.LEAVE):
            return self._cancel(
                rec,
                "The network no longer needs this job."
                if stopped is StopReason.CANCEL
                else "This machine left the network.",
            )
        if stopped is not None:
            self.journal.note(rec.attempt_id, f"stopped ({stopped.value})", now=self._clock())
            return Step.STOPPED
        if result.outcome is Outcome.EXITED and result.exit_code == 0:
            self.journal.update(rec.attempt_id, now=self._clock(), exit_code=0)
            return None
        self.journal.update(rec.attempt_id, now=self._clock(), exit_code=result.exit_code)
        return self._fail(rec, client, result.message, exit_code=result.exit_code)

    def _watch(
        self,
        rec: AttemptRecord,
        proc: SandboxProcess,
        client: CoordinatorClient,
        should_stop: Callable[[int], StopReason | None],
        t0: float,
    ) -> tuple[SandboxResult, StopReason | None]:
        """Wait for the job, sending its progress; stop it when asked to."""
        every = max(1.0, min(self._progress_every_s, rec.lease.lease_s / 3))
        next_report = t0 + every
        job_dir = self.slot(rec.attempt_id) / JOB_DIR
        while True:
            result = proc.wait(self._poll_s)
            if result is not None:
                return result, None
            reason = should_stop(rec.attempt_id)
            if reason is not None:
                return proc.stop(self.stop_grace_s), reason
            if time.monotonic() < next_report:
                self._look(rec, job_dir, t0)  # for the app: in memory only
                continue
            next_report = time.monotonic() + every
            fraction, message = self._note_progress(rec.attempt_id, job_dir, t0)
            try:
                answer = client.progress(rec.attempt_id, fraction or 0.0, message)
            except (Gone, Conflict):
                return proc.stop(self.stop_grace_s), StopReason.CANCEL
            except AuthLost:
                return proc.stop(self.stop_grace_s), StopReason.SHUTDOWN
            except Rejected as exc:
                if exc.status == 404:
                    return proc.stop(self.stop_grace_s), StopReason.CANCEL
                log.info("Progress of attempt %d not taken: %s", rec.attempt_id, exc)
                continue
            except Unreachable as exc:
                log.info("Progress of attempt %d not sent: %s", rec.attempt_id, exc)
                continue
            if answer.cancel:
                return proc.stop(self.stop_grace_s), StopReason.CANCEL

    def _look(self, rec: AttemptRecord, job_dir: Path, t0: float) -> None:
        parsed = read_progress(job_dir / PROGRESS_FILE)
        live = self.live
        if parsed is not None and live is not None and (live.progress, live.message) != parsed:
            self.live = dataclasses.replace(live, progress=parsed[0], message=parsed[1])

    def _note_progress(self, attempt_id: int, job_dir: Path, t0: float) -> tuple[float | None, str]:
        parsed = read_progress(job_dir / PROGRESS_FILE)
        if parsed is None:
            live = self.live
            return (live.progress if live else None), (live.message if live else "")
        fraction, message = parsed
        self.journal.update(
            attempt_id, now=self._clock(), progress=fraction, progress_message=message
        )
        self._show(self._get(attempt_id), t0)
        return fraction, message

    def _pack(self, rec: AttemptRecord) -> Step | None:
        slot = self.slot(rec.attempt_id)
        out = slot / JOB_DIR / OUTPUT_DIR
        part = slot / (RESULT_NAME + ".part")
        try:
            sha, size = bundle.pack_outputs(out, part)
            part.replace(slot / RESULT_NAME)
        except (bundle.BundleError, OSError, tarfile.TarError) as exc:
            part.unlink(missing_ok=True)
            message = f"The job's outputs could not be packed: {exc}"
            self._queue_failure(rec, message)
            return Step.FAILED
        self.journal.set_phase(
            rec.attempt_id,
            JobPhase.UPLOADING,
            now=self._clock(),
            note=f"result {sha[:12]} ({size} bytes)",
            result_sha256=sha,
            result_size=size,
            finished_at=self._clock(),
            progress=1.0,
        )
        return None

    def _upload(self, rec: AttemptRecord, client: CoordinatorClient) -> Step:
        archive = self.result_path(rec.attempt_id)
        sha = rec.result_sha256
        if sha is None or not archive.is_file() or bundle.sha256_file(archive) != sha:
            # Packing is deterministic, so the outputs packed again are the same bytes.
            if not (self.slot(rec.attempt_id) / JOB_DIR / OUTPUT_DIR).is_dir():
                message = "The job's result was lost on this machine before it was sent."
                self._queue_failure(rec, message)
                return Step.FAILED
            step = self._pack(rec)
            if step is not None:
                return step
            rec = self._get(rec.attempt_id)
            sha = rec.result_sha256
            assert sha is not None
        self._show(rec, None)
        try:
            accepted = client.upload_result(rec.attempt_id, archive, sha)
        except AuthLost:
            raise
        except Unreachable:
            return self._to_outbox(rec)
        except Rejected as exc:
            if exc.status >= 500 or exc.status == 429:
                return self._to_outbox(rec)
            message = f"The network refused the result: {exc}"
            self.journal.set_phase(
                rec.attempt_id, JobPhase.FAILED, now=self._clock(), note=message, error=message
            )
            self._finish_slot(rec.attempt_id)
            return Step.FAILED
        self.journal.set_phase(
            rec.attempt_id,
            JobPhase.DONE,
            now=self._clock(),
            note=f"result {accepted.status}, credited {accepted.credited_minor}",
            result_status=accepted.status,
            credited_minor=accepted.credited_minor,
        )
        self._finish_slot(rec.attempt_id)
        return Step.DONE

    def _to_outbox(self, rec: AttemptRecord) -> Step:
        if rec.phase is not JobPhase.OUTBOX:
            self.journal.set_phase(
                rec.attempt_id, JobPhase.OUTBOX, now=self._clock(), note="network unreachable"
            )
        return Step.OUTBOX

    def _cancel(self, rec: AttemptRecord, reason: str) -> Step:
        self.drop(rec.attempt_id, reason)
        return Step.CANCELLED

    def _fail(
        self,
        rec: AttemptRecord,
        client: CoordinatorClient,
        reason: str,
        *,
        exit_code: int | None = None,
    ) -> Step:
        """Journal the failure with its report, then send the report (it waits if need be)."""
        self._queue_failure(rec, reason, exit_code=exit_code)
        self._finish_slot(rec.attempt_id)
        self.report_failure(rec.attempt_id, client)
        return Step.FAILED

    def _queue_failure(
        self, rec: AttemptRecord, reason: str, *, exit_code: int | None = None
    ) -> None:
        """Journal the failure and its report in one commit; the outbox sends it."""
        log_tail = tail(self.log_path(rec.attempt_id), LOG_TAIL_CHARS)
        report = Failure(reason=reason[:2000] or "failed", exit_code=exit_code, log_tail=log_tail)
        self.journal.fail(rec.attempt_id, report, now=self._clock(), note=reason)

    def report_failure(self, attempt_id: int, client: CoordinatorClient) -> Report:
        """Send an attempt's journaled failure report; it leaves the outbox once answered.

        The network's answer settles it: taken (the attempt is failed there, the first time
        or again after a lost answer), or no longer wanted (the lease had run out and the job
        went elsewhere, or the attempt is not known): dropped with a note, never retried.
        No answer, or the network's own trouble (5xx, 429): it waits in the outbox.

        Raises:
            AuthLost: the network no longer knows this machine; the report stays.
        """
        pending = self.journal.pending_failure(attempt_id)
        if pending is None:
            return Report.SENT  # answered before
        try:
            answer = client.failure(attempt_id, pending.report)
        except AuthLost:
            raise
        except Unreachable as exc:
            return self._report_waits(attempt_id, str(exc))
        except Rejected as exc:
            if exc.status >= 500 or exc.status == 429:
                return self._report_waits(attempt_id, str(exc))
            # 404: not this machine's attempt (any more); 409: it has a result. Sending the
            # same report again cannot change that answer.
            self.journal.failure_settled(
                attempt_id, now=self._clock(), note=f"failure report refused: {exc}"
            )
            log.info("The failure report of attempt %d was dropped: %s", attempt_id, exc)
            return Report.STALE
        if answer.state is AttemptState.FAILED:
            self.journal.failure_settled(attempt_id, now=self._clock(), note="failure reported")
            return Report.SENT
        self.journal.failure_settled(
            attempt_id,
            now=self._clock(),
            note=f"failure report not needed: the network has the attempt as {answer.state}",
        )
        log.info(
            "The failure report of attempt %d was dropped: the network has the attempt as %s",
            attempt_id,
            answer.state.value,
        )
        return Report.STALE

    def _report_waits(self, attempt_id: int, error: str) -> Report:
        self.journal.failure_not_sent(attempt_id, error=error)
        log.info("The failure report of attempt %d waits in the outbox: %s", attempt_id, error)
        return Report.WAITING

    # --- housekeeping --------------------------------------------------------------------

    def _energy(self) -> float | None:
        try:
            value = self._energy_j()
        except Exception:  # a sensor's trouble must not stop the job
            log.debug("energy reading failed", exc_info=True)
            return None
        return value if value is not None and math.isfinite(value) else None

    def _finish_slot(self, attempt_id: int) -> None:
        """Remove the job's folder (its result and log stay); prune old slots."""
        shutil.rmtree(self.slot(attempt_id) / JOB_DIR, ignore_errors=True)
        self.prune()

    def prune(self) -> None:
        """Keep the files of the last :attr:`keep` finished attempts and of every active one."""
        if not self.slots_dir.is_dir():
            return
        keep = {r.attempt_id for r in self.journal.active()}
        keep.update(r.attempt_id for r in self.journal.recent(self.keep))
        for path in self.slots_dir.iterdir():
            if path.name.isdigit() and int(path.name) in keep:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _prune_bundles(self) -> None:
        active = {r.lease.bundle_sha256 for r in self.journal.active()}
        files = sorted(
            (p for p in self.bundles_dir.glob("*.tar.gz")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in files[_KEEP_BUNDLES:]:
            if old.name.removesuffix(".tar.gz") not in active:
                old.unlink(missing_ok=True)
        for part in self.bundles_dir.glob("*.part"):
            part.unlink(missing_ok=True)


_FINAL_STEPS: Final = (JobPhase.DONE, JobPhase.FAILED, JobPhase.CANCELLED)

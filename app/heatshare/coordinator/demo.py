"""The demo network's requester: keeps a few real example jobs queued.

``heatshare-coordinator serve --demo`` runs a :class:`DemoRequester` in a thread. It
speaks to its own coordinator over the ordinary requester API (``/v1/bundles``,
``/v1/jobs``), exactly as an outside requester would, so the demo exercises the real path.

The examples are the folders under ``heatshare/resources/jobs``; each holds its files and a
``job.json`` (default command, resources, price in minor units). Fractal tiles walk a zoom
sequence, tile by tile and frame by frame; matrix checks take a new seed each time. Each
job's label carries a sequence number (``fractal #12: …``), so a restarted coordinator goes
on where the last one stopped instead of rendering the same tiles again.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import io
import json
import logging
import re
import tarfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TypeVar

import requests
from pydantic import BaseModel, ValidationError

from heatshare.protocol.coordinator_api import (
    SHA256_HEADER,
    ApiError,
    BundleOut,
    JobList,
    JobOut,
    JobState,
    JobSubmit,
    Resources,
)

log = logging.getLogger(__name__)

#: Frames of the fractal zoom before it starts again from the whole set.
FRACTAL_FRAMES = 25
#: The first frames are mostly smooth, fast colour; more samples per pixel there give a
#: finer picture and keep a tile's run time near that of the deeper frames.
FRACTAL_SHALLOW_FRAMES = 8
FRACTAL_SHALLOW_SAMPLES = 6

_CONNECT_TIMEOUT_S = 3.05
_READ_TIMEOUT_S = 15.0
_M = TypeVar("_M", bound=BaseModel)
_SEQUENCE = re.compile(r"^(?P<name>[\w-]+) #(?P<n>\d+):")


class DemoJobError(Exception):
    """An example job folder is unusable; the message says which and why."""


@dataclass(frozen=True)
class Example:
    """One example job, ready to submit: its bundle and its ``job.json``."""

    name: str
    title: str
    command: tuple[str, ...]
    resources: Resources
    price_minor: int
    bundle: bytes
    sha256: str


def default_jobs_dir() -> Traversable:
    return importlib.resources.files("heatshare") / "resources" / "jobs"


def pack_bundle(folder: Traversable) -> bytes:
    """A deterministic tar.gz of the folder's files: the same files give the same bytes.

    Names sorted, mtime 0, owner 0:0, modes normalised, gzip header without name or time;
    byte-compiled caches are left out. (Written here rather than taken from
    ``heatshare.jobs``: the coordinator shares only ``protocol`` and ``domain``.)
    """
    files: list[tuple[str, bytes]] = []

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.name == "__pycache__" or child.name.endswith((".pyc", ".pyo")):
                continue
            path = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, path + "/")
            elif child.is_file():
                files.append((path, child.read_bytes()))

    walk(folder, "")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in sorted(files):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def load_examples(jobs_dir: Traversable | Path, *, price_scale: int = 1) -> list[Example]:
    """Every example under ``jobs_dir`` (one folder each), sorted by name."""
    examples = []
    folders = sorted((f for f in jobs_dir.iterdir() if f.is_dir()), key=lambda f: f.name)
    for folder in folders:
        spec_file = folder / "job.json"
        if not spec_file.is_file():
            raise DemoJobError(f"The example job folder {folder.name!r} has no job.json.")
        try:
            spec = json.loads(spec_file.read_text(encoding="utf-8"))
            command = tuple(str(part) for part in spec["command"])
            resources = Resources.model_validate(spec.get("resources", {}))
            price = int(spec["price_minor"]) * price_scale
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise DemoJobError(
                f"The job.json of the example job {folder.name!r} is not valid: {exc}"
            ) from exc
        if not command or price < 0:
            raise DemoJobError(
                f"The job.json of the example job {folder.name!r} needs a command and a price."
            )
        bundle = pack_bundle(folder)
        examples.append(
            Example(
                name=folder.name,
                title=str(spec.get("title", folder.name)),
                command=command,
                resources=resources,
                price_minor=price,
                bundle=bundle,
                sha256=hashlib.sha256(bundle).hexdigest(),
            )
        )
    if not examples:
        raise DemoJobError(f"There are no example jobs in {jobs_dir}.")
    return examples


def with_options(command: Sequence[str], options: Mapping[str, str]) -> list[str]:
    """The command with each ``--option``'s value replaced (or the option appended)."""
    out = list(command)
    for option, value in options.items():
        if option in out[:-1]:
            out[out.index(option) + 1] = value
        else:
            out += [option, value]
    return out


def _option(command: Sequence[str], option: str, default: int) -> int:
    if option in command[:-1]:
        return int(command[list(command).index(option) + 1])
    return default


def plan(example: Example, n: int) -> tuple[list[str], str]:
    """The command and label of the example's ``n``-th job (n from 0)."""
    if example.name == "fractal":
        grid = _option(example.command, "--grid", 4)
        tiles = grid * grid
        frame, tile = (n // tiles) % FRACTAL_FRAMES, n % tiles
        options = {"--frame": str(frame), "--tile": str(tile)}
        if frame < FRACTAL_SHALLOW_FRAMES:
            options["--samples"] = str(FRACTAL_SHALLOW_SAMPLES)
        label = f"fractal #{n}: frame {frame}, tile {tile + 1} of {tiles}"
        return with_options(example.command, options), label
    if example.name == "matrix":
        seed = n + 1
        size = _option(example.command, "--n", 0)
        label = f"matrix #{n}: {size}x{size} product, seed {seed}"
        return with_options(example.command, {"--seed": str(seed)}), label
    return list(example.command), f"{example.name} #{n}: {example.title}"


class _Unavailable(Exception):  # noqa: N818 - a state: the coordinator is not answering
    pass


class _Refused(Exception):  # noqa: N818 - the coordinator answered with a 4xx
    pass


class DemoRequester:
    """Keeps ``queue_depth`` example jobs queued or running on the coordinator.

    Args:
        base_url: the coordinator, e.g. ``http://127.0.0.1:8470``.
        api_key: the demo requester's ``hsr_…`` key.
        stop: set it to make :meth:`run` return.
        jobs_dir: the example jobs; by default those shipped in the package.
        queue_depth: how many jobs to keep queued or running.
        price_scale: an integer factor on each ``job.json`` price (minor units).
        poll_s: how often to look at the queue.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        stop: threading.Event,
        *,
        jobs_dir: Path | Traversable | None = None,
        queue_depth: int = 4,
        price_scale: int = 1,
        poll_s: float = 2.0,
        max_backoff_s: float = 15.0,
    ) -> None:
        if queue_depth < 1:
            raise ValueError("queue_depth must be at least 1")
        if price_scale < 0:
            raise ValueError("price_scale must not be negative")
        self._base = base_url.rstrip("/")
        self._stop = stop
        self._queue_depth = queue_depth
        self._poll_s = poll_s
        self._max_backoff_s = max_backoff_s
        self.examples = load_examples(
            jobs_dir if jobs_dir is not None else default_jobs_dir(), price_scale=price_scale
        )
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {api_key}"
        self._uploaded: set[str] = set()
        self._next: dict[str, int] | None = None  # per example, from the labels on first look
        self._turn = 0
        self.submitted = 0

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Keeps the queue filled until ``stop`` is set; never raises for the network."""
        outage = False
        backoff = min(0.5, self._max_backoff_s)
        last_refusal = ""
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except _Unavailable as exc:
                    if not outage:
                        log.warning(
                            "The demo requester cannot reach the coordinator at %s (%s); "
                            "it keeps trying.",
                            self._base,
                            exc,
                        )
                        outage = True
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self._max_backoff_s)
                    continue
                except _Refused as exc:
                    # Our request or our key is wrong: say so once, try again slowly, since
                    # the operator may fix it (a new key, a restored database) meanwhile.
                    if str(exc) != last_refusal:
                        log.error("The coordinator refused the demo requester: %s", exc)
                        last_refusal = str(exc)
                    self._uploaded.clear()
                    self._stop.wait(self._max_backoff_s)
                    continue
                except Exception as exc:
                    # A bug of ours: the traceback once, and the demo keeps going.
                    if repr(exc) != last_refusal:
                        log.exception("The demo requester failed; it tries again")
                        last_refusal = repr(exc)
                    self._stop.wait(self._max_backoff_s)
                    continue
                if outage:
                    log.info("The demo requester reaches the coordinator again.")
                    outage = False
                backoff = min(0.5, self._max_backoff_s)
                last_refusal = ""
                self._stop.wait(self._poll_s)
        finally:
            self._session.close()

    def _step(self) -> None:
        for example in self.examples:
            if example.sha256 not in self._uploaded:
                self._upload(example)
        jobs = self._jobs()
        if self._next is None:
            self._next = self._sequence_from(jobs)
        waiting = sum(1 for j in jobs if j.state in (JobState.QUEUED, JobState.RUNNING))
        for _ in range(self._queue_depth - waiting):
            if self._stop.is_set():
                return
            example = self.examples[self._turn % len(self.examples)]
            self._submit(example)
            self._turn += 1

    def _sequence_from(self, jobs: Sequence[JobOut]) -> dict[str, int]:
        nexts = {e.name: 0 for e in self.examples}
        for job in jobs:
            found = _SEQUENCE.match(job.label)
            if found and found["name"] in nexts:
                nexts[found["name"]] = max(nexts[found["name"]], int(found["n"]) + 1)
        return nexts

    # --- HTTP -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, int] | None = None,
    ) -> requests.Response:
        try:
            response = self._session.request(
                method,
                self._base + path,
                data=data,
                headers=headers,
                params=params,
                timeout=(_CONNECT_TIMEOUT_S, _READ_TIMEOUT_S),
            )
        except requests.RequestException as exc:  # refused, reset, timed out, cut short
            raise _Unavailable(type(exc).__name__) from exc
        if response.status_code >= 500:
            raise _Unavailable(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise _Refused(f"{method} {path}: HTTP {response.status_code}: {_error(response)}")
        return response

    def _upload(self, example: Example) -> None:
        response = self._request(
            "POST",
            "/v1/bundles",
            data=example.bundle,
            headers={SHA256_HEADER: example.sha256, "Content-Type": "application/octet-stream"},
        )
        out = _parse(BundleOut, response)
        if out.sha256 != example.sha256:
            raise _Refused(f"the coordinator stored bundle {out.sha256}, not {example.sha256}")
        self._uploaded.add(example.sha256)
        log.info("Demo requester: the %s example is uploaded (%d bytes).", example.name, out.size)

    def _jobs(self) -> list[JobOut]:
        response = self._request("GET", "/v1/jobs", params={"limit": 200})
        return _parse(JobList, response).jobs

    def _submit(self, example: Example) -> None:
        assert self._next is not None
        n = self._next[example.name]
        command, label = plan(example, n)
        body = JobSubmit(
            bundle_sha256=example.sha256,
            command=command,
            resources=example.resources,
            price_minor=example.price_minor,
            label=label,
        )
        response = self._request(
            "POST",
            "/v1/jobs",
            data=body.model_dump_json(),
            headers={"Content-Type": "application/json"},
        )
        job = _parse(JobOut, response)
        self._next[example.name] = n + 1
        self.submitted += 1
        log.info("Demo requester: submitted job %d (%s).", job.job_id, label)


def _parse(model: type[_M], response: requests.Response) -> _M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise _Refused(
            f"{response.request.method} {response.url}: an answer that is not a "
            f"{model.__name__} ({exc.error_count()} errors)"
        ) from exc


def _error(response: requests.Response) -> str:
    try:
        return ApiError.model_validate_json(response.content).error
    except ValidationError:
        return response.text[:200]

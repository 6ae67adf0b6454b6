"""The agent's client of a coordinator: one ``requests.Session``, typed calls, clear errors.

- TLS is always verified (the system's CA settings are honoured: ``REQUESTS_CA_BUNDLE``
  and friends); a certificate that is not trusted raises :class:`Untrusted`.
- Every call has a connect and a read timeout.
- Idempotent calls (heartbeat, progress, result upload, failure, bundle download, reads) are
  retried on connection failures and on 429/502/503/504 answers, with exponential back-off
  and jitter. A lease or an enrolment is retried only when the connection was never made,
  since the request cannot then have reached the server.
- Errors are exceptions whose ``str`` is a sentence fit to show a householder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final, TypeVar
from urllib.parse import urljoin, urlsplit

import requests
from pydantic import BaseModel, ValidationError

from heatshare.protocol.coordinator_api import (
    MAX_BUNDLE_BYTES,
    NODE_REVOKED,
    SHA256_HEADER,
    ApiError,
    Earnings,
    EnrolRequest,
    EnrolResponse,
    Failure,
    Heartbeat,
    HeartbeatResponse,
    Inventory,
    Lease,
    LeaseRequest,
    LeaseResponse,
    NodeAttempt,
    NodeAttempts,
    Progress,
    ProgressResponse,
    ResultAccepted,
)

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

CONNECT_TIMEOUT_S: Final = 5.0
READ_TIMEOUT_S: Final = 30.0
TRANSFER_READ_TIMEOUT_S: Final = 120.0
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_CHUNK: Final = 256 * 1024


class CoordinatorError(Exception):
    """Any failure to talk to the coordinator; ``str(exc)`` is a sentence."""


class Unreachable(CoordinatorError):  # noqa: N818 - names a state the app shows
    """No answer: the network is down, the server is off, or it timed out."""


class Untrusted(Unreachable):
    """The server's TLS certificate is not trusted by this machine."""


class Rejected(CoordinatorError):  # noqa: N818 - names a state the app shows
    """The coordinator answered with an error status; ``message`` is its sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Conflict(Rejected):
    """409: the request contradicts what the coordinator already holds."""


class Gone(Rejected):
    """410: the thing asked for has expired (a pairing code, a lease)."""


class AuthLost(Rejected):
    """401: the node token is no longer valid (the node was removed from the network)."""


class BadAnswer(Unreachable):
    """The server answered something that is not the coordinator's API."""


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


class CoordinatorClient:
    """Typed calls to one coordinator, as a node (with its token) or as a newcomer (without).

    Args:
        base_url: the coordinator's address, for example ``https://net.example.org``.
        token: the node token (``hsn_…``); None before enrolment.
        attempts: how many tries a retried call gets.
        backoff_s: the first back-off; doubled on each retry, with full jitter.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        attempts: int = 3,
        backoff_s: float = 0.5,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._session = requests.Session()
        # Loopback needs neither a proxy nor a CA bundle from the environment; elsewhere the
        # environment's proxy and CA settings are the householder's to make.
        self._session.trust_env = not _is_loopback(self.base_url)
        self._session.verify = True
        self._session.headers["User-Agent"] = "heatshare-agent"
        if token is not None:
            self._session.headers["Authorization"] = f"Bearer {token}"
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._sleep = sleep

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path.lstrip("/"))

    # --- the machinery -------------------------------------------------------------------

    def _send(  # noqa: PLR0912 - the retry rules, kept together in one place
        self,
        method: str,
        path: str,
        *,
        retry: bool,
        body: BaseModel | None = None,
        data: Callable[[], IO[bytes]] | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
        read_timeout_s: float | None = None,
    ) -> requests.Response:
        """One request, retried per the rules above; the error statuses raise."""
        url = self.url(path)
        timeout = (self._timeout[0], read_timeout_s or self._timeout[1])
        for attempt in range(1, self._attempts + 1):
            last = attempt == self._attempts
            hdrs = dict(headers or {})
            payload: Any = None
            opened: IO[bytes] | None = None
            if body is not None:
                payload = body.model_dump_json()
                hdrs["Content-Type"] = "application/json"
            elif data is not None:
                opened = payload = data()
            try:
                resp = self._session.request(
                    method, url, data=payload, headers=hdrs, timeout=timeout, stream=stream
                )
            except requests.exceptions.SSLError as exc:
                raise Untrusted(
                    f"The server's certificate is not trusted by this machine ({self.base_url})."
                    " Check the address, or ask the network's operator for a certificate"
                    " signed by a known authority."
                ) from exc
            except requests.exceptions.ConnectionError as exc:
                never_sent = isinstance(exc, requests.exceptions.ConnectTimeout) or _refused(exc)
                if last or not (retry or never_sent):
                    raise Unreachable(
                        f"The network at {self.base_url} cannot be reached: {_reason(exc)}."
                    ) from exc
                self._pause(attempt)
                continue
            except requests.exceptions.Timeout as exc:
                if last or not retry:
                    raise Unreachable(
                        f"The network at {self.base_url} did not answer in time."
                    ) from exc
                self._pause(attempt)
                continue
            except requests.RequestException as exc:
                raise Unreachable(
                    f"The network at {self.base_url} cannot be reached: {_reason(exc)}."
                ) from exc
            finally:
                if opened is not None:
                    opened.close()
            if resp.status_code in _RETRY_STATUSES and retry and not last:
                resp.close()
                self._pause(attempt, _retry_after(resp))
                continue
            if resp.status_code >= 400:
                raise _error(resp, self.base_url)
            return resp
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _pause(self, attempt: int, at_least: float = 0.0) -> None:
        delay = random.uniform(0, self._backoff_s * 2 ** (attempt - 1))  # noqa: S311 - jitter
        self._sleep(max(delay, min(at_least, 30.0)))

    def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        resp = self._send(method, path, **kwargs)
        try:
            return model.model_validate_json(resp.content)
        except ValidationError as exc:
            raise BadAnswer(
                f"The server at {self.base_url} answered something that is not a Heatshare"
                f" network's answer ({model.__name__} expected)."
            ) from exc

    # --- node routes ---------------------------------------------------------------------

    def enrol(self, code: str, inventory: Inventory) -> EnrolResponse:
        return self._call(
            "POST",
            "/v1/enrol",
            EnrolResponse,
            retry=False,
            body=EnrolRequest(pairing_code=code, inventory=inventory),
        )

    def heartbeat(self, beat: Heartbeat) -> HeartbeatResponse:
        return self._call(
            "POST", "/v1/nodes/me/heartbeat", HeartbeatResponse, retry=True, body=beat
        )

    def lease(self, max_jobs: int = 1) -> LeaseResponse:
        return self._call(
            "POST", "/v1/leases", LeaseResponse, retry=False, body=LeaseRequest(max_jobs=max_jobs)
        )

    def progress(self, attempt_id: int, fraction: float, message: str = "") -> ProgressResponse:
        return self._call(
            "POST",
            f"/v1/attempts/{attempt_id:d}/progress",
            ProgressResponse,
            retry=True,
            body=Progress(fraction=min(1.0, max(0.0, fraction)), message=message[:500]),
        )

    def failure(self, attempt_id: int, failure: Failure) -> NodeAttempt:
        """Report a failed attempt; the answer says how the network holds the attempt now."""
        return self._call(
            "POST", f"/v1/attempts/{attempt_id:d}/failure", NodeAttempt, retry=True, body=failure
        )

    def attempts(self) -> NodeAttempts:
        return self._call("GET", "/v1/nodes/me/attempts", NodeAttempts, retry=True)

    def earnings(self) -> Earnings:
        return self._call("GET", "/v1/nodes/me/earnings", Earnings, retry=True)

    def download_bundle(self, lease: Lease, dest: Path) -> str:
        """Fetch the lease's bundle into ``dest``; return its sha256 (checked against the lease).

        The bytes go to ``<dest>.part`` first and are renamed only once complete and checked,
        so a crash mid-download leaves no file that looks whole.

        Raises:
            Rejected: the bundle is bigger than announced or its sha256 differs.
        """
        limit = min(lease.bundle_size, MAX_BUNDLE_BYTES)
        part = dest.with_name(dest.name + ".part")
        resp = self._send(
            "GET", lease.bundle_url, retry=True, stream=True, read_timeout_s=TRANSFER_READ_TIMEOUT_S
        )
        digest = hashlib.sha256()
        size = 0
        try:
            with resp, part.open("wb") as f:
                for chunk in resp.iter_content(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise Rejected(
                            502,
                            f"The network sent a bundle bigger than announced ({limit} bytes)"
                            f" for job {lease.job_id}.",
                        )
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except requests.RequestException as exc:
            part.unlink(missing_ok=True)
            raise Unreachable(
                f"The download of job {lease.job_id}'s bundle broke off: {_reason(exc)}."
            ) from exc
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        sha = digest.hexdigest()
        if sha != lease.bundle_sha256:
            part.unlink(missing_ok=True)
            raise Rejected(
                502,
                f"The bundle of job {lease.job_id} does not match its checksum"
                f" (got {sha[:12]}…, expected {lease.bundle_sha256[:12]}…).",
            )
        part.replace(dest)
        return sha

    def upload_result(self, attempt_id: int, archive: Path, sha256: str) -> ResultAccepted:
        """Send a result archive, streamed from the file; the same bytes get the same answer."""
        size = archive.stat().st_size
        return self._call(
            "PUT",
            f"/v1/attempts/{attempt_id:d}/result",
            ResultAccepted,
            retry=True,
            data=lambda: archive.open("rb"),
            headers={
                SHA256_HEADER: sha256,
                "Content-Type": "application/gzip",
                "Content-Length": str(size),
            },
            read_timeout_s=TRANSFER_READ_TIMEOUT_S,
        )


def _refused(exc: requests.exceptions.ConnectionError) -> bool:
    text = str(exc)
    return "Connection refused" in text or "Errno 111" in text or "NewConnectionError" in text


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, shortened to what a person can act on."""
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "No route to host",
        "Network is unreachable",
        "Connection reset",
    ):
        if marker in text:
            return marker.lower()
    return text[:200] or type(exc).__name__


def _retry_after(resp: requests.Response) -> float:
    try:
        return float(resp.headers.get("Retry-After", "0"))
    except ValueError:
        return 0.0


def _error(resp: requests.Response, base_url: str) -> Rejected:
    try:
        message = ApiError.model_validate_json(resp.content).error
    except ValidationError:
        message = (
            f"The network at {base_url} answered {resp.status_code} {resp.reason or ''}".rstrip()
            + "."
        )
    status = resp.status_code
    if status == 401 and message.startswith(NODE_REVOKED):
        return AuthLost(status, message)  # says why and what to do, as it is
    if status == 401:
        return AuthLost(
            status,
            "This machine's node token is no longer valid on the network"
            f" ({message.rstrip('.')}); enrol it again with a new pairing code.",
        )
    if status == 409:
        return Conflict(status, message)
    if status == 410:
        return Gone(status, message)
    return Rejected(status, message)

"""Where an agent keeps its files, and how a client finds a running agent.

The agent writes ``agent.json`` (host, port, pid) beside its bearer token (``agent-token``,
mode 0600) in the user's config folder. Everything moves under one ``--profile-dir``.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from pydantic import BaseModel, ConfigDict, ValidationError

APP_DIR_NAME = "heatshare"
DEFAULT_PORT = 47_821


@dataclass(frozen=True, slots=True)
class Paths:
    data_dir: Path
    config_dir: Path
    log_dir: Path

    @classmethod
    def for_profile(cls, profile_dir: str | os.PathLike[str] | None = None) -> Paths:
        if profile_dir is not None:
            root = Path(profile_dir).expanduser().absolute()
            return cls(root / "data", root / "config", root / "logs")
        return cls(
            Path(platformdirs.user_data_dir(APP_DIR_NAME, appauthor=False)),
            Path(platformdirs.user_config_dir(APP_DIR_NAME, appauthor=False)),
            Path(platformdirs.user_log_dir(APP_DIR_NAME, appauthor=False)),
        )

    @property
    def db_file(self) -> Path:
        return self.data_dir / "heatshare.sqlite3"

    @property
    def token_file(self) -> Path:
        return self.config_dir / "agent-token"

    @property
    def runtime_file(self) -> Path:
        return self.config_dir / "agent.json"

    def ensure(self) -> None:
        for d in (self.data_dir, self.config_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)


class RuntimeInfo(BaseModel):
    """Contents of ``agent.json`` while an agent runs."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    host: str
    port: int
    pid: int
    version: str

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def read_runtime(paths: Paths) -> RuntimeInfo | None:
    """The running agent's address, or None when no (readable) runtime file exists."""
    try:
        return RuntimeInfo.model_validate(json.loads(paths.runtime_file.read_text("utf-8")))
    except (OSError, ValueError, ValidationError):
        return None


def write_runtime(paths: Paths, info: RuntimeInfo) -> None:
    tmp = paths.runtime_file.with_suffix(".tmp")
    tmp.write_text(info.model_dump_json(), "utf-8")
    tmp.replace(paths.runtime_file)


def read_token(paths: Paths) -> str | None:
    try:
        return paths.token_file.read_text("ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def ensure_token(paths: Paths) -> str:
    """The agent's bearer token, created 0600 on first use and kept afterwards."""
    token = read_token(paths)
    if token:
        paths.token_file.chmod(0o600)
        return token
    token = secrets.token_urlsafe(32)
    fd = os.open(paths.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token)
    return token

"""The local API's models and the discovery files the programs share."""

from __future__ import annotations

import stat
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from heatshare.domain.readings import Provenance
from heatshare.protocol import discovery
from heatshare.protocol.local_api import (
    AgentState,
    AgentStatus,
    PauseRequest,
    Settings,
    SettingsPatch,
)


def test_settings_defaults_round_trip() -> None:
    s = Settings()
    assert Settings.model_validate_json(s.model_dump_json()) == s
    assert s.tariff_per_kwh == Decimal("0.245")


@pytest.mark.parametrize(
    "patch",
    [
        {"tariff_per_kwh": "-1"},
        {"tariff_per_kwh": "abc"},
        {"tariff_per_kwh": "0.123456"},  # more precision than a tariff has
        {"currency": "pounds"},
        {"temperature_unit": "K"},
        {"rest_of_system_w": 1e9},
        {"heating_threshold_pct": 0},
        {"unknown_key": 1},
    ],
)
def test_settings_patch_rejects_bad_values(patch: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SettingsPatch.model_validate(patch)


def test_settings_patch_keeps_only_what_was_sent() -> None:
    patch = SettingsPatch.model_validate({"currency": "EUR"})
    assert patch.model_dump(exclude_unset=True) == {"currency": "EUR"}


def test_pause_request_bounds() -> None:
    assert PauseRequest().duration_s is None
    assert PauseRequest(duration_s=3600).duration_s == 3600
    with pytest.raises(ValidationError):
        PauseRequest(duration_s=0)
    with pytest.raises(ValidationError):
        PauseRequest(duration_s=8 * 24 * 3600)


def test_status_carries_provenance_and_unknowns() -> None:
    status = AgentStatus(
        protocol_version=1,
        agent_version="0.1.0",
        hostname="shed",
        state=AgentState.HEATING,
        heat_w=None,
        heat_provenance=Provenance.ESTIMATE,
        temperatures={"cpu": None, "gpu0": 61.0},
    )
    again = AgentStatus.model_validate_json(status.model_dump_json())
    assert again.heat_w is None
    assert again.heat_provenance is Provenance.ESTIMATE
    assert again.temperatures == {"cpu": None, "gpu0": 61.0}


def test_profile_paths_are_under_the_profile(tmp_path: Path) -> None:
    paths = discovery.Paths.for_profile(tmp_path / "p")
    assert paths.db_file.is_relative_to(tmp_path / "p")
    assert paths.token_file.parent == paths.runtime_file.parent


def test_token_is_private_and_stable(tmp_path: Path) -> None:
    paths = discovery.Paths.for_profile(tmp_path)
    paths.ensure()
    token = discovery.ensure_token(paths)
    assert len(token) >= 32
    assert stat.S_IMODE(paths.token_file.stat().st_mode) == 0o600
    assert discovery.ensure_token(paths) == token
    paths.token_file.chmod(0o644)  # loosened by hand: tightened again on next use
    discovery.ensure_token(paths)
    assert stat.S_IMODE(paths.token_file.stat().st_mode) == 0o600


def test_runtime_file_round_trip_and_garbage(tmp_path: Path) -> None:
    paths = discovery.Paths.for_profile(tmp_path)
    paths.ensure()
    assert discovery.read_runtime(paths) is None
    info = discovery.RuntimeInfo(host="127.0.0.1", port=4000, pid=42, version="0.1.0")
    discovery.write_runtime(paths, info)
    assert discovery.read_runtime(paths) == info
    assert info.base_url == "http://127.0.0.1:4000"
    paths.runtime_file.write_text("{not json")
    assert discovery.read_runtime(paths) is None

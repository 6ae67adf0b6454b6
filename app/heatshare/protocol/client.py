"""The agent's local API as Python calls: used by the app's bridge and the agent's CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import requests
from pydantic import BaseModel, ValidationError

from heatshare.protocol.energy import (
    CostsResponse,
    EnergySettings,
    PlugProbeRequest,
    PlugProbeResponse,
    PriceListImport,
    PriceListInfo,
    StatementResponse,
)
from heatshare.protocol.heating import (
    BoostRequest,
    HeatingSettings,
    HeatingStatus,
    HeatMode,
    ModeRequest,
    RoomProbeRequest,
    RoomProbeResponse,
    SetpointRequest,
)
from heatshare.protocol.local_api import (
    AgentStatus,
    EarningsResponse,
    EnrolLocal,
    ErrorResponse,
    HistoryResponse,
    JobsResponse,
    NetworkStatus,
    Ok,
    PauseRequest,
    SeriesList,
    Settings,
    SettingsPatch,
)

M = TypeVar("M", bound=BaseModel)


class AgentUnreachable(Exception):  # noqa: N818 - names a state the app shows, not a fault
    """No agent answered at the address (not running, wrong port, network down)."""


class AgentError(Exception):
    """The agent answered with an error; ``str(exc)`` is a sentence fit to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AgentClient:
    """A thin, typed client. Thread-safe enough for one caller thread at a time."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = (min(2.0, timeout_s), timeout_s)
        self._session = session or requests.Session()
        self._session.trust_env = False  # a proxy must never see the loopback token
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()

    def _call(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        params: dict[str, Any] | None = None,
        body: BaseModel | None = None,
        timeout_s: float | None = None,
    ) -> M:
        resp = self._request(method, path, params=params, body=body, timeout_s=timeout_s)
        try:
            return model.model_validate_json(resp.content)
        except ValidationError as exc:
            raise AgentError(
                resp.status_code, f"The agent sent an answer not understood: {exc}"
            ) from exc

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: BaseModel | None = None,
        timeout_s: float | None = None,
    ) -> requests.Response:
        timeout = self._timeout if timeout_s is None else (self._timeout[0], timeout_s)
        try:
            resp = self._session.request(
                method,
                self.base_url + path,
                params=params,
                data=body.model_dump_json(exclude_unset=True) if body is not None else None,
                headers={"Content-Type": "application/json"} if body is not None else None,
                timeout=timeout,
            )
        except requests.RequestException as exc:
            raise AgentUnreachable(f"No agent answers at {self.base_url}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                message = ErrorResponse.model_validate_json(resp.content).error
            except ValidationError:
                message = f"The agent answered {resp.status_code} {resp.reason}"
            raise AgentError(resp.status_code, message)
        return resp

    def status(self) -> AgentStatus:
        return self._call("GET", "/v1/status", AgentStatus)

    def series(self) -> SeriesList:
        return self._call("GET", "/v1/series", SeriesList)

    def history(
        self,
        series: Sequence[str],
        start: float,
        end: float,
        *,
        max_points: int | None = None,
    ) -> HistoryResponse:
        params: dict[str, Any] = {"series": ",".join(series), "start": start, "end": end}
        if max_points is not None:
            params["max_points"] = max_points
        return self._call("GET", "/v1/history", HistoryResponse, params=params)

    def settings(self) -> Settings:
        return self._call("GET", "/v1/settings", Settings)

    def update_settings(self, patch: SettingsPatch) -> Settings:
        return self._call("PATCH", "/v1/settings", Settings, body=patch)

    def pause(self, duration_s: int | None = None) -> AgentStatus:
        return self._call(
            "POST", "/v1/pause", AgentStatus, body=PauseRequest(duration_s=duration_s)
        )

    def resume(self) -> AgentStatus:
        return self._call("POST", "/v1/resume", AgentStatus)

    def shutdown(self) -> Ok:
        return self._call("POST", "/v1/shutdown", Ok)

    # --- the compute network ---------------------------------------------------------------

    def network(self) -> NetworkStatus:
        return self._call("GET", "/v1/network", NetworkStatus)

    def enrol(self, url: str, code: str) -> NetworkStatus:
        """Joins a network; the agent checks the code with the coordinator on the spot."""
        # The agent waits on the coordinator (connect and answer), so allow it that long.
        return self._call(
            "POST",
            "/v1/network/enrol",
            NetworkStatus,
            body=EnrolLocal(url=url, code=code),
            timeout_s=30.0,
        )

    def start_demo(self) -> NetworkStatus:
        """Starts the embedded demo network and joins it."""
        return self._call("POST", "/v1/network/demo", NetworkStatus, timeout_s=60.0)

    def leave_network(self) -> NetworkStatus:
        return self._call("POST", "/v1/network/leave", NetworkStatus)

    def jobs(self, limit: int = 50) -> JobsResponse:
        return self._call("GET", "/v1/jobs", JobsResponse, params={"limit": limit})

    def job_log(self, attempt_id: int) -> str:
        """The job's output (the last 256 KiB), as text."""
        return self._request("GET", f"/v1/jobs/{attempt_id}/log").text

    def job_file(self, attempt_id: int, name: str) -> bytes:
        """One of the job's output files, by its name in :attr:`JobInfo.files`."""
        return self._request("GET", f"/v1/jobs/{attempt_id}/files", params={"name": name}).content

    def earnings(self) -> EarningsResponse:
        return self._call("GET", "/v1/earnings", EarningsResponse)

    # --- heating ---------------------------------------------------------------------------

    def heating(self) -> HeatingStatus:
        return self._call("GET", "/v1/heating", HeatingStatus)

    def heating_settings(self) -> HeatingSettings:
        """The stored heating settings; tokens and passwords come back as None."""
        return self._call("GET", "/v1/heating/settings", HeatingSettings)

    def put_heating_settings(self, settings: HeatingSettings) -> HeatingSettings:
        """Replaces the heating settings; a token or password left None keeps the stored one."""
        return self._call("PUT", "/v1/heating/settings", HeatingSettings, body=settings)

    def set_mode(self, mode: HeatMode) -> HeatingStatus:
        return self._call("POST", "/v1/heating/mode", HeatingStatus, body=ModeRequest(mode=mode))

    def boost(self, minutes: int = 60) -> HeatingStatus:
        """Full heat for ``minutes`` (within the safety limits); 0 ends a boost."""
        return self._call(
            "POST", "/v1/heating/boost", HeatingStatus, body=BoostRequest(minutes=minutes)
        )

    def setpoint(self, request: SetpointRequest) -> HeatingStatus:
        return self._call("POST", "/v1/heating/setpoint", HeatingStatus, body=request)

    def room_probe(self, request: RoomProbeRequest) -> RoomProbeResponse:
        """Tries a room thermometer (and lists Home Assistant's sensors) before it is saved."""
        return self._call(
            "POST", "/v1/heating/room-probe", RoomProbeResponse, body=request, timeout_s=15.0
        )

    # --- energy: plug, tariff, costs, statements -------------------------------------------

    def energy_settings(self) -> EnergySettings:
        """The stored energy settings; the plug's password comes back as None."""
        return self._call("GET", "/v1/energy/settings", EnergySettings)

    def put_energy_settings(self, settings: EnergySettings) -> EnergySettings:
        return self._call("PUT", "/v1/energy/settings", EnergySettings, body=settings)

    def plug_probe(self, request: PlugProbeRequest) -> PlugProbeResponse:
        return self._call(
            "POST", "/v1/energy/plug-probe", PlugProbeResponse, body=request, timeout_s=10.0
        )

    def import_prices(self, request: PriceListImport) -> PriceListInfo:
        return self._call("POST", "/v1/energy/prices", PriceListInfo, body=request)

    def price_list(self) -> PriceListInfo:
        return self._call("GET", "/v1/energy/prices", PriceListInfo)

    def costs(self) -> CostsResponse:
        return self._call("GET", "/v1/energy/costs", CostsResponse)

    def statement(self, month: str) -> StatementResponse:
        return self._call("GET", "/v1/energy/statement", StatementResponse, params={"month": month})

    def statement_csv(self, month: str) -> str:
        return self._request(
            "GET", "/v1/energy/statement", params={"month": month, "format": "csv"}
        ).text

"""The heating in the tray, the dashboard and the chart: mode switch, boost, ±0.5 °C, the room in
the tooltip, safety-stop notices once per stop, the room and its target on the temperature plot.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from appfactory import AppFactory
from fake_agent import FakeAgentClient, demo_heating, gpu_hot_event, heating_summary
from PySide6.QtWidgets import QApplication, QMenu
from pytestqt.qtbot import QtBot

from heatshare.domain.readings import Provenance
from heatshare.gui import tray_menu
from heatshare.gui.dashboard import Dashboard
from heatshare.gui.icons import AppIcons
from heatshare.gui.notifications import Notice, SafetyNotices
from heatshare.gui.tray import TrayController
from heatshare.protocol.heating import HeatingSummary, HeatMode, SafetyEvent, SafetyRule
from heatshare.protocol.local_api import AgentState, AgentStatus

NOW = datetime(2026, 1, 12, 18, 0, tzinfo=UTC)


def summary(**kw: Any) -> HeatingSummary:
    base: dict[str, Any] = {
        "mode": HeatMode.HEAT_FIRST,
        "room_c": 20.4,
        "setpoint_c": 21.0,
        "computing": True,
        "reason": "Heating: the room is 0.6 °C below its 21.0 °C target.",
    }
    return HeatingSummary.model_validate(base | kw)


def status(heating: HeatingSummary | None = None, **kw: Any) -> AgentStatus:
    fields: dict[str, Any] = {
        "protocol_version": 1,
        "agent_version": "0.1.0",
        "hostname": "study-pc",
        "state": AgentState.HEATING,
        "heat_w": 182.0,
        "heat_provenance": Provenance.ENERGY_COUNTER,
        "hottest_name": "GPU 0",
        "hottest_c": 71.0,
        "heating": heating if heating is not None else summary(),
    }
    return AgentStatus.model_validate(fields | kw)


# -- the menu and tooltip, as pure functions ---------------------------------------------------


def test_menu_has_mode_switch_boost_and_nudges() -> None:
    entries = tray_menu.tray_menu_entries(status(), reachable=True)
    keys = [e.key for e in entries if not e.separator]
    assert keys == [
        tray_menu.INFO,
        tray_menu.ROOM,
        tray_menu.OPEN,
        tray_menu.PAUSE,
        tray_menu.MODE,
        tray_menu.BOOST,
        tray_menu.WARMER,
        tray_menu.COOLER,
        tray_menu.QUIT,
        tray_menu.QUIT_AND_STOP,
    ]
    by_key = {e.key: e for e in entries}
    assert by_key[tray_menu.ROOM].text == "Room 20.4 °C → 21.0 °C"
    assert not by_key[tray_menu.ROOM].enabled
    mode = by_key[tray_menu.MODE]
    assert mode.text == "Mode: Heat first"
    assert [(c.text, c.checked) for c in mode.children] == [
        ("Heat first", True),
        ("Earn first", False),
        ("Quiet", False),
        ("Off", False),
    ]
    assert by_key[tray_menu.BOOST].text == "Boost for 1 hour"
    assert by_key[tray_menu.WARMER].text == "Warmer (+0.5 °C)"
    assert by_key[tray_menu.COOLER].text == "Cooler (−0.5 °C)"


def test_menu_while_boosting_in_fahrenheit_and_without_a_target() -> None:
    until = datetime.now(UTC) + timedelta(minutes=40)
    h = summary(boost_until=until, setpoint_c=None)
    entries = tray_menu.tray_menu_entries(status(h), reachable=True, fahrenheit=True)
    by_key = {e.key: e for e in entries}
    assert tray_menu.BOOST not in by_key
    assert by_key[tray_menu.END_BOOST].text.startswith("End boost (until ")
    assert by_key[tray_menu.MODE].text.startswith("Mode: Boost until ")
    assert by_key[tray_menu.WARMER].text == "Warmer (+1 °F)"
    assert not by_key[tray_menu.WARMER].enabled  # no target to nudge
    assert by_key[tray_menu.ROOM].text == "Room 68.7 °F"


def test_commands_are_disabled_while_the_agent_is_away() -> None:
    entries = tray_menu.tray_menu_entries(status(), reachable=False)
    by_key = {e.key: e for e in entries}
    assert tray_menu.ROOM not in by_key  # what it last knew is not the room now
    assert not by_key[tray_menu.BOOST].enabled
    assert not any(c.enabled for c in by_key[tray_menu.MODE].children)


def test_an_agent_without_a_thermostat_keeps_the_old_menu() -> None:
    entries = tray_menu.tray_menu_entries(status().model_copy(update={"heating": None}), True)
    assert [e.key for e in entries if not e.separator] == [
        tray_menu.INFO,
        tray_menu.OPEN,
        tray_menu.PAUSE,
        tray_menu.QUIT,
        tray_menu.QUIT_AND_STOP,
    ]


def test_tooltip_shows_the_room_and_a_safety_stop_within_windows_limit() -> None:
    text = tray_menu.tray_tooltip(status(), True)
    assert text.splitlines()[3] == "Room 20.4 °C → 21.0 °C"
    long_reason = (
        "Stopped for safety: GPU 0 reached 86 °C, above its 80 °C limit; it resumes once it "
        "has been below 72 °C for 2 minutes."
    )
    stopped = status(
        summary(safety_stop=True, computing=False, reason=long_reason),
        job_label="fractal #14: frame 0, tile 15 of 16",
        job_progress=0.4,
        earned_today_minor=550,
        earnings_currency="CRD",
    )
    text = tray_menu.tray_tooltip(stopped, True)
    assert len(text) <= tray_menu.TOOLTIP_MAX
    line = text.splitlines()[3]
    assert line.startswith("Stopped for safety: GPU 0 reached 86 °C") and line.endswith("…")
    assert (
        tray_menu.tray_tooltip(status(summary(safety_stop=True, reason="On battery.")), True)[
            len("Heatshare · Heating\nHeat: 182 W\nHottest: 71 °C (GPU 0)\n") :
        ]
        == "Stopped for safety: On battery."
    )
    assert text.endswith("Earned today: 5.50 credits")  # the other lines keep their room


# -- the controller ----------------------------------------------------------------------------


@pytest.fixture
def tray(qapp: QApplication, qtbot: QtBot) -> Iterator[TrayController]:
    controller = TrayController(AppIcons.load())
    yield controller
    controller.close()


def find_action(menu: QMenu, key: str) -> Any:
    for action in menu.actions():
        if action.data() == key:
            return action
        sub = action.menu()
        if isinstance(sub, QMenu):
            found = find_action(sub, key)
            if found is not None:
                return found
    return None


def test_mode_entries_emit_once_and_show_the_mode_in_force(
    tray: TrayController, qtbot: QtBot
) -> None:
    tray.update(status(), True)
    tray.menu.aboutToShow.emit()
    quiet = find_action(tray.menu, tray_menu.MODE_PREFIX + "quiet")
    heat_first = find_action(tray.menu, tray_menu.MODE_PREFIX + "heat_first")
    assert heat_first.isChecked() and not quiet.isChecked()
    got: list[object] = []
    tray.mode_requested.connect(got.append)
    quiet.trigger()
    assert got == [HeatMode.QUIET]  # once: the submenu's click reaches the top menu only
    # Rebuilt on each opening: the old submenu goes with it.
    subs = len(tray._submenus)
    tray.menu.aboutToShow.emit()
    assert len(tray._submenus) == subs == 1


@pytest.mark.parametrize(
    ("key", "fahrenheit", "signal", "args"),
    [
        (tray_menu.BOOST, False, "boost_requested", [60]),
        (tray_menu.WARMER, False, "nudge_requested", [0.5]),
        (tray_menu.COOLER, False, "nudge_requested", [-0.5]),
        (tray_menu.WARMER, True, "nudge_requested", [pytest.approx(5 / 9)]),
    ],
)
def test_boost_and_nudges_emit_their_signal(
    tray: TrayController, qtbot: QtBot, key: str, fahrenheit: bool, signal: str, args: list[Any]
) -> None:
    tray.update(status(), True, fahrenheit=fahrenheit)
    tray.menu.aboutToShow.emit()
    with qtbot.waitSignal(getattr(tray, signal), timeout=1000) as blocker:
        find_action(tray.menu, key).trigger()
    assert blocker.args == args


def test_an_open_menu_follows_a_mode_change_in_place(tray: TrayController) -> None:
    tray.update(status(), True)
    tray.menu.aboutToShow.emit()
    tray._refresh_open_menu()  # as update() does while the menu shows
    tray._status = status(summary(mode=HeatMode.OFF))
    tray._refresh_open_menu()
    assert find_action(tray.menu, tray_menu.MODE_PREFIX + "off").isChecked()
    assert not find_action(tray.menu, tray_menu.MODE_PREFIX + "heat_first").isChecked()
    assert find_action(tray.menu, tray_menu.MODE).text() == "Mode: Off"


# -- safety notices ----------------------------------------------------------------------------


def stop_event(rule: SafetyRule, since: datetime, message: str) -> SafetyEvent:
    return SafetyEvent(rule=rule, message=message, since=since)


def test_each_new_stop_is_announced_once_with_its_reason() -> None:
    notices = SafetyNotices()
    pending = gpu_hot_event(NOW)  # stops at NOW + 7 s unless it clears
    h = demo_heating(NOW, events=[pending])
    assert notices.from_status(h, NOW) == []  # in its grace period: the page shows it
    assert notices.recheck_in(h, NOW) is None
    stopped = demo_heating(NOW, events=[pending], safety_stop=True, computing=False)
    # In force from NOW + 7 s; a blip of a few seconds is not worth a notification.
    blip = NOW + timedelta(seconds=10)
    assert notices.from_status(stopped, blip) == []
    assert notices.recheck_in(stopped, blip) == pytest.approx(12.0)
    later = NOW + timedelta(seconds=22)
    assert notices.from_status(stopped, later) == [
        Notice("Heating stopped: gpu too hot", pending.message)
    ]
    assert notices.recheck_in(stopped, later) is None
    assert notices.from_status(stopped, later + timedelta(seconds=2)) == []  # not again
    battery = stop_event(SafetyRule.ON_BATTERY, later, "On battery power: computing stops.")
    both = stopped.model_copy(update={"events": [pending, battery]})
    assert notices.from_status(both, later + timedelta(seconds=15)) == [
        Notice("Heating stopped: on battery", battery.message)
    ]
    cleared = demo_heating(NOW)
    assert notices.from_status(cleared, later) == []
    again = pending.model_copy(
        update={"since": later + timedelta(minutes=5), "stops_at": later + timedelta(minutes=5)}
    )
    tripped = stopped.model_copy(update={"events": [again]})
    assert notices.from_status(tripped, later + timedelta(minutes=6)) == [
        Notice("Heating stopped: gpu too hot", pending.message)
    ]


def test_the_agents_start_up_hold_is_not_announced() -> None:
    # The agent holds the work until its sensors have been read, then for its dwell.
    notices = SafetyNotices()
    hold = stop_event(
        SafetyRule.SENSOR_ERROR,
        NOW,
        "The sensors read well again: computing resumes in 4 seconds if they keep doing so.",
    )
    start = demo_heating(NOW, events=[hold], safety_stop=True, computing=False)
    for s in range(6):
        assert notices.from_status(start, NOW + timedelta(seconds=s)) == []
    assert notices.from_status(demo_heating(NOW), NOW + timedelta(seconds=6)) == []


def test_a_stop_known_only_from_the_summary_is_announced_once() -> None:
    notices = SafetyNotices()
    stop = summary(safety_stop=True, computing=False, reason="Stopped for safety: on battery.")
    assert notices.wants_details(stop, summary())
    assert not notices.wants_details(stop, stop)
    assert notices.from_summary(stop) == Notice(
        "Heating stopped for safety", "Stopped for safety: on battery."
    )
    assert notices.from_summary(stop) is None
    assert notices.from_summary(summary()) is None  # over
    assert notices.from_summary(stop) is not None  # a new stop


def test_the_app_announces_a_safety_stop_in_the_tray_and_on_the_dashboard(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app(tray=True)  # the offscreen platform has no tray: a real one, with no icon
    tray = app.tray
    assert isinstance(tray, TrayController)
    shown: list[tuple[str, str]] = []
    tray.notified.connect(lambda title, message: shown.append((title, message)))
    assert not fake.called("heating")
    hot = gpu_hot_event(datetime.now(UTC)).model_copy(
        update={"stops_at": datetime.now(UTC) - timedelta(seconds=10)}
    )
    fake.heating_model = demo_heating(
        datetime.now(UTC),
        events=[hot],
        safety_stop=True,
        computing=False,
        reason="Stopped for safety: GPU 0 is too hot.",
    )
    fake.status_model = fake.status_model.model_copy(
        update={"heating": heating_summary(fake.heating_model)}
    )
    qtbot.waitUntil(lambda: bool(fake.called("heating")), timeout=5000)
    assert not shown  # held for 10 s or so: not yet
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    assert shown == [("Heating stopped: gpu too hot", hot.message)]
    dash = app.window.dashboard
    qtbot.waitUntil(dash.safety_banner.isVisible, timeout=3000)
    assert "Stopped for safety: GPU 0 is too hot." in dash.safety_banner.label.text()
    assert "Room 20.4 °C → 21.0 °C" in dash.heating_line.text()
    # Asked when the stop began, then once it had held 15 s; never on each status poll (the
    # app's recheck timer is a precise one: a coarse one woke early and asked a third time).
    asked = len(fake.called("heating"))
    assert asked == 2
    qtbot.wait(2500)  # more polls of the same stop
    assert len(shown) == 1
    assert len(fake.called("heating")) == asked


# -- dashboard and chart -----------------------------------------------------------------------


def test_dashboard_heating_line_in_the_users_unit(qtbot: QtBot) -> None:
    d = Dashboard()
    qtbot.addWidget(d)
    d.set_status(status())
    assert d.heating_line.text() == (
        "Room 20.4 °C → 21.0 °C · Heat first — Heating: the room is 0.6 °C below its 21.0 °C "
        "target."
    )
    assert not d.safety_banner.isVisibleTo(d)
    d.set_preferences("F", None)
    assert d.heating_line.text().startswith("Room 68.7 °F → 69.8 °F · Heat first")
    d.set_status(status().model_copy(update={"heating": None}))
    assert d.heating_line.isHidden()


def test_dashboard_heating_line_names_the_mode_once(qtbot: QtBot) -> None:
    d = Dashboard()
    qtbot.addWidget(d)
    reason = "Earn first: computing whenever there is work, within the limits."
    d.set_status(status(summary(mode=HeatMode.EARN_FIRST, room_c=None, reason=reason)))
    assert d.heating_line.text() == (
        "Room no reading → 21.0 °C · Earn first — computing whenever there is work, within the "
        "limits."
    )


def test_chart_draws_the_room_and_its_target_live_in_the_users_unit(qtbot: QtBot) -> None:
    from heatshare.gui.bridge import HistoryResult
    from heatshare.gui.charts import ROOM_TEMP, SETPOINT, ChartPanel
    from heatshare.protocol.local_api import HistoryResponse, SeriesData

    t0 = NOW.timestamp()
    clock = [t0]
    asked: list[list[str]] = []

    def request(series: Any, start: float, end: float) -> int:
        asked.append(list(series))
        return len(asked)

    panel = ChartPanel(request, clock=lambda: clock[0])
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    panel.set_active(True)
    try:
        panel.set_range(300)
        panel.set_gpus([])
        assert ROOM_TEMP in asked[-1] and SETPOINT in asked[-1]
        ts = [t0 - 3, t0 - 2, t0 - 1]
        panel.load_history(
            HistoryResult(
                len(asked),
                HistoryResponse(
                    start=t0 - 300,
                    end=t0,
                    resolution_s=1,
                    series=[
                        SeriesData(name=ROOM_TEMP, unit="°C", t=ts, mean=[20.0, 20.1, None]),
                        SeriesData(name=SETPOINT, unit="°C", t=ts, mean=[21.0, 21.0, 21.0]),
                    ],
                ),
            )
        )
        assert len(panel.buffers[ROOM_TEMP]) == 2  # the unknown reading is a gap, not a 0
        for i in range(2):
            clock[0] = t0 + 1 + i
            panel.append_status(
                status(
                    summary(room_c=20.2 + i / 10, setpoint_c=21.5),
                    sample_time=datetime.fromtimestamp(clock[0], UTC),
                )
            )
        assert list(panel.buffers[SETPOINT].v)[-2:] == [21.5, 21.5]
        panel.set_temperature_unit("F")
        _, y = panel.curves[ROOM_TEMP].getData()
        assert y[-1] == pytest.approx(20.3 * 9 / 5 + 32)
        assert panel.plots["room"].titleLabel.text == "Room and target"
        assert "no sensor" in panel.plots["temp"].titleLabel.text  # no component reading
        panel.set_range(3600)  # an agent without a thermostat: the room's plot folds away
        panel.load_history(
            HistoryResult(
                len(asked), HistoryResponse(start=t0 - 3600, end=t0, resolution_s=1, series=[])
            )
        )
        assert panel.plots["room"].titleLabel.text == "Room and target: no room thermometer"
    finally:
        panel.stop()

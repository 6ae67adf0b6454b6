"""The Heating page: the thermostat's state and mode, its settings, the room thermometer's set-up.

The whole app runs (composition root, bridge, worker threads, pages); the agent is a fake at
one seam, the client (tests/gui/fake_agent.py), answering as the agreed heating API does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from appfactory import AppFactory
from fake_agent import (
    HA_NO_TOKEN,
    HA_UNREACHABLE,
    STORED_TOKEN,
    FakeAgentClient,
    demo_heating,
    demo_heating_settings,
    gpu_hot_event,
    window_open_event,
)
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from heatshare.gui.app import HeatshareApp
from heatshare.gui.heating_page import (
    TAB_LIMITS,
    TAB_ROOM,
    TAB_SCHEDULE,
    HeatingPage,
    ha_url_problem,
)
from heatshare.gui.window import DASHBOARD, HEATING
from heatshare.protocol.client import AgentError
from heatshare.protocol.heating import (
    HeatingSettings,
    HeatMode,
    MqttSource,
    RoomProbeResponse,
    RoomSourceKind,
    SetpointRequest,
)


def open_heating(qtbot: QtBot, app: HeatshareApp) -> HeatingPage:
    app.window.show_page(HEATING)
    page = app.window.heating_page
    assert page is not None
    qtbot.waitUntil(lambda: page.status is not None and page.saved is not None, timeout=5000)
    return page


def sent_settings(fake: FakeAgentClient) -> list[HeatingSettings]:
    return [args[0] for args in fake.called("put_heating_settings")]


# -- state and actions -------------------------------------------------------------------------


def test_page_shows_room_target_demand_mode_and_why(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    qtbot.wait(200)
    assert not fake.called("heating")  # nobody looks at the page: nothing asked
    assert not fake.called("heating_settings")
    assert app.window.heating_page is None  # nor built: it costs the start a tenth
    page = open_heating(qtbot, app)
    assert page.room_card.value.text() == "20.4 °C"
    detail = page.room_card.detail.text().replace("\u00a0", " ")  # no break inside a part
    assert detail.startswith("Home Assistant · measured ")
    assert detail.endswith(" ago · outside 6.1 °C")
    assert page.target_card.value.text() == "21.0 °C"
    assert page.target_card.detail.text() == "comfort until 22:30"
    assert page.heat_card.value.text() == "64 %"
    assert page.heat_card.detail.text() == "GPU capped at 180 W"
    assert page.mode_buttons[HeatMode.HEAT_FIRST].isChecked()
    assert page.reason.text() == "Heating: the room is 0.6 °C below its 21.0 °C target."
    assert page.comfort_c.text() == "21.0 °C"
    assert page.eco_c.text() == "17.5 °C"
    assert page.source.currentText() == "Home Assistant"
    assert page.ha_entity.currentData() == "sensor.study_temperature"
    assert page.ha_token.text() == ""  # the agent never sends it back…
    assert page.ha_token.placeholderText() == "stored; leave empty to keep it"  # …and says so
    assert not page.save_button.isEnabled()  # nothing changed yet
    assert not page.dirty()
    assert page.ha_link.text() == (
        "This heater shows in Home Assistant (MQTT discovery): connected."
    )

    assert app.polls.heating_timer.isActive()
    polls = len(fake.called("heating"))
    qtbot.waitUntil(lambda: len(fake.called("heating")) > polls, timeout=5000)
    app.window.show_page(DASHBOARD)
    assert not app.polls.heating_timer.isActive()
    assert not page._timer.isActive()  # no countdown ticks for a page nobody sees
    assert len(fake.called("heating_settings")) == 1


def test_mode_boost_and_target_nudges_reach_the_agent(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    page = open_heating(qtbot, app)
    page.mode_buttons[HeatMode.EARN_FIRST].click()
    qtbot.waitUntil(lambda: page.status is not None and page.status.mode is HeatMode.EARN_FIRST)
    assert fake.called("set_mode") == [(HeatMode.EARN_FIRST,)]
    assert page.mode_buttons[HeatMode.EARN_FIRST].isChecked()
    assert not page.mode_buttons[HeatMode.HEAT_FIRST].isChecked()
    assert page.mode_hint.text().startswith("Computes whenever the network has work")
    # The status poll follows at once, so the dashboard and the tray say it too.
    qtbot.waitUntil(
        lambda: (
            app.bridge.last_status is not None
            and app.bridge.last_status.heating is not None
            and app.bridge.last_status.heating.mode is HeatMode.EARN_FIRST
        ),
        timeout=3000,
    )
    assert "Earn first" in app.window.dashboard.heating_line.text()

    page.boost_button.click()
    qtbot.waitUntil(lambda: page.boost_button.text().startswith("End boost ("), timeout=3000)
    assert fake.called("boost") == [(60,)]
    assert page.mode_hint.text().startswith("Boost: full heat until ")
    page.boost_button.click()
    qtbot.waitUntil(lambda: page.boost_button.text() == "Boost 1 h", timeout=3000)
    assert fake.called("boost") == [(60,), (0,)]

    assert not page.schedule_button.isVisible()
    page.warmer_button.click()
    qtbot.waitUntil(lambda: page.target_card.value.text() == "21.5 °C", timeout=3000)
    assert fake.called("setpoint") == [(SetpointRequest(delta_c=0.5),)]
    assert page.target_card.detail.text() == "your change until 22:30"
    assert page.schedule_button.isVisible()
    page.cooler_button.click()
    page.cooler_button.click()
    qtbot.waitUntil(lambda: page.target_card.value.text() == "20.5 °C", timeout=3000)
    page.schedule_button.click()
    qtbot.waitUntil(lambda: page.target_card.value.text() == "21.0 °C", timeout=3000)
    assert fake.called("setpoint")[-1] == (SetpointRequest(clear=True),)
    assert not page.schedule_button.isVisible()
    assert not page.dirty()  # acting on the heater is not editing its settings


def test_a_refused_change_says_why_on_the_page(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.heating_model = demo_heating(fake.now, setpoint_c=29.8)
    app = make_app()
    page = open_heating(qtbot, app)
    page.warmer_button.click()
    qtbot.waitUntil(page.error_banner.isVisible, timeout=3000)
    assert page.error_banner.label.text() == "A room can be asked for 5 °C to 30 °C."
    polls = len(fake.called("heating"))
    qtbot.waitUntil(lambda: len(fake.called("heating")) > polls + 1, timeout=6000)
    assert page.error_banner.isVisible()  # the next polls do not hide it before it is read


def test_fahrenheit_shows_and_nudges_in_fahrenheit_and_stores_celsius(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    page = open_heating(qtbot, app)
    page.set_temperature_unit("F")
    assert page.room_card.value.text() == "68.7 °F"
    assert page.target_card.value.text() == "69.8 °F"
    assert page.warmer_button.text() == "+1 °F"
    assert page.comfort_c.text() == "69.8 °F"
    assert page.gpu_max.text() == "176.0 °F"
    assert page.window_drop.text() == "1.8 °F"  # a difference: no 32 °F offset
    assert not page.dirty()  # shown in °F and back: the stored °C are untouched
    page.warmer_button.click()
    qtbot.waitUntil(lambda: bool(fake.called("setpoint")), timeout=3000)
    (request,) = fake.called("setpoint")[0]
    assert request.delta_c == pytest.approx(5 / 9)
    page.comfort_c.setValue(71.0)
    assert page.comfort_c.c() == pytest.approx(21.67)
    assert page.save_button.isEnabled()
    page.save_button.click()
    qtbot.waitUntil(lambda: page.form_state.text() == "Saved.", timeout=3000)
    assert sent_settings(fake)[-1].comfort_c == pytest.approx(21.67)
    assert sent_settings(fake)[-1].eco_c == 17.5  # untouched: exactly as stored


def test_missing_readings_say_not_available_and_why(qtbot: QtBot) -> None:
    now = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
    page = HeatingPage(now=lambda: now)
    qtbot.addWidget(page)
    assert page.room_card.value.text() == "not available"  # before the first answer
    assert not page.warmer_button.isEnabled()
    problem = "The room reading is 14 minutes old: heating at most 10 % until it returns."
    page.set_heating(
        demo_heating(
            now,
            room_c=None,
            room_at=None,
            outdoor_c=None,
            room_problem=problem,
            setpoint_c=None,
            setpoint_source="none",
            demand_pct=10.0,
            reason=problem,
        )
    )
    assert page.room_card.value.text() == "not available"
    assert page.room_card.note.text() == problem
    assert page.target_card.value.text() == "not available"
    assert page.target_card.detail.text() == "no target: the schedule's power levels apply"
    assert not page.warmer_button.isEnabled()
    assert not page.cooler_button.isEnabled()


def test_safety_events_count_down_their_grace_and_their_pause(qtbot: QtBot) -> None:
    clock = [datetime(2026, 1, 12, 10, 0, tzinfo=UTC)]
    page = HeatingPage(now=lambda: clock[0])
    qtbot.addWidget(page)
    page.show()
    page.set_active(True)
    now = clock[0]
    page.set_heating(
        demo_heating(
            now,
            events=[gpu_hot_event(now), window_open_event(now)],
            safety_stop=True,
            computing=False,
            reason="Stopped for safety: a window is open.",
        )
    )
    assert page._timer.isActive()
    (pending, stopped), (_, stopped2) = page._event_banners
    assert pending.isVisible() and not stopped.isVisible()
    assert "GPU too hot" in pending.label.text()
    assert "Stops in 7 s unless it clears." in pending.label.text()
    assert stopped2.isVisible() and "Window open" in stopped2.label.text()
    assert "(in 26 min)" in stopped2.label.text()
    assert page.header_note.text() == "Stopped for safety"
    assert page.reason.property("stopped") is True

    clock[0] = now + timedelta(seconds=3)
    qtbot.waitUntil(lambda: "Stops in 4 s" in pending.label.text(), timeout=3000)
    clock[0] = now + timedelta(seconds=8)  # the grace is over: the stop is in force
    qtbot.waitUntil(stopped.isVisible, timeout=3000)
    assert not pending.isVisible()
    assert stopped.label.text().endswith("<br>Stopped.")
    assert "GPU 0 is at 81 °C" in stopped.label.text()
    # Where the reason is the event's own sentence, the banner does not say it again.
    page.set_heating(
        demo_heating(now, events=[gpu_hot_event(now)], reason=gpu_hot_event(now).message)
    )
    assert stopped.label.text() == "<b>GPU too hot</b><br>Stopped."

    page.set_heating(demo_heating(now))  # cleared
    assert not any(b.isVisible() for pair in page._event_banners for b in pair)
    page.set_active(False)
    assert not page._timer.isActive()
    page.stop()


# -- the settings form -----------------------------------------------------------------------


def test_save_sends_the_form_and_never_asks_for_the_stored_token(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    page = open_heating(qtbot, app)
    page.comfort_c.setValue(21.5)
    page.schedule.copy_weekend.click()  # unchanged: Sunday is Saturday already
    page.tabs.setCurrentIndex(TAB_LIMITS)
    page.grace_s.setValue(30)
    page.apps.setText("blender, obs")
    page.apps.textEdited.emit("blender, obs")
    assert page.save_button.isEnabled() and page.revert_button.isEnabled()
    page.save_button.click()
    qtbot.waitUntil(lambda: page.form_state.text() == "Saved.", timeout=3000)
    (sent,) = sent_settings(fake)
    assert sent.comfort_c == 21.5
    assert sent.limits.grace_s == 30
    assert sent.limits.exclusive_apps == ["blender", "obs"]
    assert sent.mode is HeatMode.HEAT_FIRST
    assert sent.home_assistant is not None and sent.home_assistant.token is None
    stored = fake.heating_settings_model.home_assistant
    assert stored is not None and stored.token == STORED_TOKEN  # kept by the agent
    assert not page.save_button.isEnabled()
    assert not page.dirty()


def test_revert_brings_back_the_stored_settings(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    page = open_heating(qtbot, app)
    page.eco_c.setValue(16.0)
    page.schedule.grid.set_cells(range(7), range(48), True)
    page.schedule.changed.emit()
    assert page.dirty()
    page.revert_button.click()
    assert page.eco_c.c() == 17.5
    assert page.schedule.periods() == demo_heating_settings().periods
    assert not page.dirty()
    assert not page.save_button.isEnabled()


@pytest.mark.parametrize(
    ("edit", "tab", "sentence"),
    [
        (
            lambda p: p.eco_c.setValue(22.0),
            TAB_SCHEDULE,
            "The eco temperature must not be above the comfort temperature: lower eco to "
            "21.0 °C or less.",
        ),
        (
            lambda p: p.gpu_resume.setValue(85.0),
            TAB_LIMITS,
            "The GPU must resume below its limit: resume below 80.0 °C or raise the limit.",
        ),
        (
            lambda p: p.cpu_max.setValue(70.0) or p.cpu_resume.setValue(75.0),
            TAB_LIMITS,
            "The CPU must resume below its limit: resume below 70.0 °C or raise the limit.",
        ),
        (
            lambda p: p.ha_url.setText("homeassistant.local:8123"),
            TAB_ROOM,
            "Home Assistant's address starts with http:// or https://.",
        ),
        (
            lambda p: p.source.setCurrentIndex(2),
            TAB_ROOM,
            "Enter the MQTT broker's address, for example broker.local or 192.168.1.5.",
        ),
        (
            lambda p: (
                p.source.setCurrentIndex(2),
                p.mqtt_host.setText("broker.local"),
                p.mqtt_topic.setText("zigbee2mqtt/#"),
            ),
            TAB_ROOM,
            "The topic names one thermometer: no # or + wildcards.",
        ),
        (
            lambda p: p.apps.setText(", ".join(f"app{i}" for i in range(51))),
            TAB_LIMITS,
            "At most 50 programs can pause the heater.",
        ),
        (
            lambda p: p.season_start.setDate(p.season_end.date()),
            3,
            "The heating season must end on another day than it starts.",
        ),
    ],
    ids=["eco", "gpu", "cpu", "ha-url", "mqtt-host", "mqtt-topic", "apps", "season"],
)
def test_every_field_problem_gets_a_sentence_and_its_tab(
    qtbot: QtBot,
    make_app: AppFactory,
    fake: FakeAgentClient,
    edit: Callable[[HeatingPage], object],
    tab: int,
    sentence: str,
) -> None:
    app = make_app()
    page = open_heating(qtbot, app)
    edit(page)
    page._form_edited()
    assert page.save_button.isEnabled()  # a change, even a wrong one, can be saved or fixed
    page.save_button.click()
    assert page.form_error.isVisible()
    assert page.form_error.text() == sentence
    assert page.tabs.currentIndex() == tab
    assert not fake.called("put_heating_settings")


def test_the_agents_refusal_is_shown_as_it_said_it(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.settings_error = AgentError(422, HA_NO_TOKEN)
    app = make_app()
    page = open_heating(qtbot, app)
    page.comfort_c.setValue(22.0)
    page.save_button.click()
    qtbot.waitUntil(page.form_error.isVisible, timeout=3000)
    assert page.form_error.text() == HA_NO_TOKEN
    assert page.save_button.isEnabled()  # fix it and try again
    assert page.form_state.text() == ""


def test_a_new_home_assistant_source_needs_a_token_first(qtbot: QtBot) -> None:
    page = HeatingPage()
    qtbot.addWidget(page)
    page.set_settings(HeatingSettings())  # no thermometer yet
    page.source.setCurrentIndex(1)
    assert page.ha_token.placeholderText().startswith("a long-lived access token")
    page.ha_url.setText("http://homeassistant.local:8123")
    page.find_sensors()
    assert page.probe_label.text().startswith("Paste a long-lived access token")
    page.save()
    assert page.form_error.text().startswith("Paste a long-lived access token")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "Enter Home Assistant's address"),
        ("homeassistant.local", "Home Assistant's address starts with http"),
        ("http://", "Home Assistant's address needs a server name"),
        ("http://home assistant:8123", "Home Assistant's address has no spaces"),
        ("http://homeassistant.local:8123", None),
        ("https://ha.example.org", None),
    ],
)
def test_home_assistant_address_check(url: str, problem: str | None) -> None:
    found = ha_url_problem(url)
    assert (found is None) if problem is None else (found or "").startswith(problem)


# -- the room thermometer's set-up -------------------------------------------------------------


def test_find_sensors_fills_the_picker_and_test_shows_a_live_reading(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.probe_gate = threading.Event()
    app = make_app()
    page = open_heating(qtbot, app)
    page.tabs.setCurrentIndex(TAB_ROOM)
    page.find_button.click()
    assert page.probe_label.text() == "Asking Home Assistant for its sensors…"
    assert not page.find_button.isEnabled() and not page.test_button.isEnabled()
    fake.probe_gate.set()
    qtbot.waitUntil(lambda: page.probing is None, timeout=3000)
    (request,) = fake.called("room_probe")[0]
    assert request.home_assistant.entity_id is None  # asking for the list
    assert request.home_assistant.token is None  # the stored one, used by the agent
    assert page.probe_label.text() == (
        "Home Assistant lists 3 temperature sensors: choose the room's, then Test."
    )
    items = [page.ha_entity.itemText(i) for i in range(page.ha_entity.count())]
    assert items[0] == "Study temperature — 20.4 °C (sensor.study_temperature)"
    assert page.ha_entity.currentData() == "sensor.study_temperature"  # the choice kept
    assert page.ha_outdoor.currentData() == "sensor.outdoor_temperature"
    assert page.ha_outdoor.itemText(0) == "None"
    # Weather entities: outdoors only (their state is a word; the agent reads the temperature).
    outdoor_items = [page.ha_outdoor.itemData(i) for i in range(page.ha_outdoor.count())]
    assert "weather.forecast_home" in outdoor_items
    assert "weather.forecast_home" not in [
        page.ha_entity.itemData(i) for i in range(page.ha_entity.count())
    ]

    page.ha_entity.setCurrentIndex(1)
    page.test_button.click()
    qtbot.waitUntil(lambda: page.probe_label.text().startswith("Reading now"), timeout=3000)
    assert page.probe_label.text() == ("Reading now: 21.2 °C · outside 6.1 °C. Save to use it.")
    assert page.dirty()  # a new sensor chosen: Save sends it
    page.save_button.click()
    qtbot.waitUntil(lambda: page.form_state.text() == "Saved.", timeout=3000)
    ha = sent_settings(fake)[-1].home_assistant
    assert ha is not None and ha.entity_id == "sensor.living_room_temperature"


def test_a_thermometer_that_does_not_answer_shows_the_agents_sentence(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.probe_outcome = RoomProbeResponse(ok=False, error=HA_UNREACHABLE)
    app = make_app()
    page = open_heating(qtbot, app)
    page.tabs.setCurrentIndex(TAB_ROOM)
    page.test_button.click()
    qtbot.waitUntil(lambda: page.probing is None, timeout=3000)
    assert page.probe_label.text() == HA_UNREACHABLE
    assert "#c62828" in page.probe_label.styleSheet()
    fake.probe_outcome = AgentError(422, "Give the Home Assistant address and token to test.")
    page.test_button.click()
    qtbot.waitUntil(lambda: page.probing is None, timeout=3000)
    assert page.probe_label.text() == "Give the Home Assistant address and token to test."


def test_an_mqtt_thermometer_is_tested_then_saved(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app()
    page = open_heating(qtbot, app)
    page.tabs.setCurrentIndex(TAB_ROOM)
    page.source.setCurrentIndex(2)
    assert page.mqtt_field.text() == "temperature"  # Zigbee2MQTT's field, as a start
    page.mqtt_host.setText("broker.local")
    page.mqtt_topic.setText("zigbee2mqtt/study_thermometer")
    page.mqtt_user.setText("heatshare")
    page.mqtt_password.setText("s3cret")
    page.test_button.click()
    qtbot.waitUntil(lambda: page.probe_label.text().startswith("Reading now"), timeout=3000)
    assert page.probe_label.text() == "Reading now: 20.6 °C. Save to use it."
    (request,) = fake.called("room_probe")[0]
    assert request.room_source is RoomSourceKind.MQTT
    assert request.mqtt == MqttSource(
        host="broker.local",
        username="heatshare",
        password="s3cret",
        topic="zigbee2mqtt/study_thermometer",
    )
    page.save_button.click()
    qtbot.waitUntil(lambda: page.form_state.text() == "Saved.", timeout=3000)
    sent = sent_settings(fake)[-1]
    assert sent.room_source is RoomSourceKind.MQTT
    assert sent.mqtt is not None and sent.mqtt.password == "s3cret"
    assert page.mqtt_password.text() == ""  # written once, never shown again
    assert page.mqtt_password.placeholderText() == "stored; leave empty to keep it"
    # Without a thermometer the power levels matter; with one they are out of the way.
    assert page.comfort_power.isHidden()
    page.source.setCurrentIndex(0)
    assert not page.comfort_power.isHidden()
    assert page.test_host.isHidden()


# -- the schedule editor -----------------------------------------------------------------------


def test_schedule_grid_paints_and_clears_by_drag_and_click(qtbot: QtBot) -> None:
    from heatshare.gui.schedule_editor import ScheduleEditor, day_runs

    editor = ScheduleEditor(now=lambda: datetime(2026, 1, 12, 9, 0, tzinfo=UTC).astimezone())
    qtbot.addWidget(editor)
    editor.resize(1000, 400)
    editor.show()
    grid = editor.grid
    changes: list[None] = []
    editor.changed.connect(lambda: changes.append(None))

    def at(day: int, minute: int) -> QPoint:
        r = grid.cell_rect(day, minute // 30)
        return r.center().toPoint()

    # A drag from Monday 00:00 to Tuesday 01:00 paints both mornings' first 90 minutes.
    qtbot.mousePress(grid, Qt.MouseButton.LeftButton, pos=at(0, 0))
    qtbot.mouseMove(grid, at(1, 60))
    qtbot.mouseRelease(grid, Qt.MouseButton.LeftButton, pos=at(1, 60))
    assert day_runs(grid.week[0])[0] == (0, 90)
    assert day_runs(grid.week[1])[0] == (0, 90)
    assert day_runs(grid.week[2])[0] == (390, 510)  # Wednesday untouched
    # A click on a comfort half hour clears it.
    qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=at(0, 7 * 60))
    assert day_runs(grid.week[0]) == [(0, 90), (390, 420), (450, 510), (1020, 1350)]
    assert len(changes) == 2
    assert editor.summary.text().startswith(
        "Comfort: Mon: 00:00–01:30, 06:30–07:00, 07:30–08:30, 17:00–22:30 · "
        "Tue: 00:00–01:30, 06:30–08:30, 17:00–22:30 · Wed–Sun: 06:30–08:30, 17:00–22:30"
    )
    editor.copy_weekdays.click()
    assert all(grid.week[d] == grid.week[0] for d in range(1, 5))
    assert grid.week[5] != grid.week[0]
    # The keyboard: the cursor starts where the last click was; arrows move it, Space toggles.
    assert grid.cursor_cell == (0, 14)
    grid.setFocus()
    for key in (Qt.Key.Key_Down, Qt.Key.Key_Down, Qt.Key.Key_Right, Qt.Key.Key_Space):
        qtbot.keyClick(grid, key)
    assert grid.cursor_cell == (2, 15)
    # Wednesday (Monday's copy): 07:30–08:00 cleared, then back.
    assert day_runs(grid.week[2]) == [(0, 90), (390, 420), (480, 510), (1020, 1350)]
    qtbot.keyClick(grid, Qt.Key.Key_Space)
    assert day_runs(grid.week[2]) == [(0, 90), (390, 420), (450, 510), (1020, 1350)]
    assert len(changes) == 5


def test_schedule_keeps_minutes_that_are_not_on_half_hours() -> None:
    from heatshare.gui.schedule_editor import normalised, periods_from_week, week_from_periods
    from heatshare.protocol.heating import ComfortPeriod

    odd = [
        ComfortPeriod(day=2, start_min=6 * 60 + 10, end_min=7 * 60 + 5),
        ComfortPeriod(day=2, start_min=7 * 60 + 5, end_min=8 * 60),  # adjacent: one period
        ComfortPeriod(day=6, start_min=0, end_min=1440),
    ]
    assert periods_from_week(week_from_periods(odd)) == [
        ComfortPeriod(day=2, start_min=370, end_min=480),
        ComfortPeriod(day=6, start_min=0, end_min=1440),
    ]
    assert normalised(normalised(odd)) == normalised(odd)


def test_too_many_periods_cannot_be_saved(qtbot: QtBot) -> None:
    from heatshare.protocol.heating import ComfortPeriod

    # 200 ten-minute periods (set from the command line, say): the most the agent stores.
    periods = [
        ComfortPeriod(day=d, start_min=k * 40, end_min=k * 40 + 10)
        for d in range(7)
        for k in range(29)
    ][:200]
    page = HeatingPage()
    qtbot.addWidget(page)
    page.set_settings(HeatingSettings(periods=periods))
    assert not page.dirty()
    page.schedule.grid.set_cells(range(6, 7), range(47, 48), True)  # Sunday 23:30: one more
    page.schedule.changed.emit()
    page.save()
    assert page.form_error.text() == (
        "The schedule has 201 separate comfort periods; at most 200 can be saved. "
        "Join some of them."
    )
    assert page.tabs.currentIndex() == TAB_SCHEDULE

"""The app's side of the compute network: wizard, Jobs and Network pages, polls, --demo.

The whole app runs (composition root, bridge, worker threads, pages); the agent is a fake at
one seam, the client (tests/gui/fake_agent.py), replaying the local API's models.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from appfactory import AppFactory
from fake_agent import (
    EXPIRED_CODE,
    UNREACHABLE,
    UNTRUSTED,
    WRONG_CODE,
    FakeAgentClient,
    demo_network,
)
from pytestqt.qtbot import QtBot

from heatshare.gui.app import WIZARD_DISMISSED_KEY
from heatshare.gui.window import DASHBOARD, JOBS, NETWORK
from heatshare.gui.wizard import code_problem, url_problem
from heatshare.protocol.client import AgentError
from heatshare.protocol.local_api import JobPhase, NetworkStatus

# -- the wizard ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "Enter the network's address."),
        ("heat.example.org", "The address starts with https://"),
        ("ftp://heat.example.org", "The address starts with https://"),
        ("https://", "The address needs a server name"),
        ("https://heat.example.org:99999", "The port after the colon"),
        ("https://heat example.org", "An address has no spaces"),
        ("https://heat.example.org", None),
        ("http://192.168.1.20:8470", None),
    ],
)
def test_url_check(url: str, problem: str | None) -> None:
    found = url_problem(url)
    assert (found is None) if problem is None else (found or "").startswith(problem)


@pytest.mark.parametrize(
    ("code", "ok"),
    [("", False), ("abc", False), ("7KQ2-M9XD", True), ("7KQ2 M9XD", False), ("x" * 33, False)],
)
def test_code_check(code: str, ok: bool) -> None:
    assert (code_problem(code) is None) is ok


def test_the_wizard_offers_itself_once_when_not_enrolled(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app(wizard=True)
    qtbot.waitUntil(lambda: app.wizard is not None and app.wizard.isVisible(), timeout=5000)
    wizard = app.wizard
    assert wizard is not None
    assert not wizard.join_button.isEnabled()
    wizard.url.setText("heat.example.org")
    assert wizard.url_hint.text().startswith("The address starts with https://")
    wizard.url.setText("https://heat.example.org")
    assert not wizard.url_hint.isVisibleTo(wizard)
    assert not wizard.join_button.isEnabled()  # no code yet
    wizard.code.setText("7KQ2-M9XD")
    assert wizard.join_button.isEnabled()
    wizard.later_button.click()
    qtbot.waitUntil(lambda: app.wizard is None, timeout=2000)
    assert app.ui_settings.value(WIZARD_DISMISSED_KEY, False, type=bool)
    assert not fake.called("enrol")


def test_a_dismissed_wizard_stays_away_but_the_network_page_opens_it(
    qtbot: QtBot, make_app: AppFactory
) -> None:
    first = make_app(wizard=True)
    qtbot.waitUntil(lambda: first.wizard is not None, timeout=5000)
    assert first.wizard is not None
    first.wizard.reject()
    second = make_app(wizard=True)
    qtbot.waitUntil(lambda: second.bridge.network is not None, timeout=5000)
    qtbot.wait(200)
    assert second.wizard is None
    second.window.show_page(NETWORK)
    page = second.window.network_page
    assert page.not_enrolled.isVisible()
    page.join_button.click()
    assert second.wizard is not None and second.wizard.isVisible()


@pytest.mark.parametrize(
    "error", [WRONG_CODE, EXPIRED_CODE, UNREACHABLE, UNTRUSTED], ids=lambda e: str(e)[:24]
)
def test_join_shows_the_agents_sentence_for_each_failure(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient, error: AgentError
) -> None:
    fake.enrol_outcome = error
    fake.enrol_gate = threading.Event()
    app = make_app(wizard=True)
    qtbot.waitUntil(lambda: app.wizard is not None, timeout=5000)
    wizard = app.wizard
    assert wizard is not None
    wizard.url.setText("  https://heat.example.org ")
    wizard.code.setText("7KQ2-M9XD")
    wizard.join_button.click()
    # Checking: a busy bar and a sentence, and nothing to click twice.
    assert wizard.busy_box.isVisible()
    assert wizard.busy_label.text() == "Checking the pairing code with the network…"
    assert not wizard.join_button.isEnabled()
    assert not wizard.demo_button.isEnabled()
    fake.enrol_gate.set()
    qtbot.waitUntil(wizard.error.isVisible, timeout=5000)
    assert str(error) in wizard.error_label.text()
    assert not wizard.busy_box.isVisible()
    assert wizard.join_button.isEnabled()  # fix the code and try again
    assert wizard.isVisible()
    assert fake.called("enrol") == [("https://heat.example.org", "7KQ2-M9XD")]


def test_join_that_works_closes_the_wizard_and_shows_the_jobs(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app(wizard=True)
    qtbot.waitUntil(lambda: app.wizard is not None, timeout=5000)
    wizard = app.wizard
    assert wizard is not None
    wizard.url.setText("https://heat.example.org")
    wizard.code.setText("7KQ2-M9XD")
    wizard.join_button.click()
    qtbot.waitUntil(lambda: app.wizard is None, timeout=5000)
    assert app.window.page == JOBS
    assert not app.ui_settings.value(WIZARD_DISMISSED_KEY, False, type=bool)
    assert app.bridge.network is not None and app.bridge.network.enrolled


def test_the_demo_button_starts_the_demo_and_says_credits_are_not_money(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app(wizard=True)
    qtbot.waitUntil(lambda: app.wizard is not None, timeout=5000)
    wizard = app.wizard
    assert wizard is not None
    texts = " ".join(w.text() for w in wizard.findChildren(type(wizard.busy_label)))
    assert "not money" in texts
    wizard.demo_button.click()
    qtbot.waitUntil(lambda: app.wizard is None, timeout=5000)
    assert len(fake.called("start_demo")) == 1
    assert app.window.page == JOBS


# -- --demo ----------------------------------------------------------------------------------


def test_demo_option_starts_the_demo_and_shows_jobs(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    app = make_app(demo=True, wizard=True)
    assert app.window.page == JOBS
    qtbot.waitUntil(lambda: len(fake.called("start_demo")) == 1, timeout=5000)
    qtbot.waitUntil(lambda: not app.window.jobs_page.notice.isVisible(), timeout=5000)
    assert app.wizard is None  # --demo is the choice already made


def test_demo_option_on_a_machine_already_in_the_demo_does_not_start_it_again(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.network_model = demo_network(fake.now)
    app = make_app(demo=True, wizard=True)
    qtbot.waitUntil(lambda: app.bridge.network is not None, timeout=5000)
    qtbot.waitUntil(lambda: bool(fake.called("jobs")), timeout=5000)
    assert not fake.called("start_demo")
    assert app.window.page == JOBS


def test_demo_that_fails_says_why_on_the_jobs_page(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.demo_outcome = AgentError(
        409, "This machine is enrolled in another network: leave it before starting the demo."
    )
    app = make_app(demo=True, wizard=True)
    page = app.window.jobs_page
    qtbot.waitUntil(page.banner.isVisible, timeout=5000)
    assert "leave it before starting the demo" in page.banner.label.text()


# -- the pages and their polls ---------------------------------------------------------------


def test_pages_poll_only_while_they_show(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.network_model = demo_network(fake.now)
    app = make_app(wizard=True)
    assert app.window.page == DASHBOARD
    qtbot.waitUntil(lambda: bool(fake.called("network")), timeout=5000)  # once, at connect
    # In a network, the dashboard's earnings chart (beside heat) asks every 30 s.
    qtbot.waitUntil(lambda: len(fake.called("earnings")) == 1, timeout=2000)
    assert app.polls.earnings_timer.isActive()
    assert app.polls.earnings_timer.interval() == 30_000
    qtbot.wait(300)
    assert not fake.called("jobs")
    assert len(fake.called("earnings")) == 1
    assert not app.polls.jobs_timer.isActive()

    app.window.show_page(JOBS)
    qtbot.waitUntil(lambda: len(fake.called("jobs")) == 1, timeout=2000)
    assert app.polls.jobs_timer.isActive()
    assert app.polls.jobs_timer.interval() == 2000
    assert not app.polls.network_timer.isActive()

    app.window.show_page(NETWORK)
    assert not app.polls.jobs_timer.isActive()
    assert app.polls.network_timer.interval() == 10_000
    qtbot.waitUntil(lambda: len(fake.called("earnings")) == 1, timeout=2000)

    assert not app.polls.earnings_timer.isActive()

    app.window.hide()  # closed to the tray: nothing polls for pages nobody sees
    assert not app.polls.network_timer.isActive()
    assert not app.polls.jobs_timer.isActive()
    assert app.window.network_page.chart is not None
    assert not app.window.network_page.chart._active


def test_jobs_page_shows_the_running_job_the_history_and_a_chosen_result(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.network_model = demo_network(fake.now)
    app = make_app(wizard=True)
    app.window.show_page(JOBS)
    page = app.window.jobs_page
    qtbot.waitUntil(lambda: page.jobs is not None, timeout=5000)
    assert page.current_label.text() == "fractal #14: frame 0, tile 15 of 16"
    assert page.current_phase.text() == "Running · rows 104 of 256"
    assert page.current_progress.value() == 420
    assert page.progress_text.text() == "42 %"
    assert page.elapsed.value.text() == "12 s"
    assert page.energy.value.text() == "0.6 Wh"  # 2,275 J
    assert page.earns.value.text() == "0.50 credits"

    table = page.table
    rows = [[table.item(r, c).text() for c in range(5)] for r in range(table.rowCount())]
    assert len(rows) == 1 + len(fake.jobs_model.history)
    assert rows[0][:2] == ["fractal #14: frame 0, tile 15 of 16", "Running"]
    assert rows[1][1] == "In the outbox"
    assert rows[1][3:] == ["0.50 credits when accepted", "Waiting to upload"]
    done = rows[2]
    assert done[1] == "Done" and done[3] == "0.50 credits" and done[4] == "Accepted"
    failed = next(r for r in rows if r[1] == "Failed")
    assert failed[0] == "matrix #5: 700x700 product, seed 6"
    assert failed[3] == "nothing"
    assert failed[4] == "Stopped: the job went over its memory limit (512 MiB)."

    # Nothing chosen: the recent results, as pictures; a click on one chooses its job.
    recent = [
        j for j in (*fake.jobs_model.current, *fake.jobs_model.history) if "tile.png" in j.files
    ]
    assert page.detail_title.text() == "Recent results"
    qtbot.waitUntil(
        lambda: (
            page.images.count() == len(recent)
            and all(not page.images.item(i).icon().isNull() for i in range(page.images.count()))
        ),
        timeout=10_000,
    )
    assert [page.images.item(i).toolTip() for i in range(2)] == [
        "fractal #13: frame 0, tile 14 of 16: 96 × 96 px",
        "fractal #12: frame 0, tile 13 of 16: 96 × 96 px",
    ]
    page.images.itemClicked.emit(page.images.item(1))
    assert page.selected == 13
    assert page.table.selectionModel().selectedRows()[0].row() == 2

    # The chosen job: its log, and its PNG shown as an image (fetched once, not again).
    qtbot.waitUntil(lambda: "rows 8-15 done" in page.log_view.toPlainText(), timeout=5000)
    qtbot.waitUntil(
        lambda: page.images.count() == 1 and not page.images.item(0).icon().isNull(),
        timeout=10_000,
    )
    assert page.images.item(0).toolTip() == "tile.png: 96 × 96 px"
    assert "tile.json" in page.detail_note.text()
    fetched = fake.called("job_file")
    assert len(fetched) == len(set(fetched)) == len(recent)
    assert all(name == "tile.png" for _, name in fetched)  # the PNGs only

    # The next polls keep the choice; a finished job's log is not fetched again.
    logs = len(fake.called("job_log"))
    polls = len(fake.called("jobs"))
    qtbot.waitUntil(lambda: len(fake.called("jobs")) >= polls + 1, timeout=5000)
    qtbot.wait(100)
    assert page.selected == 13
    assert len(fake.called("job_log")) == logs
    assert fake.called("job_file") == fetched

    page.all_button.click()  # back to the recent results
    assert page.selected is None
    assert page.images.count() == len(recent)


def test_a_job_that_does_not_say_how_far_it_is_gets_a_busy_bar(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    now = datetime.now(UTC)
    running = fake.jobs_model.current[0].model_copy(
        update={"progress": None, "phase": JobPhase.DOWNLOADING, "progress_message": ""}
    )
    fake.jobs_model = fake.jobs_model.model_copy(update={"current": [running]})
    fake.network_model = demo_network(now)
    app = make_app(wizard=True)
    app.window.show_page(JOBS)
    page = app.window.jobs_page
    qtbot.waitUntil(lambda: page.jobs is not None, timeout=5000)
    assert page.current_phase.text() == "Downloading the job's files"
    assert page.current_progress.maximum() == 0
    assert page.progress_text.text() == ""


def test_jobs_page_without_jobs(qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient) -> None:
    fake.jobs_model = fake.jobs_model.model_copy(update={"current": [], "history": []})
    fake.network_model = demo_network(fake.now)
    app = make_app(wizard=True)
    app.window.show_page(JOBS)
    page = app.window.jobs_page
    qtbot.waitUntil(lambda: page.jobs is not None, timeout=5000)
    assert page.current_label.text() == "No job running"
    assert page.empty_hint.isVisible()
    assert not page.table.isVisible()


def test_network_page_shows_node_link_sandbox_outbox_and_balances(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.network_model = demo_network(
        fake.now,
        reachable=False,
        last_error="The network did not answer: connection refused.",
        outbox_pending=2,
    )
    app = make_app(wizard=True)
    app.window.show_page(NETWORK)
    page = app.window.network_page
    qtbot.waitUntil(lambda: page.earnings is not None, timeout=5000)
    assert page.network_card.value.text() == "Demo network"
    assert page.network_card.detail.text() == "http://127.0.0.1:41873"
    assert "not money" in page.network_card.note.text()
    assert page.node_card.value.text() == "Node 1"
    assert page.node_card.detail.text() == "account demo"
    assert page.link_card.value.text() == "Unreachable"
    assert page.link_card.detail.text().startswith("last contact ")
    assert page.link_card.note.text() == "The network did not answer: connection refused."
    assert page.sandbox_card.value.text() == "bubblewrap"
    assert page.sandbox_card.detail.text() == "taking jobs"
    assert page.outbox_card.value.text() == "2 results"
    earnings = fake.earnings_model
    assert page.balance_card.value.text() == "2.50 credits"  # 7×50 + 5×40 − 300
    assert earnings.balance_minor == 250
    assert page.today_card.value.text() == "5.50 credits"
    assert page.entries.rowCount() == len(earnings.entries)
    first = [page.entries.item(0, c).text() for c in range(5)]
    assert first[1:] == [
        "Job credited",
        "0.50 credits",
        "113",
        "Job 113 (fractal #12: frame 0, tile 13 of 16): result accepted",
    ]
    payout = next(
        [page.entries.item(r, c).text() for c in range(5)]
        for r in range(page.entries.rowCount())
        if page.entries.item(r, 1).text() == "Payout"
    )
    assert payout[2] == "-3.00 credits"
    chart = page.chart
    assert chart is not None
    qtbot.waitUntil(lambda: chart.repaint_count >= 1, timeout=2000)
    assert int(chart.series.cumulative_minor[-1]) == 7 * 50 + 5 * 40  # payouts are not earnings


def test_network_page_explains_a_machine_that_refuses_jobs(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    problem = "bubblewrap is not installed: jobs cannot run safely here (apt install bubblewrap)."
    fake.network_model = demo_network(
        fake.now, sandbox=None, sandbox_problem=problem, accepting_jobs=False
    )
    app = make_app(wizard=True)
    app.window.show_page(NETWORK)
    page = app.window.network_page
    qtbot.waitUntil(lambda: page.network is not None and page.network.sandbox is None, timeout=5000)
    assert page.sandbox_card.value.text() == "Jobs refused"
    assert page.sandbox_card.note.text() == problem


def test_leave_asks_first_then_leaves(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QMessageBox

    fake.network_model = demo_network(fake.now)
    app = make_app(wizard=True)
    app.window.show_page(NETWORK)
    page = app.window.network_page
    qtbot.waitUntil(lambda: page.network is not None and page.network.enrolled, timeout=5000)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    page.leave_button.click()
    qtbot.wait(100)
    assert not fake.called("leave_network")
    page.leave_button.click()
    qtbot.waitUntil(page.not_enrolled.isVisible, timeout=5000)
    assert len(fake.called("leave_network")) == 1


def test_closing_the_window_closes_the_wizard_without_a_dismissal(
    qtbot: QtBot, make_app: AppFactory
) -> None:
    app = make_app(wizard=True)
    qtbot.waitUntil(lambda: app.wizard is not None, timeout=5000)
    wizard = app.wizard
    assert wizard is not None
    assert not wizard.isModal()  # the window stays usable beside it
    app.window.hide()  # closed to the tray
    qtbot.waitUntil(lambda: app.wizard is None, timeout=2000)
    assert not wizard.isVisible()
    assert not app.ui_settings.value(WIZARD_DISMISSED_KEY, False, type=bool)


def test_pictures_of_jobs_no_longer_listed_are_let_go(qtbot: QtBot) -> None:
    from fake_agent import demo_jobs, fractal_tile

    from heatshare.gui.jobs_page import JobsPage

    page = JobsPage()
    qtbot.addWidget(page)
    asked: list[tuple[int, str]] = []
    page.file_requested.connect(lambda a, n: asked.append((a, n)))
    jobs = demo_jobs(datetime.now(UTC))
    page.set_jobs(jobs)
    assert asked  # the recent results' pictures
    for attempt, name in asked:
        page.set_file(attempt, name, fractal_tile(attempt % 4))
    assert page.images.count() == len(asked)
    # Later, the agent lists only newer jobs (its list is bounded; so is what the page keeps).
    newer = jobs.model_copy(update={"history": jobs.history[:2]})
    page.set_jobs(newer)
    listed = {j.attempt_id for j in (*newer.current, *newer.history)}
    assert {a for a, _ in page._images} <= listed
    assert page.images.count() == len([j for j in newer.history if "tile.png" in j.files])


def test_the_dashboard_shows_earnings_beside_heat_while_in_a_network(
    qtbot: QtBot, make_app: AppFactory, fake: FakeAgentClient
) -> None:
    fake.network_model = demo_network(fake.now)
    app = make_app(wizard=True)
    app.window.show()
    qtbot.waitUntil(lambda: app.earnings_chart is not None, timeout=5000)
    chart = app.earnings_chart
    assert chart is not None
    qtbot.waitUntil(lambda: chart.repaint_count >= 1, timeout=2000)
    assert not app.window.earnings_host.isHidden()
    assert int(chart.series.cumulative_minor[-1]) == 7 * 50 + 5 * 40  # payouts are not earnings
    assert chart.total_plot.titleLabel.text == "Earned in all"
    assert chart.hour_plot.titleLabel.text == "Earned per hour"

    app.window.show_page(JOBS)  # the dashboard is not in view: its chart does not draw
    assert not chart._active
    app.window.show_page(DASHBOARD)
    assert chart._active

    fake.network_model = NetworkStatus(enrolled=False, sandbox="bubblewrap")
    app.bridge.load_network()  # as after leaving the network
    qtbot.waitUntil(app.window.earnings_host.isHidden, timeout=2000)
    qtbot.waitUntil(lambda: not app.polls.earnings_timer.isActive(), timeout=2000)

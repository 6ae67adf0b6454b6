"""The Jobs page: the job running now, the jobs before it, and a chosen job's log and result.

Fed by the composition root with the agent's answers (``set_jobs``, ``set_log``, ``set_file``);
what it wants fetched goes out as signals, so the page itself never waits on the agent.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from heatshare.gui.dashboard import Banner
from heatshare.gui.formatting import (
    NOT_AVAILABLE,
    format_duration,
    format_energy_j,
    format_money,
    format_progress,
    format_when,
)
from heatshare.protocol.local_api import JobInfo, JobPhase, JobsResponse

THUMB_PX = 128  # the recent results, many side by side
IMAGE_PX = 220  # a chosen job's own pictures
MAX_IMAGES = 16  # a job's PNGs fetched for the grid; the rest are listed by name
_ACTIVE = frozenset({JobPhase.LEASED, JobPhase.DOWNLOADING, JobPhase.RUNNING, JobPhase.UPLOADING})

PHASE_WORDS = {
    JobPhase.LEASED: "Leased",
    JobPhase.DOWNLOADING: "Downloading",
    JobPhase.RUNNING: "Running",
    JobPhase.UPLOADING: "Uploading",
    JobPhase.OUTBOX: "In the outbox",
    JobPhase.DONE: "Done",
    JobPhase.FAILED: "Failed",
    JobPhase.CANCELLED: "Cancelled",
}
# The running job's card has room to say more.
PHASE_SENTENCES = {
    JobPhase.LEASED: "Leased from the network, about to download",
    JobPhase.DOWNLOADING: "Downloading the job's files",
    JobPhase.UPLOADING: "Uploading the result",
    JobPhase.OUTBOX: "Finished: the result waits for the network",
}
GALLERY_SIZE = 12  # recent results shown while no job is chosen
RESULT_WORDS = {
    "accepted": "Accepted",
    "pending_validation": "Being checked",
    "rejected": "Rejected",
}
COLUMNS = ("Job", "Phase", "Finished", "Earned", "Result")
RECENT_TITLE = "Recent results"


def job_label(job: JobInfo) -> str:
    return job.label or f"Job {job.job_id}"


def earned_text(job: JobInfo) -> str:
    """What the job earned, or what it will pay while the network has not said."""
    if job.credited_minor is not None:
        return format_money(job.credited_minor, job.currency)
    if job.phase in (JobPhase.FAILED, JobPhase.CANCELLED):
        return "nothing"
    if job.result_status == "rejected":
        return "nothing"
    if job.price_minor and job.currency:
        return f"{format_money(job.price_minor, job.currency)} when accepted"
    return NOT_AVAILABLE


def result_text(job: JobInfo) -> str:
    if job.error:
        return job.error
    if job.result_status:
        return RESULT_WORDS.get(job.result_status, job.result_status)
    if job.phase is JobPhase.OUTBOX:
        return "Waiting to upload"
    return "" if job.phase in _ACTIVE else NOT_AVAILABLE


def _font(delta: float, weight: QFont.Weight | None = None) -> QFont:
    font = QFont()
    font.setPointSizeF(max(6.0, font.pointSizeF() + delta))
    if weight is not None:
        font.setWeight(weight)
    return font


class _Figure(QWidget):
    """A small caption over a figure (elapsed, energy, earnings of the running job)."""

    def __init__(self, caption: str) -> None:
        super().__init__()
        title = QLabel(caption.upper())
        title.setObjectName("cardTitle")
        title.setFont(_font(-1, QFont.Weight.DemiBold))
        self.value = QLabel(NOT_AVAILABLE)
        self.value.setFont(_font(4, QFont.Weight.DemiBold))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(title)
        layout.addWidget(self.value)


class JobsPage(QWidget):
    """The running job with its progress, a history table, and the chosen job's output.

    Signals:
        log_requested(int): fetch this attempt's log.
        file_requested(int, str): fetch this attempt's output file.
    """

    log_requested = Signal(int)
    file_requested = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:  # noqa: PLR0915 (one layout)
        super().__init__(parent)
        self.setObjectName("jobsPage")
        self.jobs: JobsResponse | None = None
        self.selected: int | None = None
        self._rows: list[JobInfo] = []
        self._images: dict[tuple[int, str], QPixmap] = {}
        self._requested: set[tuple[int, str]] = set()
        self._logs_final: dict[int, str] = {}
        self._shown_images: tuple[object, ...] = ()

        # -- the running job ------------------------------------------------------------------
        self.current_card = QFrame()
        self.current_card.setObjectName("figureCard")
        caption = QLabel("RUNNING NOW")
        caption.setObjectName("cardTitle")
        caption.setFont(_font(-1, QFont.Weight.DemiBold))
        self.current_label = QLabel("No job running")
        self.current_label.setFont(_font(8, QFont.Weight.DemiBold))
        self.current_phase = QLabel("")
        self.current_phase.setObjectName("cardNote")
        self.current_progress = QProgressBar()
        self.current_progress.setRange(0, 1000)
        self.current_progress.setTextVisible(False)
        self.current_progress.setFixedHeight(10)
        self.progress_text = QLabel("")
        self.progress_text.setFont(_font(2, QFont.Weight.DemiBold))
        self.elapsed = _Figure("Elapsed")
        self.energy = _Figure("Energy used")
        self.earns = _Figure("Earns")
        figures = QHBoxLayout()
        figures.setSpacing(40)
        for fig in (self.elapsed, self.energy, self.earns):
            figures.addWidget(fig)
        figures.addStretch(1)
        bar_row = QHBoxLayout()
        bar_row.addWidget(self.current_progress, 1)
        bar_row.addWidget(self.progress_text)
        card = QVBoxLayout(self.current_card)
        card.setContentsMargins(20, 16, 20, 16)
        card.setSpacing(6)
        card.addWidget(caption)
        card.addWidget(self.current_label)
        card.addWidget(self.current_phase)
        card.addLayout(bar_row)
        card.addSpacing(6)
        card.addLayout(figures)

        # -- history ---------------------------------------------------------------------------
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("jobsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.empty_hint = QLabel("No jobs yet. Jobs from the network appear here as they arrive.")
        self.empty_hint.setObjectName("hint")
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.empty_hint)
        top_layout.addWidget(self.table, 1)

        # -- the chosen job (or the recent results) ---------------------------------------------
        self.detail_title = QLabel(RECENT_TITLE)
        self.detail_title.setFont(_font(3, QFont.Weight.DemiBold))
        self.detail_note = QLabel("")
        self.detail_note.setObjectName("hint")
        self.detail_note.setWordWrap(True)
        self.images = QListWidget()
        self.images.setObjectName("resultImages")
        self.images.setViewMode(QListView.ViewMode.IconMode)
        self.images.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.images.setResizeMode(QListView.ResizeMode.Adjust)
        self.images.setMovement(QListView.Movement.Static)
        self.images.setWrapping(True)
        self.images.setSpacing(4)
        self.images.setGridSize(QSize(THUMB_PX + 24, THUMB_PX + 44))
        self.images.setWordWrap(True)
        self.images.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.images.setMinimumHeight(THUMB_PX + 56)
        self.images.itemActivated.connect(self._image_activated)
        self.images.itemClicked.connect(self._image_activated)
        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("jobLog")
        self.log_view.setReadOnly(True)
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.log_view.setFont(mono)
        self.log_view.setPlaceholderText("Choose a job above to see its output here.")
        result_title = QLabel("RESULT")
        result_title.setObjectName("cardTitle")
        log_title = QLabel("LOG")
        log_title.setObjectName("cardTitle")
        result_box = QWidget()
        result_layout = QVBoxLayout(result_box)
        result_layout.setContentsMargins(0, 0, 0, 0)
        result_layout.addWidget(result_title)
        result_layout.addWidget(self.images, 1)
        result_layout.addWidget(self.detail_note)
        self.log_box = log_box = QWidget()
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.addWidget(log_title)
        log_layout.addWidget(self.log_view, 1)
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.setChildrenCollapsible(False)
        lower.addWidget(result_box)
        lower.addWidget(log_box)
        lower.setStretchFactor(0, 1)
        lower.setStretchFactor(1, 1)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 8, 0, 0)
        self.all_button = QPushButton("Show recent results")
        self.all_button.setObjectName("allResults")
        self.all_button.clicked.connect(self.table.clearSelection)
        self.all_button.hide()
        title_row = QHBoxLayout()
        title_row.addWidget(self.detail_title, 1)
        title_row.addWidget(self.all_button)
        bottom_layout.addLayout(title_row)
        bottom_layout.addWidget(lower, 1)

        # The table is wide (five columns), the images want height: one above the other.
        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(16)
        self.banner = Banner("error")
        self.notice = Banner("warning")
        layout.addWidget(self.banner)
        layout.addWidget(self.notice)
        layout.addWidget(self.current_card)
        layout.addWidget(split, 1)
        self._show_current(None)
        self._refresh_detail()

    # -- inputs --------------------------------------------------------------------------

    def set_jobs(self, jobs: JobsResponse) -> None:
        self.jobs = jobs
        self.banner.show_text("")
        current, rows = current_and_history(jobs)
        self._show_current(current)
        self._fill_table(rows)
        self._forget_others({j.attempt_id for j in rows})
        self._refresh_detail()

    def set_error(self, message: str) -> None:
        """The jobs did not load, or the demo did not start: shown until the next answer."""
        self.banner.show_text(message)

    def set_notice(self, text: str) -> None:
        """Something under way that the page cannot show yet ("Starting the demo network…")."""
        self.notice.show_text(text)

    def set_log(self, attempt_id: int, text: str) -> None:
        job = self._job(attempt_id)
        if job is not None and job.phase not in _ACTIVE:
            self._logs_final[attempt_id] = text  # a finished job's log no longer changes
        if attempt_id == self.selected:
            bar = self.log_view.verticalScrollBar()
            at_end = bar.value() >= bar.maximum() - 2
            self.log_view.setPlainText(text or "(the job wrote nothing)")
            if at_end:
                bar.setValue(bar.maximum())

    def set_file(self, attempt_id: int, name: str, data: bytes) -> None:
        pixmap = QPixmap()
        if not pixmap.loadFromData(data, "PNG"):
            pixmap = QPixmap()  # kept empty: the grid says the image could not be read
        self._images[(attempt_id, name)] = pixmap
        self._show_images()  # a no-op unless the picture is on show

    def set_detail_error(self, attempt_id: int, message: str) -> None:
        if attempt_id == self.selected:
            self.detail_note.setText(message)

    # -- the running job -----------------------------------------------------------------

    def _show_current(self, job: JobInfo | None) -> None:
        if job is None:
            self.current_label.setText("No job running")
            self.current_phase.setText("Jobs from the network start here when there is work.")
            self.current_progress.setValue(0)
            self.current_progress.setEnabled(False)
            self.progress_text.setText("")
            for fig in (self.elapsed, self.energy, self.earns):
                fig.value.setText("–")
            return
        self.current_label.setText(job_label(job))
        phase = PHASE_SENTENCES.get(job.phase) or PHASE_WORDS.get(job.phase, job.phase.value)
        self.current_phase.setText(
            f"{phase} · {job.progress_message}" if job.progress_message else phase
        )
        self.current_progress.setEnabled(True)
        if job.progress is None:
            self.current_progress.setRange(0, 0)  # the job does not say: a busy bar
            self.progress_text.setText("")
        else:
            self.current_progress.setRange(0, 1000)
            self.current_progress.setValue(round(min(1.0, max(0.0, job.progress)) * 1000))
            self.progress_text.setText(format_progress(job.progress))
        self.elapsed.value.setText(format_duration(job.elapsed_s))
        self.energy.value.setText(format_energy_j(job.energy_j))
        self.earns.value.setText(format_money(job.price_minor, job.currency))

    # -- the table -----------------------------------------------------------------------

    def _fill_table(self, rows: list[JobInfo]) -> None:
        self.empty_hint.setVisible(not rows)
        self.table.setVisible(bool(rows))
        self._rows = rows
        table = self.table
        table.blockSignals(True)  # re-filling is not the user choosing another row
        try:
            table.setRowCount(len(rows))
            for r, job in enumerate(rows):
                finished = format_when(job.finished_at) if job.finished_at else ""
                cells = (
                    job_label(job),
                    PHASE_WORDS.get(job.phase, job.phase.value),
                    finished,
                    earned_text(job),
                    result_text(job),
                )
                for c, text in enumerate(cells):
                    item = table.item(r, c)
                    if item is None:
                        item = QTableWidgetItem()
                        table.setItem(r, c, item)
                    if item.text() != text:
                        item.setText(text)
                    if c == 0:
                        item.setData(Qt.ItemDataRole.UserRole, job.attempt_id)
                        item.setToolTip(f"Job {job.job_id}, attempt {job.attempt_id}")
                    if c == 3:
                        item.setTextAlignment(
                            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                        )
            row = next((i for i, j in enumerate(rows) if j.attempt_id == self.selected), None)
            if row is None:
                table.clearSelection()
            else:
                table.selectRow(row)
        finally:
            table.blockSignals(False)
        if self.selected is not None and row is None:
            self.selected = None

    def _forget_others(self, keep: set[int]) -> None:
        """Drop the pictures and logs of jobs no longer listed: a demo running for days
        finishes thousands of jobs, and their pictures must not pile up in memory."""
        self._images = {k: v for k, v in self._images.items() if k[0] in keep}
        self._requested = {k for k in self._requested if k[0] in keep}
        self._logs_final = {k: v for k, v in self._logs_final.items() if k in keep}

    def select_attempt(self, attempt_id: int) -> None:
        row = next((i for i, j in enumerate(self._rows) if j.attempt_id == attempt_id), None)
        if row is not None:
            self.table.selectRow(row)

    def _selection_changed(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        attempt = self._rows[rows[0].row()].attempt_id if rows else None
        if attempt != self.selected:
            self.selected = attempt
            self.log_view.clear()
            self.detail_note.setText("")
            self._refresh_detail()

    # -- the chosen job ------------------------------------------------------------------

    def _job(self, attempt_id: int | None) -> JobInfo | None:
        return next((j for j in self._rows if j.attempt_id == attempt_id), None)

    def _refresh_detail(self) -> None:
        """Show the chosen job and ask for what is not here yet (logs of live jobs again)."""
        job = self._job(self.selected)
        self.all_button.setVisible(job is not None)
        self.log_box.setVisible(job is not None)  # the recent results take the whole width
        if job is None:
            self.detail_title.setText(RECENT_TITLE)
            self.log_view.clear()
            for recent in self._recent():
                self._want(recent.attempt_id, pngs(recent)[0])
            self._show_images()
            return
        self.detail_title.setText(job_label(job))
        final_log = self._logs_final.get(job.attempt_id)
        if final_log is None:
            self.log_requested.emit(job.attempt_id)
        elif self.log_view.toPlainText() != final_log:
            self.set_log(job.attempt_id, final_log)
        for name in pngs(job)[:MAX_IMAGES]:
            self._want(job.attempt_id, name)
        self._show_images()

    def _want(self, attempt_id: int, name: str) -> None:
        key = (attempt_id, name)
        if key not in self._images and key not in self._requested:
            self._requested.add(key)
            self.file_requested.emit(attempt_id, name)

    def _recent(self) -> list[JobInfo]:
        """The latest finished jobs with a picture to show."""
        done = (JobPhase.DONE, JobPhase.OUTBOX)
        return [j for j in self._rows if j.phase in done and pngs(j)][:GALLERY_SIZE]

    def _image_activated(self, item: QListWidgetItem) -> None:
        attempt = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(attempt, int) and attempt != self.selected:
            self.select_attempt(attempt)

    def _show_images(self) -> None:
        job = self._job(self.selected)
        if job is None:
            shown = [(j.attempt_id, pngs(j)[0], job_label(j)) for j in self._recent()]
        else:
            shown = [(job.attempt_id, n, n) for n in pngs(job)[:MAX_IMAGES]]
        # Rebuilt only when something changed: the jobs poll comes every 2 s, and a rebuilt
        # grid would lose its scroll position each time.
        key = (
            self.selected,
            tuple(job.files) if job is not None else (),
            tuple(
                (a, n, None if (p := self._images.get((a, n))) is None else p.cacheKey())
                for a, n, _ in shown
            ),
        )
        if key == self._shown_images:
            return
        self._shown_images = key
        self.images.clear()
        px = THUMB_PX if job is None else IMAGE_PX
        self.images.setIconSize(QSize(px, px))
        self.images.setGridSize(QSize(px + 24, px + 44))
        for attempt, name, caption in shown:
            pixmap = self._images.get((attempt, name))
            item = QListWidgetItem(caption)
            item.setToolTip(caption)
            if job is None:
                item.setData(Qt.ItemDataRole.UserRole, attempt)  # a click chooses that job
            if pixmap is None:
                item.setText(f"{caption}\n(loading…)")
            elif pixmap.isNull():
                item.setText(f"{caption}\n(not a readable PNG)")
            else:
                item.setIcon(QIcon(pixmap))
                item.setToolTip(f"{caption}: {pixmap.width()} × {pixmap.height()} px")
            self.images.addItem(item)
        self.detail_note.setText(self._files_note(job, bool(shown)))

    @staticmethod
    def _files_note(job: JobInfo | None, any_shown: bool) -> str:
        if job is None:
            return "" if any_shown else "Pictures that jobs make show here when they finish."
        if not job.files:
            if job.phase in _ACTIVE:
                return "The result appears here when the job has finished."
            return "This job left no output files."
        others = [f for f in job.files if f not in pngs(job)]
        return ("Other files: " + ", ".join(others)) if others else ""


def pngs(job: JobInfo) -> list[str]:
    return [f for f in job.files if f.lower().endswith(".png")]


def _ids(jobs: list[JobInfo]) -> set[int]:
    return {j.attempt_id for j in jobs}


def current_and_history(jobs: JobsResponse) -> tuple[JobInfo | None, list[JobInfo]]:
    """The job shown as running, and the table's rows (current first, no duplicates)."""
    current = jobs.current[0] if jobs.current else None
    seen = _ids(jobs.current)
    return current, [*jobs.current, *(j for j in jobs.history if j.attempt_id not in seen)]

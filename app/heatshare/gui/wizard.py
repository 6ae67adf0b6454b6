"""The first-run wizard: join a network with a pairing code, or try the demo network.

It decides nothing and calls nothing itself: its requests go out as signals, the composition
root sends them to the agent through the bridge (off the UI thread), and the answer comes back
through :meth:`JoinWizard.show_error` or :meth:`JoinWizard.finish`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from heatshare.protocol.local_api import NetworkStatus

_CODE = re.compile(r"^[A-Za-z0-9-]{4,32}$")
URL_MAX = 500

DEMO_TEXT = (
    "Starts a small network on this computer that sends real example jobs: fractal "
    "tiles to render and matrix products to check. You see jobs run, heat rise and "
    "credits arrive within a minute.\n\n"
    "The demo pays in demo credits. They show how earning works; they are not money "
    "and cannot be paid out."
)
JOIN_TEXT = (
    "The network's operator gives you its address and a one-time pairing code. "
    "The code is checked with the network straight away."
)


def url_problem(text: str) -> str | None:
    """Why ``text`` is not a network address, in a sentence; None when it looks right."""
    text = text.strip()
    if not text:
        return "Enter the network's address."
    if any(ch.isspace() for ch in text) or len(text) > URL_MAX:
        return "An address has no spaces and is at most 500 characters."
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http"):
        return "The address starts with https:// (for example https://heat.example.org)."
    try:
        port_ok = parts.port != 0
    except ValueError:
        port_ok = False
    if not port_ok:
        return "The port after the colon is not a number from 1 to 65535."
    if not parts.hostname:
        return "The address needs a server name after https://."
    return None


def code_problem(text: str) -> str | None:
    """Why ``text`` is not a pairing code; None when it looks right."""
    text = text.strip()
    if not text:
        return "Enter the pairing code."
    if not _CODE.match(text):
        return "A pairing code is 4 to 32 letters, digits and dashes."
    return None


def _title_font(delta: float) -> QFont:
    font = QFont()
    font.setPointSizeF(font.pointSizeF() + delta)
    font.setWeight(QFont.Weight.DemiBold)
    return font


class JoinWizard(QDialog):
    """Two ways into a compute network, side by side.

    Signals:
        join_requested(str, str): the network's address and the pairing code, both trimmed.
        demo_requested(): "Try the demo network".
        dismissed(): "Not now" (the root remembers it and does not ask at the next start).
    """

    join_requested = Signal(str, str)
    demo_requested = Signal()
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:  # noqa: PLR0915 (one layout)
        super().__init__(parent)
        self.setObjectName("join-wizard")
        self.setWindowTitle("Join a compute network")
        # Not modal: the main window stays usable (closed to the tray, raised by a second
        # launch) while the wizard waits for an answer.
        self.setModal(False)
        self.busy = False
        self.result_network: NetworkStatus | None = None

        heading = QLabel("Earn while you heat")
        heading.setFont(_title_font(6))
        intro = QLabel(
            "Heatshare runs a compute network's jobs on this machine; the electricity they "
            "use warms the room, and the network pays for the work. How would you like to start?"
        )
        intro.setWordWrap(True)

        # -- join ---------------------------------------------------------------------------
        join_card = QFrame()
        join_card.setObjectName("figureCard")
        join_title = QLabel("Join a network")
        join_title.setFont(_title_font(3))
        join_text = QLabel(JOIN_TEXT)
        join_text.setWordWrap(True)
        join_text.setObjectName("hint")
        self.url = QLineEdit()
        self.url.setObjectName("url")
        self.url.setPlaceholderText("https://heat.example.org")
        self.url.setMaxLength(URL_MAX)
        self.code = QLineEdit()
        self.code.setObjectName("code")
        self.code.setPlaceholderText("for example 7KQ2-M9XD")
        self.code.setMaxLength(32)
        self.url_hint = QLabel("")
        self.url_hint.setObjectName("formError")
        self.url_hint.setWordWrap(True)
        self.code_hint = QLabel("")
        self.code_hint.setObjectName("formError")
        self.code_hint.setWordWrap(True)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Network address", self.url)
        form.addRow("", self.url_hint)
        form.addRow("Pairing code", self.code)
        form.addRow("", self.code_hint)
        self.join_button = QPushButton("Join")
        self.join_button.setObjectName("join")
        self.join_button.setDefault(True)
        self.join_button.setEnabled(False)
        join_layout = QVBoxLayout(join_card)
        join_layout.setContentsMargins(20, 16, 20, 16)
        join_layout.addWidget(join_title)
        join_layout.addWidget(join_text)
        join_layout.addSpacing(6)
        join_layout.addLayout(form)
        join_layout.addStretch(1)
        join_layout.addWidget(self.join_button, 0, Qt.AlignmentFlag.AlignRight)

        # -- demo ---------------------------------------------------------------------------
        demo_card = QFrame()
        demo_card.setObjectName("figureCard")
        demo_title = QLabel("Try the demo network")
        demo_title.setFont(_title_font(3))
        demo_text = QLabel(DEMO_TEXT)
        demo_text.setWordWrap(True)
        demo_text.setObjectName("hint")
        self.demo_button = QPushButton("Start the demo")
        self.demo_button.setObjectName("demo")
        demo_layout = QVBoxLayout(demo_card)
        demo_layout.setContentsMargins(20, 16, 20, 16)
        demo_layout.addWidget(demo_title)
        demo_layout.addWidget(demo_text)
        demo_layout.addStretch(1)
        demo_layout.addWidget(self.demo_button, 0, Qt.AlignmentFlag.AlignRight)

        for card in (join_card, demo_card):
            card.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        cards = QHBoxLayout()
        cards.setSpacing(16)
        cards.addWidget(join_card, 3)
        cards.addWidget(demo_card, 2)

        # -- what is happening --------------------------------------------------------------
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: no figure to show, only that it works
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(160)
        self.busy_label = QLabel("")
        busy_row = QHBoxLayout()
        busy_row.addWidget(self.progress)
        busy_row.addWidget(self.busy_label, 1)
        self.busy_box = QWidget()
        self.busy_box.setLayout(busy_row)
        self.busy_box.hide()
        self.error = QFrame()
        self.error.setObjectName("errorBanner")
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        error_layout = QHBoxLayout(self.error)
        error_layout.setContentsMargins(16, 10, 16, 10)
        error_layout.addWidget(self.error_label)
        self.error.hide()

        self.later_button = QPushButton("Not now")
        self.later_button.setObjectName("later")
        self.later_button.setAutoDefault(False)
        later_note = QLabel("You can join later from the Network page.")
        later_note.setObjectName("hint")
        bottom = QHBoxLayout()
        bottom.addWidget(later_note, 1)
        bottom.addWidget(self.later_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 24, 28, 20)
        layout.setSpacing(12)
        layout.addWidget(heading)
        layout.addWidget(intro)
        layout.addSpacing(4)
        layout.addLayout(cards, 1)
        layout.addWidget(self.busy_box)
        layout.addWidget(self.error)
        layout.addLayout(bottom)
        self.resize(860, 520)

        self.url.textChanged.connect(self._validate)
        self.code.textChanged.connect(self._validate)
        self.url.returnPressed.connect(self._join)
        self.code.returnPressed.connect(self._join)
        self.join_button.clicked.connect(self._join)
        self.demo_button.clicked.connect(self._demo)
        self.later_button.clicked.connect(self.reject)

    # -- input ---------------------------------------------------------------------------

    def _validate(self) -> bool:
        url_text, code_text = self.url.text(), self.code.text()
        url_bad, code_bad = url_problem(url_text), code_problem(code_text)
        # A field not yet typed in is not scolded: its hint waits for the first character.
        self.url_hint.setText(url_bad if url_bad and url_text.strip() else "")
        self.code_hint.setText(code_bad if code_bad and code_text.strip() else "")
        self.url_hint.setVisible(bool(self.url_hint.text()))
        self.code_hint.setVisible(bool(self.code_hint.text()))
        ok = url_bad is None and code_bad is None
        self.join_button.setEnabled(ok and not self.busy)
        return ok

    def _join(self) -> None:
        if self.busy or not self._validate():
            return
        self.set_busy("Checking the pairing code with the network…")
        self.join_requested.emit(self.url.text().strip(), self.code.text().strip())

    def _demo(self) -> None:
        if self.busy:
            return
        self.set_busy("Starting the demo network on this computer…")
        self.demo_requested.emit()

    def reject(self) -> None:
        """ "Not now", Escape or the window's close button: all mean "not now"."""
        self.dismissed.emit()
        super().reject()

    # -- answers -------------------------------------------------------------------------

    def set_busy(self, text: str) -> None:
        self.busy = True
        self.error.hide()
        self.busy_label.setText(text)
        self.busy_box.show()
        for widget in (self.url, self.code, self.demo_button):
            widget.setEnabled(False)
        self._validate()

    def _idle(self) -> None:
        self.busy = False
        self.busy_box.hide()
        for widget in (self.url, self.code, self.demo_button):
            widget.setEnabled(True)
        self._validate()

    def show_error(self, message: str) -> None:
        """The agent refused: its sentence, as it wrote it, and the fields open again."""
        self._idle()
        self.error_label.setText(f"<b>Not joined.</b> {_escape(message)}")
        self.error.show()

    def finish(self, network: NetworkStatus) -> None:
        """The agent joined ``network``: close with success."""
        self._idle()
        self.result_network = network
        self.accept()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

"""Qt window (pyvistaqt + PySide6): the 3D view with a side panel for labels, text entry and status.

The panel reaches the same functions as the keys of the plain window
(:mod:`gaze3d.viewer.app`), which keep working inside the Qt view too.
Needs ``pip install 'gaze3d[qt]'``.
"""
from __future__ import annotations

from typing import Optional

from gaze3d._optional import optional_import
from gaze3d.errors import Gaze3DError

from .app import ViewerApp
from .labels import LabelSet

pyvistaqt = optional_import("pyvistaqt", extra="qt")
QtCore = optional_import("PySide6.QtCore", extra="qt")
QtGui = optional_import("PySide6.QtGui", extra="qt")
QtWidgets = optional_import("PySide6.QtWidgets", extra="qt")


def qt_application():
    """The running ``QApplication`` (created if there is none)."""
    app = QtWidgets.QApplication.instance()
    return app if app is not None else QtWidgets.QApplication([])


class QtViewer(QtWidgets.QMainWindow):
    """Main window: a ``pyvistaqt.QtInteractor`` plus a dock with the label panel.

    Parameters
    ----------
    scan, label_set, **app_options
        As for :class:`~gaze3d.viewer.app.ViewerApp` (``off_screen`` is ignored).

    Attributes
    ----------
    app : ViewerApp
        The labeling app running in the Qt view.
    label_list : QListWidget
        One row per label (double-click: label the attended region).
    name_entry : QLineEdit
        Type a label name and press Return (with completion).
    status : QLabel
        The status line (tracker, profile, rate, validity, latency, clock offset, lost samples).
    profile_box : QComboBox
        The calibration profiles ("none" first); choosing one applies its correction.

    Thread-safety: Qt objects belong to the GUI thread.
    """

    def __init__(self, scan, label_set: Optional[LabelSet] = None, window_size=(1280, 800), **app_options):
        super().__init__()
        app_options.pop("off_screen", None)
        self.setWindowTitle("gaze3d view")
        self.resize(int(window_size[0]) + 260, int(window_size[1]))
        self.interactor = pyvistaqt.QtInteractor(self)
        self.setCentralWidget(self.interactor)
        self.app = ViewerApp(scan, label_set, plotter=self.interactor, window_size=window_size, **app_options)
        self._build_panel()
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self.on_frame)
        self.timer.start(max(1, int(1000 / self.app.fps)))
        self.refresh_panel()

    # ---------------------------------------------------------------- panel
    def _build_panel(self) -> None:
        dock = QtWidgets.QDockWidget("Labels", self)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        box = QtWidgets.QWidget(dock)
        lay = QtWidgets.QVBoxLayout(box)
        self.label_list = QtWidgets.QListWidget(box)
        for i, lab in enumerate(self.app.session.label_set, start=1):
            key = f"{i}  " if i <= 9 else "   "
            item = QtWidgets.QListWidgetItem(f"{key}{lab.name}  (id {lab.id})")
            pix = QtGui.QPixmap(14, 14)
            pix.fill(QtGui.QColor(*lab.color))
            item.setIcon(QtGui.QIcon(pix))
            item.setData(QtCore.Qt.ItemDataRole.UserRole, lab.id)
            self.label_list.addItem(item)
        self.label_list.itemDoubleClicked.connect(
            lambda item: self.run_action(lambda: self.app.session.label_attended(
                int(item.data(QtCore.Qt.ItemDataRole.UserRole)))))
        lay.addWidget(self.label_list)
        self.name_entry = QtWidgets.QLineEdit(box)
        self.name_entry.setPlaceholderText("type a label name, Return")
        completer = QtWidgets.QCompleter(self.app.session.label_set.names, self.name_entry)
        completer.setCaseSensitivity(QtCore.Qt.CaseSensitivity.CaseInsensitive)
        self.name_entry.setCompleter(completer)
        self.name_entry.returnPressed.connect(self.on_name_entered)
        lay.addWidget(self.name_entry)
        row = QtWidgets.QHBoxLayout()
        self.buttons = {}
        for name, fn in (("Undo", self.app.session.undo), ("Redo", self.app.session.redo),
                         ("Clear", self.app.session.clear_attention),
                         ("Save", lambda: self.app.session.save_annotations(self.app.annotations))):
            b = QtWidgets.QPushButton(name, box)
            b.clicked.connect(lambda checked=False, fn=fn: self.run_action(fn))
            row.addWidget(b)
            self.buttons[name.lower()] = b
        lay.addLayout(row)
        prow = QtWidgets.QHBoxLayout()
        prow.addWidget(QtWidgets.QLabel("Profile", box))
        self.profile_box = QtWidgets.QComboBox(box)
        self.profile_box.addItems(self.profile_names())
        self.profile_box.activated.connect(self.on_profile_chosen)
        prow.addWidget(self.profile_box, 1)
        b = QtWidgets.QPushButton("Drift check", box)
        b.clicked.connect(lambda checked=False: self.run_action(self.app.session.start_drift_check))
        prow.addWidget(b)
        self.buttons["drift"] = b
        lay.addLayout(prow)
        self.status = QtWidgets.QLabel(box)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        lay.addStretch(1)
        dock.setWidget(box)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)

    def run_action(self, fn) -> None:
        """Run a session action; user errors (unknown label...) go to the status line."""
        try:
            fn()
        except Gaze3DError as exc:
            self.app.session.say(str(exc))
        self.app.update_status()
        self.refresh_panel()
        self.interactor.render()

    def profile_names(self) -> list:
        """``["none", <profile names>...]``: the entries of :attr:`profile_box`."""
        return ["none"] + self.app.session.calibration.profile_names()

    def on_profile_chosen(self, row: int) -> None:
        name = self.profile_box.itemText(row)
        self.run_action(lambda: self.app.session.select_profile(None if name == "none" else name))

    def on_name_entered(self) -> None:
        text = self.name_entry.text().strip()
        if not text:
            return
        self.run_action(lambda: self.app.session.label_name(text))
        if self.app.session.message.startswith("labelled"):
            self.name_entry.clear()

    def on_frame(self) -> None:
        if self.app.closed:
            return
        self.app.frame()
        self.refresh_panel()

    def refresh_panel(self) -> None:
        self.status.setText(self.app.session.status_line())
        prof = self.app.session.calibration.profile
        name = prof.name if prof is not None else "none"
        if self.profile_box.currentText() != name:          # changed by the p key
            if self.profile_box.findText(name) < 0:
                self.profile_box.addItem(name)
            self.profile_box.setCurrentText(name)

    def closeEvent(self, event) -> None:   # noqa: N802 (Qt name)
        self.timer.stop()
        self.app.close()
        super().closeEvent(event)


def run_qt(scan, label_set=None, load=None, **app_options) -> int:
    """Open the Qt viewer and run the Qt event loop until the window closes."""
    qapp = qt_application()
    win = QtViewer(scan, label_set, **app_options)
    if load:
        win.app.session.load_annotations(load)
    win.show()
    return int(qapp.exec())

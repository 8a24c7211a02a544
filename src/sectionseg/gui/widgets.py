"""Dock widgets (qtpy): proofreading and labelling. Both work on the viewer's
:class:`~sectionseg.gui.viewer.Session`, so they are usable from plain ``napari`` (Plugins menu,
plugin ``sectionseg``) as well as through ``sectionseg proofread``.

Keys (on the viewer): ``Shift-N`` next unchecked doubtful section, ``Shift-C`` mark the selected
section checked (looked at, nothing changed; plain ``C`` is napari's contrast key of image layers),
``Control-Z`` undo, ``Control-Shift-Z`` redo, ``Shift-A`` add a section (4 clicks), ``Escape`` stop
adding.
"""

from __future__ import annotations

import os
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sectionseg.gui.viewer import session_for

SIDE_CHOICES = ("auto", "up", "down", "left", "right", "none")
COLUMNS = ("#", "doubt", "score", "checked", "labelled", "why")


def _bind_keys(viewer, session) -> None:
    if getattr(viewer, "_sectionseg_keys", False):
        return
    bindings = {
        "Shift-N": lambda v: session_for(v).next_doubtful(),
        "Shift-C": lambda v: _check(session_for(v)),
        "Control-Z": lambda v: session_for(v).model.undo(),
        "Control-Shift-Z": lambda v: session_for(v).model.redo(),
        "Shift-A": lambda v: session_for(v).start_adding(),
        "Escape": lambda v: session_for(v).stop_adding(),
    }
    for key, func in bindings.items():
        try:
            viewer.bind_key(key, func, overwrite=True)
        except Exception:  # pragma: no cover - a napari without this key binding API
            pass
    viewer._sectionseg_keys = True


def _check(session) -> int:
    n = session.check_selected(True)
    if not n:
        session.say("select a section (or go to one with Next doubtful) first")
    return n


class ProofreadWidget(QWidget):
    """Open / save a detection, the sections sorted by doubt, and the edit buttons."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        _bind_keys(napari_viewer, self.session)
        layout = QVBoxLayout(self)
        files = QHBoxLayout()
        self.open_button = QPushButton("Open…")
        self.save_button = QPushButton("Save")
        self.save_as_button = QPushButton("Save as…")
        for b in (self.open_button, self.save_button, self.save_as_button):
            files.addWidget(b)
        layout.addLayout(files)
        self.folder_label = QLabel()
        self.folder_label.setWordWrap(True)
        layout.addWidget(self.folder_label)

        grid = QGridLayout()
        self.side = QComboBox()
        self.side.addItems(SIDE_CHOICES)
        self.side.setToolTip(
            "side of the tissue where a new section's magnet is proposed (auto: the wafer's usual side)"
        )
        self.add_button = QPushButton("Add section (4 clicks)")
        self.delete_button = QPushButton("Delete section")
        self.pair_button = QPushButton("Pair selected")
        self.unpair_button = QPushButton("Unpair")
        self.swap_button = QPushButton("Swap tissue/magnet")
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.next_button = QPushButton("Next doubtful (Shift-N)")
        self.check_button = QPushButton("Mark checked (Shift-C)")
        self.check_button.setToolTip("the selected section has been looked at and is right as it is")
        grid.addWidget(QLabel("magnet side"), 0, 0)
        grid.addWidget(self.side, 0, 1)
        grid.addWidget(self.add_button, 1, 0)
        grid.addWidget(self.delete_button, 1, 1)
        grid.addWidget(self.pair_button, 2, 0)
        grid.addWidget(self.unpair_button, 2, 1)
        grid.addWidget(self.swap_button, 3, 0)
        grid.addWidget(self.next_button, 3, 1)
        grid.addWidget(self.check_button, 4, 0, 1, 2)
        grid.addWidget(self.undo_button, 5, 0)
        grid.addWidget(self.redo_button, 5, 1)
        layout.addLayout(grid)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        for c, width in enumerate((40, 48, 48, 56, 60)):
            self.table.setColumnWidth(c, width)
        layout.addWidget(self.table)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        self.open_button.clicked.connect(self._open)
        self.save_button.clicked.connect(lambda: self._save(None))
        self.save_as_button.clicked.connect(self._save_as)
        self.side.currentTextChanged.connect(self._side)
        self.add_button.clicked.connect(self.session.start_adding)
        self.delete_button.clicked.connect(self._delete)
        self.pair_button.clicked.connect(self.session.pair_selected)
        self.unpair_button.clicked.connect(lambda: self._each(self.session.model.unpair, paired=True))
        self.swap_button.clicked.connect(lambda: self._each(self.session.model.swap_parts))
        self.undo_button.clicked.connect(lambda: self.session.model.undo())
        self.redo_button.clicked.connect(lambda: self.session.model.redo())
        self.next_button.clicked.connect(self.session.next_doubtful)
        self.check_button.clicked.connect(lambda: _check(self.session) or self.update_table())
        self.table.cellClicked.connect(self._row_clicked)
        self.session.listeners.append(self.update_table)
        self.update_table()

    # the table -----------------------------------------------------------------------------------
    def update_table(self) -> None:
        s = self.session
        numbers = s.model.numbers()
        rows = s.model.by_doubt()
        self._uids = [e.uid for e, _ in rows]
        self.table.setRowCount(len(rows))
        for r, (e, d) in enumerate(rows):
            score = "" if e.score is None else f"{e.score:.2f}"
            values = (
                str(numbers[e.uid]),
                f"{d.value:.1f}",
                score,
                "yes" if e.checked else "",
                "yes" if e.labelled else "",
                "; ".join(d.reasons) or ("edited" if e.edited else ""),
            )
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                if c == 1:
                    item.setData(Qt.UserRole, d.value)
                if c == len(values) - 1:
                    item.setToolTip(text)
                self.table.setItem(r, c, item)
        folder = "(no folder: Save as… to choose one)" if s.folder is None else os.fspath(s.folder)
        labelled = sum(e.labelled for e, _ in rows)
        self.folder_label.setText(
            f"{folder}\n{len(rows)} sections, {len(s.model.to_look_at())} to look at, "
            f"{sum(e.checked for e, _ in rows)} checked" + (f", {labelled} labelled" if labelled else "")
        )
        self.status.setText(s.status)

    def _row_clicked(self, row: int, column: int) -> None:
        if 0 <= row < len(self._uids):
            self.session.centre_on(self._uids[row])

    # actions -------------------------------------------------------------------------------------
    def _side(self, text: str) -> None:
        self.session.side = text

    def _delete(self) -> None:
        if not self.session.delete_selected_sections():
            self.session.say("select a section's tissue or magnet first")
            self.update_table()

    def _each(self, func, paired: bool = False) -> None:
        uids = self.session.selected()
        if paired:
            uids = [u for u in uids if self.session.model.entry(u).paired]
        for uid in uids:
            self.session._try(func, uid)
        if not uids:
            self.session.say("select a section first")
            self.update_table()

    def _open(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Detection folder (MagC pair, sections.magc, detect output)")
        if path:
            self.session.load(path)

    def _save(self, folder) -> None:
        if folder is None and self.session.folder is None:
            self._save_as()
            return
        try:
            self.session.save(folder)
        except Exception as exc:  # the user's file system: say it, keep the session
            self.session.say(f"not saved: {exc}")
        self.update_table()

    def _save_as(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Save the sections into this folder")
        if path:
            self._save(path)


class LabelWidget(QWidget):
    """Labelling for adaptation: mark sections labelled (or add them by 4 clicks on an undetected
    wafer), save the labels file, run finetune + detect in the background and load the result."""

    def __init__(self, napari_viewer, parent=None, runner=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        _bind_keys(napari_viewer, self.session)
        self.runner = runner  # None: sectionseg.gui.adapt.finetune_and_detect
        layout = QVBoxLayout(self)
        self.mode = QCheckBox("labelling mode (sections added are labelled)")
        self.mark_button = QPushButton("Mark selected labelled")
        self.unmark_button = QPushButton("Unmark selected")
        self.add_button = QPushButton("Add labelled section (4 clicks)")
        self.save_button = QPushButton("Save labels…")
        self.run_button = QPushButton("Finetune + detect")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 2)
        self.progress.setValue(0)
        self.info = QLabel()
        self.info.setWordWrap(True)
        for w in (
            self.mode,
            self.mark_button,
            self.unmark_button,
            self.add_button,
            self.save_button,
            self.run_button,
            self.cancel_button,
            self.progress,
            self.info,
        ):
            layout.addWidget(w)
        layout.addStretch(1)
        self.mode.toggled.connect(self._mode)
        self.mark_button.clicked.connect(lambda: self._mark(True))
        self.unmark_button.clicked.connect(lambda: self._mark(False))
        self.add_button.clicked.connect(self._add)
        self.save_button.clicked.connect(self._save_labels_dialog)
        self.run_button.clicked.connect(lambda: self.start_finetune())
        self.cancel_button.clicked.connect(self.cancel)
        self.session.listeners.append(self._update)
        self.worker = None
        self._cancel = None
        self.labels_path: Path | None = None
        self._update()

    def _update(self) -> None:
        n = len(self.session.model.labelled_sections())
        self.info.setText(f"{n} labelled sections (a dozen is enough for finetune)")

    def _mode(self, on: bool) -> None:
        self.session.labelling = bool(on)

    def _mark(self, labelled: bool) -> None:
        if not self.session.label_selected(labelled):
            self.session.say("select a section's tissue or magnet first")

    def _add(self) -> None:
        self.mode.setChecked(True)
        self.session.start_adding()

    def save_labels(self, path) -> Path:
        from sectionseg.gui.store import write_labels

        self.labels_path = write_labels(
            path, self.session.model, gray_path=self.session.gray_path, image_size=self.session.image_size()
        )
        self.session.say(f"labels saved to {self.labels_path}")
        return self.labels_path

    def _save_labels_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Labels file (labelme JSON)", "labels.labelme.json", "labelme JSON (*.json)"
        )
        if path:
            try:
                self.save_labels(path)
            except Exception as exc:
                self.session.say(f"not saved: {exc}")

    def start_finetune(self, out=None, **kwargs):
        """Save the labels into ``out`` (default: ``finetune`` beside the detection folder), run
        finetune + detect in a worker thread with progress, then load the new detection. ``kwargs``
        go to the runner (:func:`sectionseg.gui.adapt.finetune_and_detect`: ``epochs``,
        ``finetune_args``, ``detect_args``...), with ``cancel``, the event the Cancel button sets."""
        import threading

        from napari.qt.threading import create_worker

        s = self.session
        if s.gray_path is None:
            s.say("the wafer image file is unknown (open it with sectionseg proofread)")
            return None
        if out is None:
            base = s.folder.parent if s.folder is not None else Path(s.gray_path).parent
            out = base / "finetune"
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        try:
            labels = self.save_labels(out / "labels.labelme.json")
        except Exception as exc:
            s.say(f"no labels: {exc}")
            return None
        if self.runner is None:
            from sectionseg.gui.adapt import finetune_and_detect as runner
        else:
            runner = self.runner
        self._cancel = threading.Event()
        # errors are ours to show (_failed), not to re-raise in the event loop
        self.worker = create_worker(
            runner,
            s.gray_path,
            labels,
            out / "run",
            fluo=s.fluo_path,
            cancel=self._cancel,
            _ignore_errors=True,
            **kwargs,
        )
        self.worker.yielded.connect(self._progress)
        self.worker.returned.connect(self._finished)
        self.worker.errored.connect(lambda exc: self._failed(exc))
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.worker.start()
        return self.worker

    def cancel(self) -> None:
        """Stop a running finetune + detect (its child process is stopped; nothing is loaded)."""
        if self._cancel is not None:
            self._cancel.set()
            self.session.say("cancelling…")

    def _progress(self, value) -> None:
        step, steps, message = value
        self.progress.setRange(0, steps)
        self.progress.setValue(step)
        self.progress.setFormat(f"{message}  (%v/%m)")
        self.session.say(message)

    def _finished(self, folder) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if folder is None:
            self.session.say("finetune + detect cancelled")
            return
        self.progress.setValue(self.progress.maximum())
        self.session.load(folder)
        self.session.say(f"new detection loaded from {folder}")

    def _failed(self, exc) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.session.say(f"finetune + detect failed: {exc}")

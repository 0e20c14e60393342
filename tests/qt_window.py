"""Qt widget windows drawn offscreen for the held-out corpus: python tests/qt_window.py NAME OUT.png.

Run as its own process (QT_QPA_PLATFORM=offscreen) so that Qt's one application per process never
meets the test process; the window is grabbed as a window capture would see it.
"""

from __future__ import annotations

import sys

from PySide6.QtGui import QAction, QColor, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QRadioButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

UPDATE = ("A new version of the system is ready to install. Your computer will restart when the "
          "installation is finished, so save your work first.")


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    font = label.font()
    font.setPointSize(16)
    font.setBold(True)
    label.setFont(font)
    return label


def _dark(app: QApplication) -> None:
    palette = QPalette()
    for role, colour in ((QPalette.Window, "#2b2b2b"), (QPalette.WindowText, "#e6e6e6"), (QPalette.Base, "#1e1e1e"),
                         (QPalette.Text, "#e6e6e6"), (QPalette.Button, "#3c3f41"), (QPalette.ButtonText, "#e6e6e6")):
        palette.setColor(role, QColor(colour))
    app.setPalette(palette)


def contact(app: QApplication) -> QWidget:
    """The issue's "New contact" window: menu bar, toolbar, a labelled form, a check box, OK / Cancel."""
    window = QMainWindow()
    window.resize(640, 420)
    for name in ("File", "Edit", "View", "Help"):
        window.menuBar().addMenu(name)
    bar = window.addToolBar("main")
    for name in ("New", "Open", "Save"):
        bar.addAction(QAction(name, window))
    body = QWidget()
    column = QVBoxLayout(body)
    column.addWidget(_heading("New contact"))
    form = QFormLayout()
    form.addRow("Full name:", QLineEdit("Jonas Berg"))
    form.addRow("Email:", QLineEdit("jonas.berg@example.org"))
    form.addRow("Phone:", QLineEdit())
    group = QComboBox()
    group.addItems(["Work", "Home"])
    form.addRow("Group:", group)
    column.addLayout(form)
    column.addWidget(QCheckBox("Add to favourites"))
    column.addStretch()
    box = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
    style = app.style()
    box.button(QDialogButtonBox.Ok).setIcon(style.standardIcon(QStyle.SP_DialogOkButton))
    box.button(QDialogButtonBox.Cancel).setIcon(style.standardIcon(QStyle.SP_DialogCancelButton))
    column.addWidget(box)
    window.setCentralWidget(body)
    return window


def update(app: QApplication) -> QWidget:
    """A software-update dialog: heading, a wrapped paragraph, radio choices, two buttons."""
    window = QWidget()
    window.resize(520, 260)
    column = QVBoxLayout(window)
    column.addWidget(_heading("Software update"))
    text = QLabel(UPDATE)
    text.setWordWrap(True)
    column.addWidget(text)
    column.addWidget(QRadioButton("Tonight"))
    column.addWidget(QRadioButton("Tomorrow morning"))
    column.addStretch()
    row = QDialogButtonBox()
    row.addButton(QPushButton("Remind me later"), QDialogButtonBox.RejectRole)
    row.addButton(QPushButton("Install now"), QDialogButtonBox.AcceptRole)
    column.addWidget(row)
    return window


if __name__ == "__main__":
    name, out = sys.argv[1], sys.argv[2]
    qt = QApplication([sys.argv[0]])
    qt.setStyle("Fusion")
    if name.endswith("-dark"):
        _dark(qt)
    shown = {"contact": contact, "update": update}[name.removesuffix("-dark")](qt)
    shown.show()
    for button in shown.findChildren(QPushButton)[:1]:  # focus on a button: no caret in a field
        button.setFocus()
    qt.processEvents()
    shown.grab().save(out)

"""Qt Quick (QML) windows drawn offscreen for the held-out corpus: python tests/qml_window.py NAME OUT.png.

Run as its own process (QT_QPA_PLATFORM=offscreen): the offscreen platform draws Qt Quick with its
software scene graph, which draws every control of the Basic and Universal styles (Material's raised
buttons are drawn through a shader layer that it leaves out, so Material is not used here).
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QByteArray, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtQml import QQmlApplicationEngine
from PySide6.QtQuickControls2 import QQuickStyle

UPDATE = ("Version 2.4 adds offline maps and a faster search. Older devices may need to download the "
          "maps again after the update.")

PRINTER = """
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
ApplicationWindow {
    width: 560; height: 340; visible: true; title: "Add printer"
    ColumnLayout {
        anchors.fill: parent; anchors.margins: 20; spacing: 12
        Label { text: "Add printer"; font.pixelSize: 22; font.bold: true }
        GridLayout {
            columns: 2; columnSpacing: 12; rowSpacing: 8
            Label { text: "Name:" }
            TextField { text: "Office laser"; Layout.fillWidth: true }
            Label { text: "Address:" }
            TextField { text: "192.168.1.40"; Layout.fillWidth: true }
            Label { text: "Model:" }
            ComboBox { model: ["LaserJet 400", "Other"]; Layout.fillWidth: true }
        }
        CheckBox { text: "Share this printer" }
        Item { Layout.fillHeight: true }
        DialogButtonBox {
            standardButtons: DialogButtonBox.Ok | DialogButtonBox.Cancel; Layout.alignment: Qt.AlignRight
        }
    }
}
"""

NOTES = """
import QtQuick
import QtQuick.Controls
import QtQuick.Controls.Universal
import QtQuick.Layouts
ApplicationWindow {
    width: 720; height: 460; visible: true; title: "Notes"
    Universal.theme: Universal.Dark
    menuBar: MenuBar {
        Menu { title: "File" }
        Menu { title: "Edit" }
        Menu { title: "View" }
        Menu { title: "Help" }
    }
    header: ToolBar {
        RowLayout {
            ToolButton { text: "New" }
            ToolButton { text: "Open" }
            ToolButton { text: "Save" }
        }
    }
    ColumnLayout {
        anchors.fill: parent; anchors.margins: 24; spacing: 14
        Label { text: "Release notes"; font.pixelSize: 24; font.bold: true }
        Label { text: "@TEXT@"; wrapMode: Text.WordWrap; Layout.fillWidth: true }
        Item { Layout.fillHeight: true }
        RowLayout {
            Layout.alignment: Qt.AlignRight; spacing: 12
            Button { text: "Later" }
            Button { text: "Update now"; highlighted: true }
        }
    }
}
""".replace("@TEXT@", UPDATE)

SCREENS = {"printer": ("Basic", PRINTER), "notes-dark": ("Universal", NOTES)}  # name: (style, QML)


if __name__ == "__main__":
    name, out = sys.argv[1], sys.argv[2]
    style, source = SCREENS[name]
    QQuickStyle.setStyle(style)
    app = QGuiApplication([sys.argv[0]])
    engine = QQmlApplicationEngine()
    engine.loadData(QByteArray(source.encode()))
    window = engine.rootObjects()[0]

    def grab() -> None:
        window.grabWindow().save(out)
        app.quit()

    QTimer.singleShot(500, grab)  # after the first frames are laid out and drawn
    app.exec()

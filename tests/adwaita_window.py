"""A GTK 4 / libadwaita window in the dark style for the held-out corpus, run with the system's Python
(PyGObject): /usr/bin/python3 tests/adwaita_window.py. It stays open until it is closed."""

import gi

gi.require_version("Gtk", "4.0")
gi.require_version("Adw", "1")
from gi.repository import Adw, Gtk  # noqa: E402


def build(app: Adw.Application) -> None:
    Adw.StyleManager.get_default().set_color_scheme(Adw.ColorScheme.FORCE_DARK)
    window = Adw.ApplicationWindow(application=app, title="Connect to server", default_width=560,
                                   default_height=360)
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL)
    box.append(Adw.HeaderBar())
    grid = Gtk.Grid(row_spacing=12, column_spacing=12, margin_top=18, margin_start=24, margin_end=24)
    for row, (name, text) in enumerate((("Server:", "files.example.net"), ("Username:", ""))):
        grid.attach(Gtk.Label(label=name, xalign=0), 0, row, 1, 1)
        grid.attach(Gtk.Entry(text=text, hexpand=True), 1, row, 1, 1)
    grid.attach(Gtk.Label(label="Protocol:", xalign=0), 0, 2, 1, 1)
    grid.attach(Gtk.DropDown.new_from_strings(["SFTP", "WebDAV"]), 1, 2, 1, 1)
    grid.attach(Gtk.CheckButton(label="Remember this server"), 1, 3, 1, 1)
    box.append(grid)
    buttons = Gtk.Box(spacing=12, halign=Gtk.Align.END, margin_top=24, margin_end=24)
    buttons.append(Gtk.Button(label="Cancel"))
    connect = Gtk.Button(label="Connect")
    connect.add_css_class("suggested-action")
    buttons.append(connect)
    box.append(buttons)
    window.set_content(box)
    window.present()
    print("ready", flush=True)


if __name__ == "__main__":
    application = Adw.Application(application_id="org.example.HeldOut")
    application.connect("activate", build)
    application.run([])

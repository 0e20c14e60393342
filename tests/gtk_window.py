"""A native GTK 3 window with known text and buttons, the last one focused; run by the system's python3
(its PyGObject and GTK typelibs), on Wayland or X11 as GDK_BACKEND says.

usage: python3 gtk_window.py TITLE TEXT [BUTTON ...]; prints "ready" once the window is shown and active.
"""

import sys

import gi

gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk  # noqa: E402


def main() -> None:
    title, text, *buttons = sys.argv[1:]
    window = Gtk.Window(title=title)
    window.set_default_size(900, 500)
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=24, margin=40)
    label = Gtk.Label()
    label.set_markup(f"<span font='28'>{GLib.markup_escape_text(text)}</span>")
    box.pack_start(label, True, True, 0)
    row = Gtk.Box(spacing=24)
    made = []
    for name in buttons:
        button = Gtk.Button(label=name)
        button.get_child().set_markup(f"<span font='20'>{GLib.markup_escape_text(name)}</span>")
        row.pack_start(button, False, False, 0)
        made.append(button)
    box.pack_start(row, False, False, 0)
    window.add(box)
    window.connect("destroy", Gtk.main_quit)
    window.show_all()
    if made:
        made[-1].grab_focus()

    said = []

    def ready() -> bool:
        if not said:
            said.append(True)
            print("ready", flush=True)
        return False

    # ready once the window holds the keyboard focus (then its focused button is what AT-SPI reports), or
    # after 3 s where nothing gives it the focus (no keyboard on headless GNOME, no window manager on Xvfb)
    window.connect("notify::is-active", lambda w, _: w.is_active() and GLib.timeout_add(300, ready))
    GLib.timeout_add(3000, ready)
    Gtk.main()


if __name__ == "__main__":
    main()

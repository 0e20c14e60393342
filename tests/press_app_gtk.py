"""press_app.py's window as a native GTK 3 client, for pressing on Wayland (run by the system's python3).

The same controls with no accessible names: buttons that are pictures of their words (PNG files the
test draws with press_app.draw), an entry with a plain label beside it, a table of labels; a Details
dialog with an OK picture button. usage: python3 press_app_gtk.py PICTURES_FOLDER; prints "ready" once
shown and active, then one line per thing the user did, as press_app.py does.
"""

import sys

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk, GLib, Gtk  # noqa: E402

CSS = b"""
window, dialog { background: white; }
label { font: 18pt "DejaVu Sans"; color: black; }
label.heading { font-size: 28pt; }
button { background: #d9d9d9; border: 2px solid #707070; border-radius: 2px; padding: 4px; box-shadow: none; }
entry { font: 18pt "DejaVu Sans"; border: 1px solid black; border-radius: 0; background: white; }
"""


def say(text: str) -> None:
    print(text, flush=True)


def picture_button(folder: str, words: str) -> Gtk.Button:
    button = Gtk.Button()
    button.add(Gtk.Image.new_from_file(f"{folder}/{words}.png"))
    return button


def label(text: str, css_class: str = "") -> Gtk.Label:
    made = Gtk.Label(label=text)
    if css_class:
        made.get_style_context().add_class(css_class)
    return made


def main(folder: str) -> None:
    Gtk.Settings.get_default().set_property("gtk-cursor-blink", False)  # a caret's blink is no change
    style = Gtk.CssProvider()
    style.load_from_data(CSS)
    Gtk.StyleContext.add_provider_for_screen(Gdk.Screen.get_default(), style, Gtk.STYLE_PROVIDER_PRIORITY_USER)
    root = Gtk.Window(title="Monthly report")
    root.set_default_size(640, 430)
    place = Gtk.Fixed()
    root.add(place)
    place.put(label("Monthly report", "heading"), 30, 20)
    place.put(label("Name"), 30, 90)
    entry = Gtk.Entry(text="March", width_chars=18)
    place.put(entry, 130, 86)
    for r, row in enumerate((("Item", "Price"), ("Apples", "3 euros"), ("Pears", "5 euros"), ("Plums", "7 euros"))):
        for c, text in enumerate(row):
            place.put(label(text), 30 + 200 * c, 160 + 40 * r)
    status = label("")
    place.put(status, 30, 330)

    def saved(_: Gtk.Button) -> None:
        say("Save pressed")
        status.set_text("Report saved")

    def other_clicks(_: Gtk.Button, event: Gdk.EventButton) -> bool:
        if event.type == Gdk.EventType._2BUTTON_PRESS:
            say("Save double-clicked")
        elif event.button == 3:
            say("Save right-clicked")
        return False

    def details(_: Gtk.Button) -> None:
        say("Details pressed")
        dialog = Gtk.Window(title="Details", transient_for=root, modal=True)
        dialog.set_type_hint(Gdk.WindowTypeHint.DIALOG)
        dialog.set_default_size(420, 170)
        inside = Gtk.Fixed()
        dialog.add(inside)
        inside.put(label("Saved three reports today"), 20, 20)
        ok = picture_button(folder, "OK")
        ok.connect("clicked", lambda _: (say("OK pressed"), dialog.destroy()))
        inside.put(ok, 170, 100)
        dialog.show_all()

    save = picture_button(folder, "Save")
    save.connect("clicked", saved)
    save.connect("button-press-event", other_clicks)
    place.put(save, 300, 360)
    more = picture_button(folder, "Details")
    more.connect("clicked", details)
    place.put(more, 440, 360)
    root.connect("destroy", Gtk.main_quit)
    root.show_all()
    entry.select_region(0, 0)
    save.grab_focus()  # no caret in the entry: a test cannot tell a caret from a change

    shown = []

    def ready() -> bool:
        if not shown:
            shown.append(True)
            say("ready")
        return False

    root.connect("notify::is-active", lambda w, _: w.is_active() and GLib.timeout_add(300, ready))
    GLib.timeout_add(3000, ready)
    Gtk.main()


if __name__ == "__main__":
    main(sys.argv[1])

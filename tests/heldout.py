"""Screens from toolkits and themes the reader was never tuned on (issue 20), with what each is.

Qt widgets (Fusion, light and dark palettes) drawn offscreen by tests/qt_window.py; Qt Quick windows
(the Basic style, and the Universal style dark) drawn offscreen by tests/qml_window.py; a GTK 4 /
libadwaita window in the dark style (tests/adwaita_window.py, the system's PyGObject) on the virtual
display, with its header bar; a Java Swing form (tests/SwingWindow.java) in the Metal and the Nimbus
look and feel on the virtual display; web pages in the style of shops, a library and Electron apps,
light and dark, drawn by Chromium; the Qt update dialog seen at an angle (a perspective warp made with
PIL); and three of these windows on a desktop with a window manager's title bar and frame, drawn with
PIL (a bare Xvfb has no window manager). Each case names its words in reading order, its kind, its
buttons and its form fields.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from corpus import BASE, chromium_screenshot, screenshot_of
from PIL import Image

HERE = Path(__file__).resolve().parent


@dataclass
class Held:
    """One held-out screen and what a perfect reader says about it."""

    name: str
    kind: str
    image: Image.Image
    words: list[str]  # every word, in reading order
    heading: str  # the title or main heading the brief description starts with
    buttons: list[str] = field(default_factory=list)
    toolbar: list[str] = field(default_factory=list)  # tool buttons: may be named as buttons, need not be
    fields: list[tuple[str, str]] = field(default_factory=list)  # each label and what is typed in it
    sentence: str = ""  # a wrapped paragraph that must be spoken whole
    drop_downs: list[str] = field(default_factory=list)  # labels of the fields that are drop-downs
    choices: list[tuple[str, str]] = field(default_factory=list)  # check boxes and radio buttons: (label, which)


def _words(*texts: str) -> list[str]:
    return [w for t in texts for w in t.split()]


def qt(name: str, out: Path) -> Image.Image:
    subprocess.run([sys.executable, str(HERE / "qt_window.py"), name, str(out)], check=True, timeout=120,
                   capture_output=True, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    return Image.open(out).convert("RGB")


def qml(name: str, out: Path) -> Image.Image:
    subprocess.run([sys.executable, str(HERE / "qml_window.py"), name, str(out)], check=True, timeout=120,
                   capture_output=True, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    return Image.open(out).convert("RGB")


TITLE_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def decorated(window: Image.Image, title: str, dark: bool = False, size: tuple[int, int] = (1100, 640)
              ) -> Image.Image:
    """The window as a window manager shows it on a desktop: a title bar with its title in the middle and
    a close button at its right end, a thin frame around it all (a bare Xvfb has no window manager)."""
    from PIL import ImageDraw, ImageFont

    bar, ink, edge = ((48, 48, 48), (235, 235, 235), (20, 20, 20)) if dark else ((222, 221, 218), (46, 52, 54),
                                                                                  (150, 150, 150))
    screen = Image.new("RGB", size, (58, 110, 165))
    x, y, high = (size[0] - window.width) // 2, (size[1] - window.height) // 2, 34
    draw = ImageDraw.Draw(screen)
    draw.rectangle((x - 1, y - high - 1, x + window.width, y + window.height), outline=edge, fill=bar)
    screen.paste(window, (x, y))
    font = ImageFont.truetype(TITLE_FONT, 14)
    draw.text((x + window.width // 2, y - high // 2), title, fill=ink, font=font, anchor="mm")
    cx, cy = x + window.width - high // 2, y - high // 2  # the close button: a cross
    draw.line((cx - 5, cy - 5, cx + 5, cy + 5), fill=ink, width=2)
    draw.line((cx - 5, cy + 5, cx + 5, cy - 5), fill=ink, width=2)
    return screen


def warped(window: Image.Image, size: tuple[int, int] = (1100, 620)) -> Image.Image:
    """The window on a desk-coloured screen, seen from below and to the left: a keystone warp."""
    screen = Image.new("RGB", size, (70, 96, 128))
    screen.paste(window, ((size[0] - window.width) // 2, (size[1] - window.height) // 2))
    w, h = size
    # where the screen's corners are taken from (PIL's order: top left, bottom left, bottom right, top
    # right): the right side is seen further away, so it comes in and the top edge slopes
    corners = [(0, 0), (int(0.02 * w), int(0.97 * h)), (int(0.94 * w), h), (w, int(0.04 * h))]
    return screen.transform(size, Image.Transform.QUAD, [c for corner in corners for c in corner],
                            Image.Resampling.BICUBIC, fillcolor=(30, 30, 30))


CONTACT = ["File", "Edit", "View", "Help", "New", "Open", "Save", "New contact", "Full name:", "Jonas Berg",
           "Email:", "jonas.berg@example.org", "Phone:", "Group:", "Work", "Add to favourites", "OK", "Cancel"]
RADIOS = [("Tonight", "radio button"), ("Tomorrow morning", "radio button")]
CONTACT_FIELDS = [("Full name:", "Jonas Berg"), ("Email:", "jonas.berg@example.org"), ("Phone:", ""),
                  ("Group:", "Work")]
UPDATE = ("A new version of the system is ready to install. Your computer will restart when the "
          "installation is finished, so save your work first.")
PRINTER = ["Add printer", "Name:", "Office laser", "Address:", "192.168.1.40", "Model:", "LaserJet 400",
           "Share this printer", "OK", "Cancel"]
PRINTER_FIELDS = [("Name:", "Office laser"), ("Address:", "192.168.1.40"), ("Model:", "LaserJet 400")]
NOTES = ("Version 2.4 adds offline maps and a faster search. Older devices may need to download the maps "
         "again after the update.")
ROOM = ["Reserve a room", "Guest name:", "Maria Lopez", "Date:", "12 March 2027", "Notes:", "Room:", "Harbour view",
        "Send a reminder", "OK", "Cancel"]
ROOM_FIELDS = [("Guest name:", "Maria Lopez"), ("Date:", "12 March 2027"), ("Notes:", ""), ("Room:", "Harbour view")]
UPDATE_WORDS = ["Software update", UPDATE, "Tonight", "Tomorrow morning", "Install now", "Remind me later"]

SHOP = ("<nav class=band><a>Women</a><a>Men</a><a>Kids</a><a>Footwear</a><a>Sale</a><a>Stores</a></nav>"
        "<main><h1>Winter sale</h1><p>Coats and boots at half price until Sunday.</p>"
        "<button class=primary>Shop now</button></main>"
        "<div class=cookie><p>We use cookies to remember your basket and to count visits.</p>"
        "<button class=primary>Accept all</button><button class=plain>Reject</button></div>")
LIBRARY = ("<nav class=band><a>Katalog</a><a>Öffnungszeiten</a><a>Veranstaltungen</a><a>Kontakt</a></nav>"
           "<main><h1>Stadtbibliothek Musterstadt</h1><p>Suchen Sie in über 80.000 Medien.</p>"
           "<div class=row><span class=label>Suchbegriff:</span><input></div>"
           "<p><button class=primary>Suchen</button></p></main>")
DARK_SITE = ("<main><h1>Build faster with Flux</h1><p>Deploy your app in seconds and scale it without "
             "thinking about servers.</p><p><button class=light>Get started</button>"
             "<button class=ghost>Sign in</button></p><p>Free for personal projects.</p></main>")
SETTINGS = ("<div class=app><aside><p>General</p><p>Accounts</p><p>Privacy</p></aside><main>"
            "<h1>Account settings</h1>"
            "<div class=row><span class=label>Display name:</span><input value='Ana Silva'></div>"
            "<div class=row><span class=label>Email:</span><input value='ana@example.com'></div>"
            "<div class=row><span class=label>Language:</span><select><option>Portuguese</option></select></div>"
            "<p><label class=check><input type=checkbox checked> Send me the newsletter</label></p>"
            "<p><button class=primary>Save</button><button class=plain>Discard</button></p></main></div>")
STYLE = {
    "light": "body{background:#fff;color:#222} .band{background:#0b3d91} .band a{color:#fff}"
             " .primary{background:#1a73e8;color:#fff} .plain{background:#fff;color:#1a73e8;border:1px solid #8ab4f8}"
             " input,select{border:1px solid #888;background:#fff} .cookie{background:#f3f3f3;padding:8px 40px}"
             " aside{background:#f0f2f5}",
    "dark": "body{background:#1e1e1e;color:#e8eaed} .band{background:#2e7d32} .band a{color:#fff}"
            " .primary{background:#8ab4f8;color:#1e1e1e} .plain{background:#1e1e1e;color:#8ab4f8;"
            "border:1px solid #5f6368} input,select{border:1px solid #5f6368;background:#2b2b2b;color:#e8eaed}"
            " .light{background:#e8eaed;color:#1e1e1e} .ghost{background:#1e1e1e;color:#c8c8c8;"
            "border:1px solid #4a4a4a} .cookie{background:#2b2b2b;padding:8px 40px} aside{background:#252526}",
}
EXTRA = (" nav a{margin-right:28px} .app{display:flex} aside{width:180px;padding:20px;min-height:720px}"
         " select{font:inherit;padding:6px;width:294px;margin-top:4px} .check{display:inline;margin:0}"
         " .cookie button{margin-top:4px} input[type=checkbox]{width:auto;margin:0 8px 0 0}")


def _page(body: str, theme: str) -> str:
    return f"<html><head><style>{BASE}{EXTRA}{STYLE[theme]}</style></head><body>{body}</body></html>"


def build(folder: Path, display: str) -> list[Held]:
    """Every held-out case, rendered now; the GTK window on the virtual `display`."""
    gtk = screenshot_of(["env", "GSK_RENDERER=cairo", "GDK_BACKEND=x11", "/usr/bin/python3",
                         str(HERE / "adwaita_window.py")], display)
    update_light = qt("update", folder / "update.png")
    shop_words = ["Women", "Men", "Kids", "Footwear", "Sale", "Stores", "Winter sale",
                  "Coats and boots at half price until Sunday.", "Shop now",
                  "We use cookies to remember your basket and to count visits.", "Accept all", "Reject"]
    settings_words = ["General", "Accounts", "Privacy", "Account settings", "Display name:", "Ana Silva",
                      "Email:", "ana@example.com", "Language:", "Portuguese", "Send me the newsletter", "Save",
                      "Discard"]
    settings_fields = [("Display name:", "Ana Silva"), ("Email:", "ana@example.com"), ("Language:", "Portuguese")]
    cases = [
        Held("qt-contact", "application window", qt("contact", folder / "contact.png"), _words(*CONTACT),
             "New contact", ["OK", "Cancel"], ["New", "Open", "Save"], CONTACT_FIELDS, drop_downs=["Group:"],
             choices=[("Add to favourites", "check box")]),
        Held("qt-contact-dark", "application window", qt("contact-dark", folder / "contact-dark.png"),
             _words(*CONTACT), "New contact", ["OK", "Cancel"], ["New", "Open", "Save"], CONTACT_FIELDS,
             drop_downs=["Group:"], choices=[("Add to favourites", "check box")]),
        Held("qt-update", "dialog", update_light, _words(*UPDATE_WORDS), "Software update",
             ["Install now", "Remind me later"], sentence=UPDATE, choices=RADIOS),
        Held("qt-update-dark", "dialog", qt("update-dark", folder / "update-dark.png"), _words(*UPDATE_WORDS),
             "Software update", ["Install now", "Remind me later"], sentence=UPDATE, choices=RADIOS),
        Held("qt-update-warped", "dialog", warped(update_light), _words(*UPDATE_WORDS), "Software update",
             ["Install now", "Remind me later"], sentence=UPDATE, choices=RADIOS),
        Held("web-shop-light", "web page", chromium_screenshot(_page(SHOP, "light"), folder / "shop.png"),
             _words(*shop_words), "Winter sale", ["Shop now", "Accept all", "Reject"]),
        Held("web-library-dark", "web page", chromium_screenshot(_page(LIBRARY, "dark"), folder / "library.png"),
             _words("Katalog Öffnungszeiten Veranstaltungen Kontakt", "Stadtbibliothek Musterstadt",
                    "Suchen Sie in über 80.000 Medien.", "Suchbegriff:", "Suchen"),
             "Stadtbibliothek Musterstadt", ["Suchen"], fields=[("Suchbegriff:", "")]),
        Held("web-site-dark", "web page", chromium_screenshot(_page(DARK_SITE, "dark"), folder / "site.png"),
             _words("Build faster with Flux", "Deploy your app in seconds and scale it without thinking about "
                    "servers.", "Get started", "Sign in", "Free for personal projects."),
             "Build faster with Flux", ["Get started", "Sign in"]),
    ]
    cases.append(Held("qml-printer-basic", "form", qml("printer", folder / "printer.png"), _words(*PRINTER),
                      "Add printer", ["OK", "Cancel"], fields=PRINTER_FIELDS, drop_downs=["Model:"],
                      choices=[("Share this printer", "check box")]))
    cases.append(Held("qml-notes-universal-dark", "application window", qml("notes-dark", folder / "notes.png"),
                      _words("File Edit View Help New Open Save", "Release notes", NOTES, "Later", "Update now"),
                      "Release notes", ["Later", "Update now"], ["New", "Open", "Save"], sentence=NOTES))
    cases.append(Held("gtk4-adwaita-dark", "form", gtk,
                      _words("Connect to server", "Server:", "files.example.net", "Username:", "Protocol:", "SFTP",
                             "Remember this server", "Cancel", "Connect"),
                      "Connect to server", ["Cancel", "Connect"],
                      fields=[("Server:", "files.example.net"), ("Username:", ""), ("Protocol:", "SFTP")],
                      drop_downs=["Protocol:"], choices=[("Remember this server", "check box")]))
    for look in ("metal", "nimbus"):  # Java Swing on the virtual display, run from its one source file
        swing = screenshot_of(["java", str(HERE / "SwingWindow.java"), look], display)
        cases.append(Held(f"swing-{look}", "form", swing, _words(*ROOM), "Reserve a room", ["OK", "Cancel"],
                          fields=ROOM_FIELDS, drop_downs=["Room:"], choices=[("Send a reminder", "check box")]))
    # with a window manager's title bar: a dialog, titled by its bar rather than by its largest line
    room = screenshot_of(["java", str(HERE / "SwingWindow.java"), "metal"], display).crop((40, 40, 600, 380))
    cases.append(Held("swing-metal-titled-dark", "dialog", decorated(room, "Book a room", dark=True),
                      _words("Book a room", *ROOM), "Book a room", ["OK", "Cancel"], fields=ROOM_FIELDS,
                      drop_downs=["Room:"], choices=[("Send a reminder", "check box")]))
    cases.append(Held("qml-printer-titled", "dialog", decorated(Image.open(folder / "printer.png").convert("RGB"),
                                                                "Printers"),
                      _words("Printers", *PRINTER), "Printers", ["OK", "Cancel"], fields=PRINTER_FIELDS,
                      drop_downs=["Model:"], choices=[("Share this printer", "check box")]))
    cases.append(Held("qt-update-titled", "dialog", decorated(update_light, "Software Updater"),
                      _words("Software Updater", *UPDATE_WORDS), "Software Updater",
                      ["Install now", "Remind me later"], sentence=UPDATE, choices=RADIOS))
    for theme in ("light", "dark"):
        cases.append(Held(f"app-settings-{theme}", "form",
                          chromium_screenshot(_page(SETTINGS, theme), folder / f"settings-{theme}.png"),
                          _words(*settings_words), "Account settings", ["Save", "Discard"],
                          fields=settings_fields, drop_downs=["Language:"],
                          choices=[("Send me the newsletter", "check box")]))
    return cases

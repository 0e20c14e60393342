"""Screens from real toolkits and real-looking images, each with the words, buttons and non-buttons on it.

Chromium draws web pages (tables, forms, navigation bars, buttons; light and dark), real X programs
draw dialogs and terminals on a virtual display (zenity's GTK, xmessage's Athena widgets with a bitmap
font, xterm with a bitmap and a small TrueType font, Tk), and photos.py makes photographed pages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent


@dataclass
class Case:
    """One screen and what a perfect reader would find on it."""

    name: str
    kind: str  # dialog, web page, document, terminal, form, table, photo of a page
    image: Image.Image
    words: list[str]
    buttons: list[str] = field(default_factory=list)
    not_buttons: list[str] = field(default_factory=list)  # words on screen that must never be buttons
    table: list[list[str]] = field(default_factory=list)  # header row, then rows
    last_lines: list[str] = field(default_factory=list)  # a terminal's last lines, prompt last
    fields: list[tuple[str, str]] = field(default_factory=list)  # a form's labels and what is typed in each


def _words(*texts: str) -> list[str]:
    return [w for t in texts for w in t.split()]


# -- web pages ----------------------------------------------------------------------------------
STYLE = {
    "light": "body{background:#fff;color:#222} nav{background:#f0f2f5} .primary{background:#1a73e8;color:#fff}"
             " .plain{background:#fff;color:#1a73e8;border:1px solid #8ab4f8} td,th{border:1px solid #999}"
             " a{color:#1a0dab} input{border:1px solid #888;background:#fff}",
    "dark": "body{background:#202124;color:#e8eaed} nav{background:#303134} .primary{background:#8ab4f8;"
            "color:#202124} .plain{background:#202124;color:#8ab4f8;border:1px solid #5f6368}"
            " td,th{border:1px solid #5f6368} a{color:#8ab4f8} input{border:1px solid #888;background:#303134}"
            " table{border-collapse:separate;border-spacing:3px}",  # cells boxed one by one
}
BASE = ("body{font-family:'DejaVu Sans',sans-serif;font-size:15px;margin:0} main{padding:20px 40px}"
        " nav{padding:12px 40px} nav a{margin-right:28px;text-decoration:none} h1{font-size:26px}"
        " button{font:inherit;padding:8px 18px;margin-right:14px;border-radius:6px;border:none}"
        " table{border-collapse:collapse;margin:16px 0} td,th{padding:6px 14px;text-align:left}"
        " label{display:block;margin-top:12px} .row{margin-top:12px} .label{display:inline-block;width:110px}"
        " input{font:inherit;padding:6px;width:280px;margin-top:4px}")

STATEMENT = [["Date", "Description", "Amount"], ["Oct 5", "Salary", "2,310.00"],
             ["Oct 9", "Electricity bill", "-88.75"], ["Oct 12", "Groceries", "-64.20"]]
NAV = ["Home", "Accounts", "Payments", "Help"]


def _table_html(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{c}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def web_pages() -> list[tuple[str, str, str, dict]]:
    """(name, kind, html, expectations) for each web page."""
    nav = "<nav>" + "".join(f'<a href="#">{n}</a>' for n in NAV) + "</nav>"
    statement = (
        f"{nav}<main><h1>Account statement</h1><p>Balance: 4,512.30 on 12 October</p>"
        f"{_table_html(STATEMENT)}<button class=primary>Download PDF</button></main>")
    form = (
        "<main><h1>Create your account</h1><p>It takes less than a minute.</p>"
        "<label>Full name<br><input></label><label>Email address<br><input></label>"
        "<label>Password<br><input type=password></label>"
        "<p><a href='#'>Already registered? Sign in here</a></p>"
        "<button class=primary>Create account</button><button class=plain>Cancel</button></main>")
    beside = (
        "<main><h1>Delivery address</h1><p>Where should we send your order?</p>"
        "<div class=row><span class=label>Name</span><input value='Maria Lopez'></div>"
        "<div class=row><span class=label>Street</span><input></div>"
        "<div class=row><span class=label>City</span><input></div>"
        "<p><button class=primary>Save address</button><button class=plain>Back</button></p></main>")
    landing = (
        f"<nav>{''.join(f'<a href=#>{n}</a>' for n in ('Products', 'Pricing', 'Docs', 'Blog'))}</nav>"
        "<main><h1>Backups that just work</h1><p>Every file on every laptop, saved each hour and kept "
        "for a year.</p><p>Restore a single file or a whole machine in a few clicks.</p>"
        "<button class=primary>Start free trial</button><button class=plain>Contact sales</button>"
        "<p>Read the <a href=#>getting started guide</a> or the <a href=#>release notes</a>.</p></main>")
    article = (
        "<main><h1>Caring for houseplants in winter</h1><p>Most houseplants grow slowly in winter, "
        "so they need less water than in summer.</p><p>Keep them away from radiators and cold "
        "draughts, and give them as much daylight as you can.</p><p>Wipe dust off large leaves "
        "once a month so they can breathe.</p></main>")
    pages = []
    for theme in ("light", "dark"):
        pages += [
            (f"web-table-{theme}", "table", statement, dict(
                words=_words(*NAV, "Account statement", "Balance: 4,512.30 on 12 October",
                             *[c for row in STATEMENT for c in row], "Download PDF"),
                buttons=["Download PDF"], table=STATEMENT,
                not_buttons=[*NAV, *[c for row in STATEMENT for c in row]])),
            (f"web-form-{theme}", "form", form, dict(
                words=_words("Create your account", "It takes less than a minute.", "Full name",
                             "Email address", "Password", "Already registered? Sign in here",
                             "Create account", "Cancel"),
                buttons=["Create account", "Cancel"],
                not_buttons=["Full name", "Email address", "Password", "Sign in here"],
                fields=[("Full name", ""), ("Email address", ""), ("Password", "")])),
            (f"web-form-beside-{theme}", "form", beside, dict(
                words=_words("Delivery address", "Where should we send your order?", "Name", "Maria Lopez",
                             "Street", "City", "Save address", "Back"),
                buttons=["Save address", "Back"], not_buttons=["Name", "Street", "City", "Maria Lopez"],
                fields=[("Name", "Maria Lopez"), ("Street", ""), ("City", "")])),
            (f"web-landing-{theme}", "web page", landing, dict(
                words=_words("Products Pricing Docs Blog", "Backups that just work",
                             "Every file on every laptop, saved each hour and kept for a year.",
                             "Restore a single file or a whole machine in a few clicks.",
                             "Start free trial", "Contact sales",
                             "Read the getting started guide or the release notes."),
                buttons=["Start free trial", "Contact sales"],
                not_buttons=["Products", "Pricing", "Docs", "Blog", "getting started guide"])),
        ]
    pages.append(("web-article-light", "document", article, dict(
        words=_words("Caring for houseplants in winter",
                     "Most houseplants grow slowly in winter, so they need less water than in summer.",
                     "Keep them away from radiators and cold draughts, and give them as much daylight "
                     "as you can.", "Wipe dust off large leaves once a month so they can breathe."),
        not_buttons=["Caring for houseplants in winter"])))
    return [(n, k, f"<html><head><style>{BASE}{STYLE['dark' if 'dark' in n else 'light']}</style></head>"
                   f"<body>{html}</body></html>", e) for n, k, html, e in pages]


def chromium_screenshot(html: str, out: Path, size: tuple[int, int] = (1280, 720)) -> Image.Image:
    """Chromium's own rendering of `html`, headless, with no network and a throwaway profile."""
    page = out.with_suffix(".html")
    page.write_text(html)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--hide-scrollbars", f"--window-size={size[0]},{size[1]}", f"--screenshot={out}",
             page.as_uri()], check=True, capture_output=True, timeout=120)
    return Image.open(out).convert("RGB")


# -- real X programs ------------------------------------------------------------------------------
TERMINAL_OUTPUT = [
    "$ make test",
    "running 12 tests",
    "test parse_date ... ok",
    "test read_config ... ok",
    "test upload_file ... FAILED",
    "error: connection refused by server at port 8080",
    "1 test failed, 11 passed",
    "maria@laptop:~/project$",
]


def x_programs() -> list[tuple[str, str, list[str], dict]]:
    """(name, kind, command, expectations) for each real window shown on the virtual display."""
    script = "; ".join(f"echo '{line}'" for line in TERMINAL_OUTPUT[:-1])
    terminal = ["-geometry", "90x24+0+0", "-bg", "black", "-fg", "grey90", "-e", "sh", "-c",
                f"clear; {script}; printf '{TERMINAL_OUTPUT[-1]} '; sleep 600"]
    term = dict(words=_words(*TERMINAL_OUTPUT), last_lines=TERMINAL_OUTPUT[-3:],
                not_buttons=["ok", "FAILED"])
    question = "Delete the file report.txt? It will be gone for good."
    message = "The document was changed by another program. Reload it and lose your edits?"
    return [
        ("zenity-question", "dialog", ["zenity", "--question", "--title=Delete file", f"--text={question}",
                                       "--ok-label=Delete", "--cancel-label=Keep"],
         dict(words=_words(question, "Delete", "Keep"), buttons=["Keep", "Delete"])),
        ("zenity-info", "dialog", ["zenity", "--info", "--title=Backup", "--text=Backup finished: 312 files saved.",
                                   "--width=420"],
         dict(words=_words("Backup finished: 312 files saved.", "OK"), buttons=["OK"])),
        ("xmessage", "dialog", ["xmessage", "-center", "-buttons", "Reload,Keep mine,Cancel", message],
         dict(words=_words(message, "Reload", "Keep mine", "Cancel"), buttons=["Reload", "Keep mine", "Cancel"])),
        ("xterm-fixed", "terminal", ["xterm", "-fn", "fixed", *terminal], term),
        ("xterm-small-ttf", "terminal", ["xterm", "-fa", "DejaVu Sans Mono", "-fs", "9", *terminal], term),
        ("tk-dialog", "dialog", [sys.executable, "-m", "describe_screen.sample_window", "Printer",
                                 "The printer is out of paper\nAdd paper and press Continue", "14", "#ececec",
                                 "black", "Continue", "Cancel"],
         dict(words=_words("The printer is out of paper", "Add paper and press Continue", "Continue", "Cancel"),
              buttons=["Continue", "Cancel"])),
    ]


def screenshot_of(command: list[str], display: str, timeout: float = 60.0) -> Image.Image:
    """Run `command` on the virtual display, wait until its window is drawn, grab the whole screen, close it.

    "Drawn" is seen, not guessed: the screen differs from how it looked before the program started and
    two grabs 0.5 s apart are the same (a loaded machine maps a GTK dialog seconds late)."""
    from PIL import ImageChops

    from describe_screen.capture import capture

    def same(a: Image.Image, b: Image.Image) -> bool:
        return ImageChops.difference(a, b).getbbox() is None

    env = dict(os.environ, DISPLAY=display, NO_AT_BRIDGE="1", GTK_A11Y="none")
    empty = capture("screen").image
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            cwd=HERE.parent)
    try:
        deadline = time.monotonic() + timeout
        shot = empty
        while time.monotonic() < deadline:
            time.sleep(0.5)
            previous, shot = shot, capture("screen").image
            if not same(shot, empty) and same(shot, previous):
                break
        return shot
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def photo_cases() -> list[Case]:
    from photos import HARD_PHOTOS, LETTER, PHOTOS, photo

    return [Case(name, "photo of a page", photo(camera=camera).image, _words(*LETTER),
                 not_buttons=["Northern Power Company"])
            for name, camera in {**PHOTOS, **HARD_PHOTOS}.items()]


def build(display: str, folder: Path) -> list[Case]:
    """Every case, rendered now (a few seconds each)."""
    cases = []
    for name, kind, html, expect in web_pages():
        cases.append(Case(name, kind, chromium_screenshot(html, folder / f"{name}.png"), **expect))
    os.environ["DISPLAY"] = display
    for name, kind, command, expect in x_programs():
        image = screenshot_of(command, display)
        image.save(folder / f"{name}.png")
        cases.append(Case(name, kind, image, **expect))
    return cases + photo_cases()


def needed_programs() -> list[str]:
    return [p for p in ("chromium", "zenity", "xmessage", "xterm") if shutil.which(p) is None]

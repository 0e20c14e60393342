"""What to say about a screen's text: the kind of screen, the brief summary, the full reading, and
where a line is, all from the layout (layout.py) of the recognised lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from describe_screen.i18n import N_, _, ngettext, spoken_list
from describe_screen.layout import (
    Block,
    Box,
    TextLine,
    app_bars,
    app_menu,
    bar_lines,
    blocks,
    buttons,
    fields,
    heading,
    headings,
    in_order,
    marked,
    menu_bar,
    rows_text,
    table,
    union,
    window_title,
    wordy,
)

PARAGRAPH_WORDS = 8  # a block this long is running text
PROMPT = re.compile(r"(?:(?:^|\s)[\w.-]+@[\w.-]+:\S*\s?[$#%>]|^\S*[$#%>]|^[A-Z]:\\.*>)\W?$")  # a shell prompt
LAST_LINES = 3  # a terminal's last lines said first: the result and the prompt
SUMMARY_WORDS = 25
DIALOG_PIXELS = 800 * 600  # a capture no larger than this is one small window's
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")

def read_table(rows: list[list[TextLine]]) -> Iterator[str]:
    """A table as speech: its header names, then row by row, each cell with its column's name."""
    names = [cell.text for cell in rows[0]]
    yield _("A table with {columns} and {rows}: {names}.", columns=_columns(len(names)), rows=_rows(len(rows)),
            names=", ".join(names))
    for n, row in enumerate(rows[1:], start=2):
        cells = ", ".join(f"{name} {cell.text}" for name, cell in zip(names, row, strict=True))
        yield _("Row {n}: {cells}.", n=n, cells=cells)


def _prompt(text: str) -> bool:
    return bool(PROMPT.search(text.strip()))


def kind(lines: list[TextLine], size: tuple[int, int], photo: bool = False) -> str:
    """What kind of screen this is, from evidence only; "screen" when unsure."""
    if photo:
        return "photo of a page"
    if not lines:
        return "screen"
    ordered = in_order(lines)
    commands = sum(_prompt(line.text) or line.text.startswith(("$ ", "# ")) for line in ordered)
    if _prompt(ordered[-1].text) or commands >= 2:
        return "terminal"
    labels = buttons(lines)
    grid = table(lines)
    if app_bars(lines)[0]:
        return "application window"
    if labels and window_title(lines):  # a window with a title bar, and buttons
        return "dialog"
    if labels and len(fields(lines)) >= 2:
        return "form"
    if grid:
        return "table"
    if menu_bar(lines):
        return "web page"
    if labels and _is_dialog(lines, size) and _last_row(labels, lines):
        return "dialog"
    running = [ln for ln in lines if len(ln.text.split()) >= PARAGRAPH_WORDS]
    if len(running) >= 3 and sum(len(ln.text.split()) for ln in lines) >= 30:
        return "document"
    return "screen"


def as_sentence(text: str) -> str:
    """The screen's text said as a sentence: it ends with a stop, so speech pauses after it."""
    text = text.strip()
    return text if text[-1:] in ".!?:" else text + "."


def as_clause(text: str) -> str:
    """The screen's text said inside a sentence: its own closing stop left out."""
    return as_sentence(text)[:-1]


def _summary(text: str, limit: int) -> str:
    """The first sentences of a paragraph, whole, up to `limit` words (the first one always whole);
    a paragraph with no sentence end is cut at `limit` words."""
    said: list[str] = []
    for sentence in SENTENCE_END.split(text.strip()):
        if said and len(" ".join([*said, sentence]).split()) > limit:
            break
        said.append(sentence)
    words = " ".join(said).split()
    return " ".join(words[:2 * limit]) + (" ..." if len(words) > 2 * limit else "")


KIND_WORDS = {"photo of a page": N_("A photo of a page"), "terminal": N_("A terminal"), "dialog": N_("A dialog"),
              "application window": N_("An application window"),
              "form": N_("A form"), "table": N_("A page"), "web page": N_("A web page"),
              "document": N_("A document"), "screen": N_("A screen")}
TITLED = {"photo of a page": N_("A photo of a page titled {name}"), "terminal": N_("A terminal titled {name}"),
          "dialog": N_("A dialog titled {name}"), "application window": N_("An application window titled {name}"),
          "form": N_("A form titled {name}"), "table": N_("A page titled {name}"),
          "web page": N_("A web page titled {name}"), "document": N_("A document titled {name}"),
          "screen": N_("A screen titled {name}")}


def narrate(stream: Iterable[TextLine], title: str, size: tuple[int, int], photo: bool = False
            ) -> Iterator[str]:
    """brief() in pieces, what is certain first: the title (or that it is a photo of a page) at once,
    the top line of text as soon as it is read, then the summary once every line is read.

    The first line is held back when it looks like a terminal's (a command), since a terminal is said
    from its end, and when it may be a menu, a link or a label rather than the title (see _says_first).
    """
    said = ""
    if photo:
        yield _("A photo of a page.")
    if title:
        said = title
        yield as_sentence(title)
    lines: list[TextLine] = []
    for line in stream:
        if not lines and not said and _says_first(line):
            said = line.text
            yield as_sentence(line.text)
        lines.append(line)
    if lines or not said:
        yield brief(lines, title, size, photo, said=said)


def _says_first(line: TextLine) -> bool:
    """The top line can be said before the rest is read: two or more words that are no command, no
    application menu ("File Edit View"), no field's label and not drawn in a button."""
    text = line.text
    return (len(text.split()) >= 2 and wordy(line) and not _prompt(text) and not text.startswith(("$ ", "# "))
            and not app_menu(text) and not text.endswith(":") and line.frame is None)


def brief(lines: list[TextLine], title: str, size: tuple[int, int], photo: bool = False, said: str = "") -> str:
    """One or two spoken sentences: what kind of screen, its title, its buttons, how its text begins.

    A terminal is said from its end (the last lines and the prompt), a table by its size. `said` is
    text already spoken (narrate), so it is not named again as the title.
    """
    if not lines:
        return _("{title}. No text found.", title=title) if title and not said else _("No text found on the screen.")
    what = kind(lines, size, photo)
    labels = buttons(lines)
    head = None if what == "terminal" else heading(lines)
    name = title or (head.text if head else "")
    name = "" if name == said else name
    # The first sentence: what it is, then its parts ("with a table ...", "with buttons ...") each a whole phrase.
    parts = [_(TITLED[what], name=name) if name else _(KIND_WORDS[what])]
    grid = table(lines)
    if grid and what != "terminal":
        parts.append(_("with a table with {columns} and {rows}", columns=_columns(len(grid[0])),
                       rows=_rows(len(grid))))
    choices = _choices(lines)
    names = spoken_list([b.text for b in labels])
    if labels:
        parts.append(ngettext("with a button {names}", "with buttons {names}", len(labels), names=names))
        parts += choices
    elif choices:
        parts.append(_("with {choices}", choices=", ".join(choices)))
    elif not grid:
        parts.append(ngettext("with {n} line of text", "with {n} lines of text", len(lines)))
    said = ", ".join(parts) + "."
    form = fields(lines) if what in ("form", "application window", "dialog") else []
    if form:  # each field by its label, with what is typed in it
        said += " " + _("Fields: {fields}.", fields="; ".join(_pair(label, typed) for label, typed in form))
    if what == "terminal":
        ordered = in_order(lines)
        return said + " " + _("The last lines say: {lines}", lines=" ".join(
            as_sentence(ln.text) for ln in rows_text(ordered)[-LAST_LINES:]))
    skip = ({id(ln) for ln in labels + menu_bar(lines)} | bar_lines(lines) | {id(cell) for row in grid for cell in row}
            | {id(ln) for ln in headings(lines)} | {id(ln) for label, typed in form for ln in [label, *typed]}
            | {id(ln) for ln in lines if ln.mark})
    body = blocks([ln for ln in lines if id(ln) not in skip and wordy(ln)])
    if body:
        said += " " + _("It says: {text}", text=as_sentence(_summary(body[0].text, SUMMARY_WORDS)))
    return said


def _choices(lines: list[TextLine]) -> list[str]:
    """The check boxes and the radio buttons by name: "a check box Add to favourites"."""
    said = []
    for mark, one, many in (("check box", N_("a check box {names}"), N_("check boxes {names}")),
                            ("radio button", N_("a radio button {names}"), N_("radio buttons {names}"))):
        found = marked(lines, mark)
        if found:
            said.append(ngettext(one, many, len(found), names=spoken_list([ln.text for ln in found])))
    return said


def _is_dialog(lines: list[TextLine], size: tuple[int, int]) -> bool:
    """A message box: buttons, with all the text in a smaller area than the screen, or the capture
    itself no bigger than a small window (the active window's capture of a dialog)."""
    x0, y0, x1, y1 = union([line.box for line in lines])
    small = size[0] * size[1] <= DIALOG_PIXELS or (x1 - x0) * (y1 - y0) < 0.5 * size[0] * size[1]
    return small and bool(buttons(lines))


def _last_row(labels: list[TextLine], lines: list[TextLine]) -> bool:
    """A dialog's buttons close it: no text lies below them (a web page's buttons have text after them)."""
    bottom = max(ln.box[3] for ln in labels)
    return not any(ln.centre[1] > bottom for ln in lines)


def _columns(n: int) -> str:
    return ngettext("{n} column", "{n} columns", n)


def _rows(n: int) -> str:
    return ngettext("{n} row", "{n} rows", n)


def _pair(label: TextLine, typed: list[TextLine]) -> str:
    """A field as label and value: "Full name: Jonas Berg", "Street, empty"."""
    value = " ".join(ln.text for ln in typed) or _("empty")
    value = _("{value}, drop-down", value=value) if label.drop_down else value
    return f"{label.text} {value}" if label.text.endswith(":") else f"{label.text}, {value}"


def full(lines: list[TextLine]) -> Iterator[str]:
    """All text in reading order, one spoken block at a time; a table as a table and each form field
    as its label and value, where they stand."""
    grid = table(lines)
    cells = {id(cell) for row in grid for cell in row}
    form = {id(label): typed for label, typed in fields(lines)}
    inside = {id(ln) for typed in form.values() for ln in typed}
    menu, tools = app_bars(lines)
    for said, bar in ((N_("Menu bar: {items}."), menu), (N_("Toolbar: {items}."), tools)):
        if bar:
            items = [ln.text for ln in bar] if len(bar) > 1 else bar[0].text.split()  # one line: one name a word
            yield _(said, items=spoken_list(items))
    inside |= bar_lines(lines)
    heads = {id(ln) for ln in headings(lines)}
    said_table = False
    for block in blocks([ln for ln in lines if id(ln) not in inside]):
        while id(block.lines[0]) in heads and len(block.lines) > 1:  # a title or heading is said on its own
            yield as_sentence(block.lines[0].text)
            block = Block(block.lines[1:])
        if len(block.lines) == 1 and id(block.lines[0]) in form:
            yield as_sentence(_pair(block.lines[0], form[id(block.lines[0])]))
            continue
        if any(id(ln) in cells for ln in block.lines):
            if not said_table:
                yield from read_table(grid)
                said_table = True
            rest = [ln for ln in block.lines if id(ln) not in cells]
            if rest:
                yield as_sentence(" ".join(ln.text for ln in rest))
            continue
        if len(block.lines) == 1 and block.lines[0].mark:
            yield _("{text}, {mark}.", text=block.text, mark=_(MARKS[block.lines[0].mark]))
            continue
        yield as_sentence(block.text)


MARKS = {"check box": N_("check box"), "radio button": N_("radio button")}
PLACES = {("top", "left"): N_("at the top left"), ("top", ""): N_("at the top"),
          ("top", "right"): N_("at the top right"), ("middle", "left"): N_("on the left"),
          ("middle", ""): N_("in the middle"), ("middle", "right"): N_("on the right"),
          ("bottom", "left"): N_("at the bottom left"), ("bottom", ""): N_("at the bottom"),
          ("bottom", "right"): N_("at the bottom right")}


def where(box: Box, size: tuple[int, int]) -> str:
    """Plain position words for a box: "at the top left", "in the middle", "at the bottom"."""
    cx, cy = (box[0] + box[2]) / 2 / max(size[0], 1), (box[1] + box[3]) / 2 / max(size[1], 1)
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    return _(PLACES[row, col])


def place(line: TextLine, lines: list[TextLine], size: tuple[int, int]) -> str:
    """Where a line is, said relative to the dialog when the text sits in one, else to the screen."""
    if not _is_dialog(lines, size):
        return where(line.box, size)
    x0, y0, x1, y1 = union([ln.box for ln in lines])
    box = (line.box[0] - x0, line.box[1] - y0, line.box[2] - x0, line.box[3] - y0)
    return _("{place} of the dialog", place=where(box, (x1 - x0, y1 - y0)))

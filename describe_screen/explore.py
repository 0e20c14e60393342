"""Exploring a capture element by element: the text reader's lines turned into elements (buttons,
fields, heading-like lines, table cells, text) in reading order, and a cursor that moves through them.

Pure: no capture, no speech, no clicks. The daemon keeps one Exploration per capture, speaks what
`say()` returns, and presses an element's `centre` (image pixels; Capture.to_screen maps them).
Elements come only from the reader's evidence (reader.buttons needs a drawn shape), so nothing is
invented: a label without a shape around it is text, never a button.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from describe_screen import layout, reader
from describe_screen.i18n import N_, _, ngettext, spoken_list
from describe_screen.reader import Box, TextLine

KINDS = ("button", "field", "heading", "row")  # the kinds one can jump between ("row": a table's rows)
MOVES = ("next", "previous", "below", "above", "where", "first", "last",
         *(f"{way}-{kind}" for kind in KINDS for way in ("next", "previous")))
HEADING_RATIO = 1.2  # a line this much taller than the body text, standing alone, reads as a heading
HEADING_WORDS = 8  # ... when it is this short
KIND_NAMES = {"button": N_("Button"), "field": N_("Field"), "heading": N_("Heading"), "text": N_("Text"),
              "cell": N_("Cell")}
CLOSE_MATCH = 0.75  # how alike (difflib's ratio) words must be to be found: a misheard word still is
NO_MORE = {  # (after, before, none on this capture) for each kind one jumps between
    "button": (N_("No more buttons after this."), N_("No more buttons before this."),
               N_("There are no buttons on this capture.")),
    "field": (N_("No more fields after this."), N_("No more fields before this."),
              N_("There are no fields on this capture.")),
    "heading": (N_("No more headings after this."), N_("No more headings before this."),
                N_("There are no headings on this capture.")),
    "row": (N_("No more table rows after this."), N_("No more table rows before this."),
            N_("There are no table rows on this capture.")),
}


@dataclass(frozen=True)
class Element:
    """One thing on the screen the user can move to and press."""

    kind: str  # button, field, heading, cell, text
    text: str  # its words; a field's label
    box: Box  # x0, y0, x1, y1 in image pixels (a field: its entry when known)
    value: str = ""  # what is typed in a field
    row: int = -1  # a table cell's row (0: the header row) and column
    column: int = -1
    column_name: str = ""

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


def elements(lines: list[TextLine]) -> list[Element]:
    """Everything the reader found, as elements in reading order; a table's cells row by row where it stands."""
    grid = layout.table(lines)
    form = layout.fields(lines)
    in_fields = {id(ln) for label, typed in form for ln in [label, *typed]}
    labels = layout.buttons(lines)
    used = {id(cell) for row in grid for cell in row} | {id(ln) for ln in labels} | in_fields
    head = layout.heading(lines)
    body = sorted(ln.height for ln in lines) or [0]
    median = body[len(body) // 2]
    units: list[list[Element]] = [[Element("button", ln.text, ln.frame or ln.box)] for ln in labels]
    units += [[_field(label, typed)] for label, typed in form]
    for block in layout.blocks([ln for ln in lines if id(ln) not in used]):
        first = block.lines[0]
        tall = (len(block.lines) == 1 and first.height >= HEADING_RATIO * median
                and len(first.text.split()) <= HEADING_WORDS)
        units.append([Element("heading" if first is head or tall else "text", block.text, block.box)])
    if grid:
        names = [cell.text for cell in grid[0]]
        units.append([Element("cell", cell.text, cell.box, row=r, column=c, column_name=names[c])
                      for r, row in enumerate(grid) for c, cell in enumerate(row)])
    order = layout.reading_order([layout.union([e.box for e in unit]) for unit in units])
    return [element for i in order for element in units[i]]


def _field(label: TextLine, typed: list[TextLine]) -> Element:
    """A field's box is its entry (what a click should hit); an empty field under its label has no
    measured outline, so the spot just under the label's start stands in for it."""
    if label.entry:
        box = label.entry
    else:
        x0, _, _, y1 = label.box
        th = label.height
        box = (x0, y1 + th // 2, x0 + 4 * th, y1 + 2 * th)
    return Element("field", label.text, box, value=" ".join(ln.text for ln in typed))


class Exploration:
    """A cursor over one capture's elements; every move returns the words to say."""

    def __init__(self, lines: list[TextLine], size: tuple[int, int]) -> None:
        self.lines, self.size = lines, size
        self.items = elements(lines)
        self.index = -1  # before the first element

    @property
    def current(self) -> Element | None:
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    def move(self, how: str) -> str:
        """Move as `how` says (one of MOVES) and say where the cursor is now; at an end, say so and stay."""
        if how not in MOVES:
            raise ValueError(f"unknown move {how!r}")
        if not self.items:
            return _("I found nothing to explore on this capture.")
        if how == "where":
            return self.say() if self.current else _("Nothing chosen yet.") + " " + self.move("next")
        if how in ("first", "last"):
            self.index = 0 if how == "first" else len(self.items) - 1
            return self.say()
        if how in ("below", "above"):
            return self._vertical(how == "below")
        way, _sep, kind = how.partition("-")
        step = 1 if way == "next" else -1
        start = self.index if self.index >= 0 or step > 0 else len(self.items)
        for i in range(start + step, len(self.items) if step > 0 else -1, step):
            if self._is(self.items[i], kind):
                self.index = i
                return self._say_row() if kind == "row" else self.say()
        if not kind:
            return (_("Last element.") if step > 0 else _("First element.")) + " " + self.say()
        after, before, none = NO_MORE[kind]
        return _(after if step > 0 else before) + ("" if self.current else " " + _(none))

    def _is(self, element: Element, kind: str) -> bool:
        if not kind:
            return True
        if kind == "row":  # a row is reached at its first cell
            return element.kind == "cell" and element.column == 0 and element.row != self._row()
        return element.kind == kind

    def _row(self) -> int:
        return self.current.row if self.current and self.current.kind == "cell" else -2

    def _vertical(self, down: bool) -> str:
        """The nearest element below (or above) the current one, preferring one that overlaps it across:
        in a table, the same column of the next row."""
        here = self.current
        if here is None:
            return self.move("next" if down else "last")
        sign = 1 if down else -1
        beyond = [(i, e) for i, e in enumerate(self.items)
                  if sign * (e.centre[1] - here.centre[1]) > 0.5 * (here.box[3] - here.box[1])]
        if not beyond:
            return (_("Nothing below this.") if down else _("Nothing above this.")) + " " + self.say()

        def distance(item: tuple[int, Element]) -> tuple[bool, float]:
            e = item[1]
            overlap = min(e.box[2], here.box[2]) - max(e.box[0], here.box[0]) > 0
            return not overlap, abs(e.centre[1] - here.centre[1]) + 0.5 * abs(e.centre[0] - here.centre[0])

        self.index = min(beyond, key=distance)[0]
        return self.say()

    def find(self, query: str) -> str | None:
        """Move to the element that best matches `query` by its words; None when nothing is close."""
        want = _plain(query)
        if not want:
            return None
        best, best_score = -1, 0.0
        for i, e in enumerate(self.items):
            words = _plain(f"{e.text} {e.value}")
            score = 2.0 if words == want else 1.5 if re.search(rf"\b{re.escape(want)}\b", words) else (
                difflib.SequenceMatcher(None, want, words).ratio())
            if score > best_score:
                best, best_score = i, score
        if best_score < CLOSE_MATCH:
            return None
        self.index = best
        return self.say()

    def locate(self, element: Element) -> bool:
        """Move to `element` as found on a newer capture (same kind and words, the nearest one); False
        when it is gone, and then the cursor stays where it was."""
        same = [i for i, e in enumerate(self.items) if e.kind == element.kind and e.text == element.text]
        if not same:
            return False
        x, y = element.centre
        self.index = min(same, key=lambda i: abs(self.items[i].centre[0] - x) + abs(self.items[i].centre[1] - y))
        return True

    def say(self) -> str:
        """'Button, Save, 2 of 3, at the bottom right of the dialog.': kind, words, count among its kind, place."""
        e = self.current
        if e is None:
            return _("Nothing chosen yet.")
        place = reader.place(TextLine(e.text, e.box, 1.0), self.lines, self.size)
        if e.kind == "cell":
            cols = max(x.column for x in self.items if x.kind == "cell") + 1
            rows = max(x.row for x in self.items if x.kind == "cell") + 1
            if e.row == 0:
                return _("Column header, {text}, column {column} of {columns}, {place}.", text=e.text,
                         column=e.column + 1, columns=cols, place=place)
            return _("{name}, {text}, row {row} of {rows}, column {column} of {columns}.", name=e.column_name,
                     text=e.text, row=e.row + 1, rows=rows, column=e.column + 1, columns=cols)
        same = [x for x in self.items if x.kind == e.kind]
        words = f"{e.text}, {e.value or _('empty')}" if e.kind == "field" else e.text
        words = reader.as_clause(words)
        number = next(n for n, x in enumerate(same, start=1) if x is e)
        if e.kind in ("button", "field"):
            return _("{kind}, {words}, {number} of {count}, {place}.", kind=_(KIND_NAMES[e.kind]), words=words,
                     number=number, count=len(same), place=place)
        return _("{kind}, {words}, {place}.", kind=_(KIND_NAMES[e.kind]), words=words, place=place)

    def _say_row(self) -> str:
        """A table row said whole, each cell with its column's name: the cursor is on its first cell."""
        e = self.current
        assert e is not None
        cells = [x for x in self.items if x.kind == "cell" and x.row == e.row]
        rows = max(x.row for x in self.items if x.kind == "cell") + 1
        if e.row == 0:
            return _("Table header, row 1 of {rows}: {cells}.", rows=rows, cells=", ".join(c.text for c in cells))
        return _("Row {row} of {rows}: {cells}.", row=e.row + 1, rows=rows,
                 cells=", ".join(f"{c.column_name} {c.text}" for c in cells))

    def overview(self, limit: int = 12) -> str:
        """What a window that just appeared holds, in short: its text, its fields, a table's size, its buttons."""
        said = []
        for e in self.items[:limit]:
            if e.kind in ("heading", "text"):
                said.append(reader.as_sentence(e.text))
            elif e.kind == "field":
                said.append(_("Field {name}, {value}.", name=e.text, value=e.value or _("empty")))
        rows = {e.row for e in self.items if e.kind == "cell"}
        if rows:
            said.append(ngettext("A table with {n} row.", "A table with {n} rows.", len(rows)))
        labels = [e.text for e in self.items if e.kind == "button"]
        if labels:
            said.append(ngettext("Button {names}.", "Buttons {names}.", len(labels), names=spoken_list(labels)))
        return " ".join(said) or _("I found no text in it.")

    def describe(self, element: Element) -> str:
        """What will be pressed, in a few words: 'Button Save'."""
        what = _(KIND_NAMES[element.kind]) if element.kind != "cell" else element.column_name or _("Cell")
        return _("{what} {text}", what=what, text=element.text)


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w']+", " ", text.lower()).split())

"""Where recognised text lies and what it forms: the line type every text reader yields, reading
order, blocks, rows, tables, buttons, form fields, a menu bar and the heading. It imports no reader,
so readers (ocr, Florence-2) can import it; reader.py says what this finds.

Reading order uses recursive XY cuts: split the screen at the widest empty band (a column gutter or
a gap between paragraphs), recurse into each part. That keeps two columns apart and a row of buttons
left to right, without needing to know what kind of window is shown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels

MAX_BUTTON_WORDS = 4
MAX_CELL_CHARS = 40  # longer text on a row is a sentence, not a table cell
HEADING_SIZE = 1.15  # a line this many times taller than the text's median is the page's main heading
GRID_SLACK = 3  # px: shapes whose sides line up this closely, one on another, are cells of one grid


@dataclass
class TextLine:
    """One recognised line of text and where it is on the image."""

    text: str
    box: Box  # x0, y0, x1, y1 in image pixels
    score: float
    frame: Box | None = None  # the button-like shape drawn around it, when there is one (shapes.frame)
    field: bool = False  # an empty entry field lies just under it: it names a form field
    entry: Box | None = None  # the entry field on its right (its outline): it names that field
    drop_down: bool = False  # that entry field is a drop-down: its arrow is drawn at its right end
    mark: str | None = None  # "check box" or "radio button": the mark drawn just before it (shapes.mark_before)
    title_bar: Box | None = None  # the window title bar it is drawn in, as its title (shapes.title_bar)

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


@dataclass
class Block:
    """Lines that belong together: a paragraph, a heading, one button label."""

    lines: list[TextLine]

    @property
    def text(self) -> str:
        return " ".join(line.text for line in self.lines)

    @property
    def box(self) -> Box:
        return union([line.box for line in self.lines])


def union(boxes: Sequence[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))


def _widest_gap(boxes: Sequence[Box], axis: int) -> tuple[int, float]:
    """(size, position) of the widest empty band across all boxes along axis 0 (x) or 1 (y)."""
    spans = sorted((b[axis], b[axis + 2]) for b in boxes)
    best, where, reach = 0, 0.0, spans[0][1]
    for lo, hi in spans[1:]:
        if lo - reach > best:
            best, where = lo - reach, (lo + reach) / 2
        reach = max(reach, hi)
    return best, where


def reading_order(boxes: Sequence[Box]) -> list[int]:
    """Indices of `boxes` in reading order: XY cut at the widest gap, top before bottom, left before right.

    A vertical gutter must be wider than a typical line is tall to count as a column break, so the
    spaces between words or table cells on one row do not split a paragraph into columns.
    """
    if not boxes:
        return []
    heights = sorted(b[3] - b[1] for b in boxes)
    min_gutter = heights[len(heights) // 2] * 1.5

    def cut(ids: list[int]) -> list[int]:
        if len(ids) == 1:
            return ids
        part = [boxes[i] for i in ids]
        gap_y, at_y = _widest_gap(part, 1)
        gap_x, at_x = _widest_gap(part, 0)
        if gap_x >= min_gutter and gap_x > gap_y:
            axis, at = 0, at_x
        elif gap_y > 0:
            axis, at = 1, at_y
        elif gap_x > 0:
            axis, at = 0, at_x
        else:  # overlapping boxes: plain top-to-bottom, left-to-right
            return sorted(ids, key=lambda i: (boxes[i][1], boxes[i][0]))
        first = [i for i in ids if (boxes[i][axis] + boxes[i][axis + 2]) / 2 < at]
        rest = [i for i in ids if (boxes[i][axis] + boxes[i][axis + 2]) / 2 >= at]
        return cut(first) + cut(rest)

    return cut(list(range(len(boxes))))


def in_order(lines: list[TextLine]) -> list[TextLine]:
    """The lines in reading order; a window's title is placed by its whole title bar, which spans its
    window, so it comes before the window's text even when a column gutter runs under the title."""
    return [lines[i] for i in reading_order([line.title_bar or line.box for line in lines])]


def _same_block(a: TextLine, b: TextLine) -> bool:
    """b continues a's paragraph: just below it, similar size, overlapping horizontally."""
    h = max(a.height, b.height)
    # the next line down, though tightly set (or tilted) lines' boxes overlap
    below = b.centre[1] - a.centre[1] >= 0.5 * min(a.height, b.height) and b.box[1] - a.box[3] < 0.9 * h
    similar = min(a.height, b.height) >= 0.75 * h  # a heading (larger type) stands apart from its text
    overlap = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]) > 0
    boxed = a.frame is not None or b.frame is not None  # a label in its own shape stands alone
    label = a.entry is not None or b.entry is not None or a.field or b.field  # a field's name stands alone
    choice = bool(a.mark or b.mark)  # and so does the name of a check box or a radio button
    title = bool(a.title_bar or b.title_bar)  # and a window's title
    return below and similar and overlap and not boxed and not label and not choice and not title


def blocks(lines: list[TextLine]) -> list[Block]:
    """Lines grouped into blocks (paragraphs, headings, labels), blocks in reading order."""
    ordered = in_order(lines)
    out: list[Block] = []
    for line in ordered:
        if out and _same_block(out[-1].lines[-1], line):
            out[-1].lines.append(line)
        else:
            out.append(Block([line]))
    return out


def buttons(lines: list[TextLine]) -> list[TextLine]:
    """Labels drawn inside a button: row by row, left to right. Only with evidence, never from words.

    The evidence is the shape around the label (shapes.frame: a control-sized bordered or filled
    shape with the label near its middle). A shape that holds other text too, or that is one of a
    column of equal shapes (cells of a grid), is not a button; nor is a single character (an icon), nor
    text typed in an entry field (the field's outline frames it).
    """
    entries = [ln.entry for ln in lines if ln.entry]  # text typed in an entry field sits in its outline
    framed = [ln for ln in lines if ln.frame is not None and len(ln.text.split()) <= MAX_BUTTON_WORDS
              and len(re.sub(r"\W", "", ln.text)) >= 2 and not _inside(ln.centre, entries)]
    cells = {id(cell) for row in table(lines) for cell in row} | bar_lines(lines) if framed else set()
    found = [ln for ln in framed if not _holds_more(ln, lines) and not _in_grid(ln, framed) and id(ln) not in cells]
    rows: list[list[TextLine]] = []
    for line in sorted(found, key=lambda ln: ln.centre[1]):
        if rows and abs(rows[-1][0].centre[1] - line.centre[1]) < 0.5 * line.height:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [label for row in rows for label in sorted(row, key=lambda ln: ln.box[0])]


def _inside(point: tuple[float, float], boxes: list[Box]) -> bool:
    return any(b[0] <= point[0] <= b[2] and b[1] <= point[1] <= b[3] for b in boxes)


def _holds_more(line: TextLine, lines: list[TextLine]) -> bool:
    x0, y0, x1, y1 = line.frame or line.box
    return any(other is not line and x0 <= other.centre[0] <= x1 and y0 <= other.centre[1] <= y1
               for other in lines)


def _in_grid(line: TextLine, framed: list[TextLine]) -> bool:
    """Another shape of the same width sits right above or below this one: table cells, not buttons."""
    a = line.frame
    assert a is not None
    for other in framed:
        b = other.frame
        if other is line or b is None:
            continue
        same_column = abs(a[0] - b[0]) <= GRID_SLACK and abs(a[2] - b[2]) <= GRID_SLACK
        touching = min(abs(b[1] - a[3]), abs(a[1] - b[3])) <= 2 * GRID_SLACK
        if same_column and touching:
            return True
    return False


def rows_of(lines: list[TextLine]) -> list[list[TextLine]]:
    """Lines grouped into rows (sharing most of their height), top to bottom, each left to right."""
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda ln: ln.centre[1]):
        if rows and abs(rows[-1][-1].centre[1] - line.centre[1]) < 0.5 * min(line.height, rows[-1][-1].height):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [sorted(row, key=lambda ln: ln.box[0]) for row in rows]


def table(lines: list[TextLine]) -> list[list[TextLine]]:
    """The largest table on the screen, header row first; [] when there is none.

    A table is three or more rows in a run, each with the same number (two or more) of cells, whose
    cells line up in columns (each cell overlaps its column's span on every row).
    """
    form = form_lines(lines)
    rows = rows_of([ln for ln in lines if len(ln.text) <= MAX_CELL_CHARS and id(ln) not in form])
    rows = [row for row in rows if not row[0].text.endswith(":")]  # a column of labels: a form's, not a table's
    best: list[list[TextLine]] = []
    start = 0
    while start < len(rows):
        run = [rows[start]]
        for row in rows[start + 1:]:
            gap = row[0].box[1] - max(ln.box[3] for ln in run[-1])
            if len(row) != len(run[0]) or gap > 2.5 * row[0].height or not _aligned(run, row):
                break
            run.append(row)
        if len(run[0]) >= 2 and len(run) >= 3 and len(run) * len(run[0]) > len(best) * len(best[0] if best else []):
            best = run
        start += len(run)
    return best


def _aligned(run: list[list[TextLine]], row: list[TextLine]) -> bool:
    for col, cell in enumerate(row):
        lo, hi = min(r[col].box[0] for r in run), max(r[col].box[2] for r in run)
        if cell.box[2] < lo or cell.box[0] > hi:
            return False
    return True


def wordy(line: TextLine) -> bool:
    """Two or more letters or digits: a lone character is usually an icon read as a letter."""
    return len(re.sub(r"\W", "", line.text)) >= 2


ICON_READ = re.compile(r"^(?:[^\w\s]|[xX×✓✔+])\s+(?=\w\w)")  # an icon beside a button's name, read as a mark


def button_name(text: str) -> str:
    """A button's name without its icon ("X Cancel" is Cancel): a lone mark or x before the name."""
    return ICON_READ.sub("", text)


def marked(lines: list[TextLine], mark: str) -> list[TextLine]:
    """The labels of the check boxes (or radio buttons), in reading order."""
    return [ln for ln in in_order(lines) if ln.mark == mark]


def split_label(line: TextLine) -> list[TextLine]:
    """A label and what is typed in its field, read as one line ("Full name: Jonas Berg") because the
    field's outline is faint, as two: the label up to where its field starts, and the typed text."""
    entry = line.entry
    if entry is None or not line.box[0] < entry[0] < line.box[2] or ": " not in line.text:
        return [line]
    name, typed = line.text.split(": ", 1)
    x0, y0, x1, y1 = line.box
    label = TextLine(name + ":", (x0, y0, entry[0], y1), line.score, entry=entry)
    return [label, TextLine(typed, (entry[0] + 1, y0, x1, y1), line.score)]


def form_lines(lines: list[TextLine]) -> set[int]:
    """ids of the lines that name an entry field on their right, and of the lines typed inside one."""
    entries = [ln.entry for ln in lines if ln.entry]
    inside = {id(ln) for ln in lines for x0, y0, x1, y1 in entries
              if x0 <= ln.centre[0] <= x1 and y0 <= ln.centre[1] <= y1}
    return inside | {id(ln) for ln in lines if ln.entry}


def fields(lines: list[TextLine]) -> list[tuple[TextLine, list[TextLine]]]:
    """A form's fields in reading order: each label, with the lines typed in its field (none: empty).

    A label names the empty field under it (TextLine.field) or the field on its right, whose text
    is what lies inside that field's outline. Table cells are never labels.
    """
    ordered = in_order(lines)

    def typed(entry: Box) -> list[TextLine]:
        x0, y0, x1, y1 = entry
        return [ln for ln in ordered if x0 <= ln.centre[0] <= x1 and y0 <= ln.centre[1] <= y1]

    skip = {id(cell) for row in table(lines) for cell in row} | bar_lines(lines)
    skip |= {id(ln) for line in ordered if line.entry for ln in typed(line.entry)}
    return [(line, typed(line.entry) if line.entry else []) for line in ordered
            if id(line) not in skip and (line.field or line.entry)]


MENU_NAMES = {"file", "edit", "view", "help", "tools", "window", "go", "insert", "format", "options", "history",
              "bookmarks", "image", "selection", "run", "debug", "terminal", "project", "search", "navigate",
              "code", "build", "settings", "preferences", "table", "layer", "filters", "select"}


def app_menu(text: str) -> bool:
    """An application's menu bar read as one line: three or more names, nearly all of menus ("File Edit")."""
    words = text.lower().split()
    return len(words) >= 3 and sum(w in MENU_NAMES for w in words) >= 0.75 * len(words) and words[0] in MENU_NAMES


def app_bars(lines: list[TextLine]) -> tuple[list[TextLine], list[TextLine]]:
    """An application window's menu bar, and the toolbar row right under it (short names, no sentence,
    no larger than the menus); ([], []) when the top row is no menu bar."""
    rows = rows_of(lines)
    if len(rows) < 2 or not app_menu(" ".join(ln.text for ln in rows[0])):
        return [], []
    under = rows[1]
    tools = len(under) <= 12 and all(len(ln.text.split()) <= 6 and not ln.text.endswith((".", ":")) for ln in under)
    tools = tools and under[0].height <= 1.4 * max(ln.height for ln in rows[0])  # tool buttons pad their names
    return rows[0], under if tools else []


def bar_lines(lines: list[TextLine]) -> set[int]:
    """ids of the lines in an application's menu bar and toolbar."""
    menu, tools = app_bars(lines)
    return {id(ln) for ln in menu + tools}


def menu_bar(lines: list[TextLine]) -> list[TextLine]:
    """The top row when it is a site's navigation: three or more short capitalised items, no sentence.

    The detector may give the row as separate items, as one line, or as pieces of several items each,
    so all are taken.
    """
    rows = rows_of(lines)
    if not rows or len(rows) < 3:
        return []
    words = " ".join(ln.text for ln in rows[0]).split()
    heights = sorted(ln.height for ln in lines)
    names = len(words) <= 8 and all(w[:1].isupper() and w.isalpha() for w in words)
    if len(rows[0]) >= 3:  # separate items
        menu = names and all(len(ln.text.split()) <= 2 for ln in rows[0])
    else:  # four or more names in one or two pieces, no taller than the text (a heading would be)
        body = heights[len(heights) // 2]
        menu = names and len(words) >= 4 and max(ln.height for ln in rows[0]) <= 1.15 * body
    return rows[0] if menu else []


def window_title(lines: list[TextLine]) -> TextLine | None:
    """The title in a window's title bar (TextLine.title_bar): the only text in its bar, with nothing above
    the bar across its width, since a title bar is the top of its window."""
    for line in sorted((ln for ln in lines if ln.title_bar), key=lambda ln: ln.box[1]):
        x0, y0, x1, y1 = line.title_bar  # type: ignore[misc]
        shares = any(other is not line and wordy(other) and x0 <= other.centre[0] <= x1
                     and y0 <= other.centre[1] <= y1 for other in lines)
        above = any(other.box[3] <= y0 and x0 <= other.centre[0] <= x1 for other in lines)
        if not shares and not above:
            return line
    return None


def heading(lines: list[TextLine]) -> TextLine | None:
    """What the screen is titled: the window's title when a title bar is drawn, else the main heading."""
    return window_title(lines) or main_heading(lines)


def headings(lines: list[TextLine]) -> list[TextLine]:
    """The window's title and the main heading, each said on its own; [] when there are neither."""
    found = [window_title(lines), main_heading(lines)]
    return [h for n, h in enumerate(found) if h is not None and h not in found[:n]]


def main_heading(lines: list[TextLine]) -> TextLine | None:
    """The main heading: the largest line when it is clearly larger than the text (wherever a side bar
    puts it in reading order), else a first line on its own that is taller than the text, or short and
    set apart.

    A menu bar, a toolbar, buttons, form labels and lone characters (icons read as letters) are passed over.
    """
    skip = {id(ln) for ln in menu_bar(lines) + buttons(lines)} | form_lines(lines) | bar_lines(lines)
    lines = [ln for ln in lines if id(ln) not in skip and wordy(ln)]
    if len(lines) >= 2:
        largest = max(lines, key=lambda ln: ln.height)
        heights = sorted(ln.height for ln in lines if ln is not largest)
        top, bottom = min(ln.box[1] for ln in lines), max(ln.box[3] for ln in lines)
        upper = largest.centre[1] < (top + bottom) / 2  # a heading heads the text, it does not end it
        if largest.height >= HEADING_SIZE * heights[len(heights) // 2] and len(largest.text.split()) <= 10 and upper:
            return largest
    order = blocks(lines)
    if len(order) < 2 or len(order[0].lines) > 1:
        return None
    first, after = order[0].lines[0], order[1].lines[0]
    heights = sorted(line.height for line in lines if line is not first)
    body = heights[len(heights) // 2] if heights else first.height
    tall = first.height >= 1.1 * body
    set_apart = len(first.text.split()) <= 8 and after.box[1] - first.box[3] >= 0.8 * first.height
    return first if tall or set_apart else None


def rows_text(ordered: list[TextLine]) -> list[TextLine]:
    """A terminal's lines with pieces of one text row joined back (the detector may split a row)."""
    out: list[TextLine] = []
    for row in rows_of(ordered):
        out.append(TextLine(" ".join(ln.text for ln in row), union([ln.box for ln in row]),
                            min(ln.score for ln in row)))
    return out

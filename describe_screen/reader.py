"""Layout of recognised text: the line type every text reader yields, reading order, blocks, buttons,
and what to say about them. It imports no reader, so readers (ocr, Florence-2) can import it.

Reading order uses recursive XY cuts: split the screen at the widest empty band (a column gutter or
a gap between paragraphs), recurse into each part. That keeps two columns apart and a row of buttons
left to right, without needing to know what kind of window is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels

MAX_BUTTON_WORDS = 4
MAX_CELL_CHARS = 40  # longer text on a row is a sentence, not a table cell
GRID_SLACK = 3  # px: shapes whose sides line up this closely, one on another, are cells of one grid
PARAGRAPH_WORDS = 8  # a block this long is running text
PROMPT = re.compile(r"(?:(?:^|\s)[\w.-]+@[\w.-]+:\S*\s?[$#%>]|^\S*[$#%>]|^[A-Z]:\\.*>)\W?$")  # a shell prompt
LAST_LINES = 3  # a terminal's last lines said first: the result and the prompt
SUMMARY_WORDS = 25


@dataclass
class TextLine:
    """One recognised line of text and where it is on the image."""

    text: str
    box: Box  # x0, y0, x1, y1 in image pixels
    score: float
    frame: Box | None = None  # the button-like shape drawn around it, when there is one (shapes.frame)
    field: bool = False  # an empty entry field lies just under it: it names a form field
    entry: Box | None = None  # the entry field on its right (its outline): it names that field

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
        return _union([line.box for line in self.lines])


def _union(boxes: Sequence[Box]) -> Box:
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


def _same_block(a: TextLine, b: TextLine) -> bool:
    """b continues a's paragraph: just below it, similar size, overlapping horizontally."""
    h = max(a.height, b.height)
    below = 0 <= b.box[1] - a.box[3] < 0.9 * h
    similar = min(a.height, b.height) >= 0.7 * h
    overlap = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]) > 0
    boxed = a.frame is not None or b.frame is not None  # a label in its own shape stands alone
    return below and similar and overlap and not boxed


def blocks(lines: list[TextLine]) -> list[Block]:
    """Lines grouped into blocks (paragraphs, headings, labels), blocks in reading order."""
    ordered = [lines[i] for i in reading_order([line.box for line in lines])]
    out: list[Block] = []
    for line in ordered:
        if out and _same_block(out[-1].lines[-1], line):
            out[-1].lines.append(line)
        else:
            out.append(Block([line]))
    return out


def _plain(text: str) -> str:
    return re.sub(r"[^\w' ]+", "", text.lower().replace("’", "'")).strip()


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
    cells = {id(cell) for row in table(lines) for cell in row} if framed else set()
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
    rows = rows_of([ln for ln in lines if len(ln.text) <= MAX_CELL_CHARS])
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


def read_table(rows: list[list[TextLine]]) -> Iterator[str]:
    """A table as speech: its header names, then row by row, each cell with its column's name."""
    names = [cell.text for cell in rows[0]]
    yield f"A table with {_count(len(names), 'column')} and {_count(len(rows), 'row')}: {', '.join(names)}."
    for n, row in enumerate(rows[1:], start=2):
        cells = ", ".join(f"{name} {cell.text}" for name, cell in zip(names, row, strict=True))
        yield f"Row {n}: {cells}."


def _wordy(line: TextLine) -> bool:
    """Two or more letters or digits: a lone character is usually an icon read as a letter."""
    return len(re.sub(r"\W", "", line.text)) >= 2


def _prompt(text: str) -> bool:
    return bool(PROMPT.search(text.strip()))


def kind(lines: list[TextLine], size: tuple[int, int], photo: bool = False) -> str:
    """What kind of screen this is, from evidence only; "screen" when unsure."""
    if photo:
        return "photo of a page"
    if not lines:
        return "screen"
    ordered = [lines[i] for i in reading_order([line.box for line in lines])]
    commands = sum(_prompt(line.text) or line.text.startswith(("$ ", "# ")) for line in ordered)
    if _prompt(ordered[-1].text) or commands >= 2:
        return "terminal"
    labels = buttons(lines)
    grid = table(lines)
    if labels and len(fields(lines)) >= 2:
        return "form"
    if grid:
        return "table"
    if menu_bar(lines):
        return "web page"
    if labels and _is_dialog(lines, size):
        return "dialog"
    running = [ln for ln in lines if len(ln.text.split()) >= PARAGRAPH_WORDS]
    if len(running) >= 3 and sum(len(ln.text.split()) for ln in lines) >= 30:
        return "document"
    return "screen"


def fields(lines: list[TextLine]) -> list[tuple[TextLine, list[TextLine]]]:
    """A form's fields in reading order: each label, with the lines typed in its field (none: empty).

    A label names the empty field under it (TextLine.field) or the field on its right, whose text
    is what lies inside that field's outline. Table cells are never labels.
    """
    ordered = [lines[i] for i in reading_order([line.box for line in lines])]

    def typed(entry: Box) -> list[TextLine]:
        x0, y0, x1, y1 = entry
        return [ln for ln in ordered if x0 <= ln.centre[0] <= x1 and y0 <= ln.centre[1] <= y1]

    skip = {id(cell) for row in table(lines) for cell in row}
    skip |= {id(ln) for line in ordered if line.entry for ln in typed(line.entry)}
    return [(line, typed(line.entry) if line.entry else []) for line in ordered
            if id(line) not in skip and (line.field or line.entry)]


def menu_bar(lines: list[TextLine]) -> list[TextLine]:
    """The top row when it is a site's navigation: three or more short capitalised items, no sentence.

    The detector may give the row as separate items or as one line, so both are taken.
    """
    rows = rows_of(lines)
    if not rows or len(rows) < 3:
        return []
    words = " ".join(ln.text for ln in rows[0]).split()
    heights = sorted(ln.height for ln in lines)
    names = len(words) <= 8 and all(w[:1].isupper() and w.isalpha() for w in words)
    if len(rows[0]) >= 3:  # separate items
        menu = names and all(len(ln.text.split()) <= 2 for ln in rows[0])
    else:  # one line of four or more names, no taller than the text (a heading would be)
        body = heights[len(heights) // 2]
        menu = names and len(rows[0]) == 1 and len(words) >= 4 and rows[0][0].height <= 1.15 * body
    return rows[0] if menu else []


def heading(lines: list[TextLine]) -> TextLine | None:
    """The top heading: a first line on its own that is taller than the text, or short and set apart.

    A site's menu bar above it and lone characters (icons read as letters) are passed over.
    """
    skip = {id(ln) for ln in menu_bar(lines) + buttons(lines)}
    lines = [ln for ln in lines if id(ln) not in skip and _wordy(ln)]
    order = blocks(lines)
    if len(order) < 2 or len(order[0].lines) > 1:
        return None
    first, after = order[0].lines[0], order[1].lines[0]
    heights = sorted(line.height for line in lines if line is not first)
    body = heights[len(heights) // 2] if heights else first.height
    tall = first.height >= 1.1 * body
    set_apart = len(first.text.split()) <= 8 and after.box[1] - first.box[3] >= 0.8 * first.height
    return first if tall or set_apart else None


def spoken_list(items: list[str]) -> str:
    """"A, B and C" for speech."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text[-1:] in ".!?:" else text + "."


def _words(text: str, limit: int) -> str:
    words = text.split()
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


KIND_WORDS = {"photo of a page": "A photo of a page", "terminal": "A terminal", "dialog": "A dialog",
              "form": "A form", "table": "A page", "web page": "A web page",
              "document": "A document", "screen": "A screen"}


def narrate(stream: Iterable[TextLine], title: str, size: tuple[int, int], photo: bool = False
            ) -> Iterator[str]:
    """brief() in pieces, what is certain first: the title (or that it is a photo of a page) at once,
    the top line of text as soon as it is read, then the summary once every line is read.

    The first line is held back when it looks like a terminal's (a command), since a terminal is said
    from its end.
    """
    said = ""
    if photo:
        yield "A photo of a page."
    if title:
        said = title
        yield _sentence(title)
    lines: list[TextLine] = []
    for line in stream:
        if not lines and not said and _wordy(line) and not _prompt(line.text) and not line.text.startswith(
                ("$ ", "# ")) and line.frame is None:
            said = line.text
            yield _sentence(line.text)
        lines.append(line)
    if lines or not said:
        yield brief(lines, title, size, photo, said=said)


def brief(lines: list[TextLine], title: str, size: tuple[int, int], photo: bool = False, said: str = "") -> str:
    """One or two spoken sentences: what kind of screen, its title, its buttons, how its text begins.

    A terminal is said from its end (the last lines and the prompt), a table by its size. `said` is
    text already spoken (narrate), so it is not named again as the title.
    """
    if not lines:
        return f"{title}. No text found." if title and not said else "No text found on the screen."
    what = kind(lines, size, photo)
    labels = buttons(lines)
    head = None if what == "terminal" else heading(lines)
    name = title or (head.text if head else "")
    name = "" if name == said else name
    said = f"{KIND_WORDS[what]} titled {name}" if name else KIND_WORDS[what]
    grid = table(lines)
    if grid and what != "terminal":
        said += f", with a table with {_count(len(grid[0]), 'column')} and {_count(len(grid), 'row')}"
    if labels:
        plural = "buttons" if len(labels) > 1 else "a button"
        said += f", with {plural} {spoken_list([b.text for b in labels])}."
    elif not grid:
        said += f", with {_count(len(lines), 'line')} of text."
    else:
        said += "."
    form = fields(lines) if what == "form" else []
    if form:  # each field by its label, with what is typed in it
        said += " Fields: " + "; ".join(
            f"{label.text}, {' '.join(ln.text for ln in typed) or 'empty'}" for label, typed in form) + "."
    if what == "terminal":
        ordered = [lines[i] for i in reading_order([line.box for line in lines])]
        return said + " The last lines say: " + " ".join(_sentence(ln.text) for ln in rows_text(ordered)[-LAST_LINES:])
    skip = ({id(ln) for ln in labels + menu_bar(lines)} | {id(cell) for row in grid for cell in row} | {id(head)}
            | {id(ln) for label, typed in form for ln in [label, *typed]})
    body = blocks([ln for ln in lines if id(ln) not in skip and _wordy(ln)])
    if body:
        said += " It says: " + _sentence(_words(body[0].text, SUMMARY_WORDS))
    return said


def rows_text(ordered: list[TextLine]) -> list[TextLine]:
    """A terminal's lines with pieces of one text row joined back (the detector may split a row)."""
    out: list[TextLine] = []
    for row in rows_of(ordered):
        out.append(TextLine(" ".join(ln.text for ln in row), _union([ln.box for ln in row]),
                            min(ln.score for ln in row)))
    return out


def _is_dialog(lines: list[TextLine], size: tuple[int, int]) -> bool:
    """A message box: buttons, with all the text in a smaller area than the screen."""
    x0, y0, x1, y1 = _union([line.box for line in lines])
    return (x1 - x0) * (y1 - y0) < 0.5 * size[0] * size[1] and bool(buttons(lines))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def full(lines: list[TextLine]) -> Iterator[str]:
    """All text in reading order, one spoken block at a time; a table as a table, where it stands."""
    grid = table(lines)
    cells = {id(cell) for row in grid for cell in row}
    said_table = False
    for block in blocks(lines):
        if any(id(ln) in cells for ln in block.lines):
            if not said_table:
                yield from read_table(grid)
                said_table = True
            rest = [ln for ln in block.lines if id(ln) not in cells]
            if rest:
                yield _sentence(" ".join(ln.text for ln in rest))
            continue
        yield _sentence(block.text)


def where(box: Box, size: tuple[int, int]) -> str:
    """Plain position words for a box: "at the top left", "in the middle", "at the bottom"."""
    cx, cy = (box[0] + box[2]) / 2 / max(size[0], 1), (box[1] + box[3]) / 2 / max(size[1], 1)
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    if row == "middle":
        return f"on the {col}" if col else "in the middle"
    return f"at the {row} {col}".strip()


def place(line: TextLine, lines: list[TextLine], size: tuple[int, int]) -> str:
    """Where a line is, said relative to the dialog when the text sits in one, else to the screen."""
    if not _is_dialog(lines, size):
        return where(line.box, size)
    x0, y0, x1, y1 = _union([ln.box for ln in lines])
    box = (line.box[0] - x0, line.box[1] - y0, line.box[2] - x0, line.box[3] - y0)
    return where(box, (x1 - x0, y1 - y0)) + " of the dialog"

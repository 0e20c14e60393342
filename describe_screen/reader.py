"""Layout of recognised text: the line type every text reader yields, reading order, blocks, buttons,
and what to say about them. It imports no reader, so readers (ocr, Florence-2) can import it.

Reading order uses recursive XY cuts: split the screen at the widest empty band (a column gutter or
a gap between paragraphs), recurse into each part. That keeps two columns apart and a row of buttons
left to right, without needing to know what kind of window is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels

BUTTON_WORDS = {
    "ok", "cancel", "yes", "no", "close", "apply", "save", "open", "submit", "next", "back", "finish",
    "retry", "continue", "done", "help", "delete", "remove", "allow", "deny", "accept", "decline", "send",
    "sign in", "log in", "install", "update", "skip", "later", "quit", "exit", "discard", "don't save",
    "replace", "keep", "confirm", "abort", "ignore", "try again", "got it", "dismiss", "agree", "start",
}
MAX_BUTTON_CHARS = 20
SUMMARY_WORDS = 25


@dataclass
class TextLine:
    """One recognised line of text and where it is on the image."""

    text: str
    box: Box  # x0, y0, x1, y1 in image pixels
    score: float

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
    stacked_buttons = _is_button_word(a.text) and _is_button_word(b.text)
    return below and similar and overlap and not stacked_buttons


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


def _is_short(line: TextLine) -> bool:
    return len(line.text) <= MAX_BUTTON_CHARS and len(line.text.split()) <= 3


def _is_button_word(text: str) -> bool:
    return _plain(text) in BUTTON_WORDS


def _plain(text: str) -> str:
    return re.sub(r"[^\w' ]+", "", text.lower().replace("’", "'")).strip()


def buttons(lines: list[TextLine]) -> list[TextLine]:
    """Lines that look like button labels, row by row, left to right.

    A button row is two or more short labels side by side in the lower part of the text, or a single
    short label that is a usual button word (OK, Cancel, Close...) there.
    """
    if not lines:
        return []
    top, bottom = _union([line.box for line in lines])[1::2]
    lower = [line for line in lines if _is_short(line) and line.centre[1] >= top + 0.4 * (bottom - top)]
    rows: list[list[TextLine]] = []
    for line in sorted(lower, key=lambda ln: ln.centre[1]):
        if rows and abs(rows[-1][0].centre[1] - line.centre[1]) < 0.5 * line.height:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [label for row in rows if len(row) >= 2 or _is_button_word(row[0].text)
            for label in sorted(row, key=lambda ln: ln.box[0])]


def heading(lines: list[TextLine]) -> TextLine | None:
    """The top heading: a first line on its own that is taller than the text, or short and set apart."""
    order = blocks(lines)
    if len(order) < 2 or len(order[0].lines) > 1:
        return None
    first, after = order[0].lines[0], order[1].lines[0]
    labels = {id(b) for b in buttons(lines)}
    heights = sorted(line.height for line in lines if id(line) not in labels and line is not first)
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


def brief(lines: list[TextLine], title: str, size: tuple[int, int]) -> str:
    """One or two spoken sentences: what kind of window, its title, its buttons, how its text begins."""
    if not lines:
        return f"{title}. No text found." if title else "No text found on the screen."
    labels = buttons(lines)
    head = heading(lines)
    name = title or (head.text if head else "")
    label_ids = {id(b) for b in labels}
    body = blocks([ln for ln in lines if id(ln) not in label_ids and ln is not head])
    kind = "A dialog" if _is_dialog(lines, size) else "A window" if labels else "A screen"
    said = f"{kind} titled {name}" if name else kind
    if labels:
        plural = "buttons" if len(labels) > 1 else "a button"
        said += f", with {plural} {spoken_list([b.text for b in labels])}."
    else:
        said += f", with {_count(len(lines), 'line')} of text."
    if body:
        said += " It says: " + _sentence(_words(body[0].text, SUMMARY_WORDS))
    return said


def _is_dialog(lines: list[TextLine], size: tuple[int, int]) -> bool:
    """A message box: buttons, with all the text in a smaller area than the screen."""
    x0, y0, x1, y1 = _union([line.box for line in lines])
    return (x1 - x0) * (y1 - y0) < 0.5 * size[0] * size[1] and bool(buttons(lines))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def full(lines: list[TextLine]) -> Iterator[str]:
    """All text in reading order, one spoken block at a time (a paragraph, a heading, a label)."""
    for block in blocks(lines):
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

"""What is drawn around a line of text: the evidence that makes a label a button.

A button is a control-sized shape, bordered or filled (rounded corners too), holding one short label
near its middle. We look outward from the label along its middle row and column for the shape's
edges, then check that each edge runs the whole side of the shape and stops at its corners: a table
cell's borders run on into the next cell, a menu bar's edge runs across the screen, and a link or a
plain word has no edge near it at all.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

Box = tuple[int, int, int, int]

MAX_LABEL_CHARS = 30  # longer text is a sentence, never a button label or a field name
EDGE = 28  # grey levels: a pixel this far from the shape's face colour is its edge (or beyond it)
FAINT = 8  # grey levels: the least step between flat drawn colours taken as an edge (dark themes' fields)
MAX_PAD_Y = 1.6  # a button's face reaches at most this many label heights above and below the label
MAX_PAD_X = 5.0  # ... and this many to either side
SOLID = 0.85  # share of an edge's length that must differ from the face: a drawn line, not glyphs
CORNER = 0.4  # share of the run past a corner that may continue the edge: more is a grid or a bar
OUTLINE_PAD = 4  # px above and below a detected line where the outlines of buttons in it may reach
CENTRED = 0.6  # the label's side margins differ by at most this share of the larger one
FIELD_GAP = 4.0  # label heights between a label and the entry field on its right, at most
FIELD_HEIGHT = (0.65, 3.5)  # an entry field's height, in label (detected box) heights: compact toolkits
# (Qt's Fusion) draw it barely taller than the letters, and the detector's box has a margin
FIELD_WIDTH = 4.0  # an entry field is at least this many label heights wide
SQUARE = 0.88  # share of its box a check box's outline encloses, at least; a radio button's circle: 0.79
MARK_GAP = 0.75  # label heights between a check box (or radio button) and its label, at most
TITLE_PAD = 1.6  # a title bar reaches at most this many title heights above and below its title
TITLE_WIDTH = 12  # a title bar is at least this many title heights wide
ROUNDING = 5  # px: a rounded corner moves the start of a side in by up to this much


def frame(grey: np.ndarray, box: Box, edge: int = EDGE) -> Box | None:
    """The button-like shape around the label in `box`, or None when nothing is drawn around it.

    `grey` is the screen as a 2-D array. The returned box is the shape's face, inside its edges. The
    detector's box can take in the button's own border (a compact toolkit's button is hardly taller
    than its label), so the shape is looked for again around the label's ink alone (with its icon).
    `edge` as for field_beside: FAINT finds a dark theme's buttons, a shade lighter than the window.
    """
    found = _frame(grey, box, edge)
    if found is None:
        inked = ink(grey, box)
        found = _frame(grey, inked, edge) if inked and inked != box else None
    return found


def ink(grey: np.ndarray, box: Box) -> Box | None:
    """The box around what is drawn inside `box` (letters, an icon), without lines that cross it whole
    (a border the detector's box took in); None when nothing is drawn."""
    import numpy as np

    x0, y0, x1, y1 = box
    region = grey[y0:y1, x0:x1].astype(np.int16)
    if region.size == 0:
        return None
    mask = np.abs(region - int(np.median(region))) > EDGE
    # a border crosses the whole box (but for its rounded corners); a letter's stem crosses a line of text only
    inner = mask[3:-3, 3:-3] if min(mask.shape) > 8 else mask
    rows, cols = inner.mean(axis=1), inner.mean(axis=0)
    keep = np.nonzero((rows > 0) & (rows < 0.9))[0]
    across = np.nonzero((cols > 0) & (cols < 0.9))[0]
    if not keep.size or not across.size:
        return None
    off = 3 if inner is not mask else 0
    return (x0 + off + int(across[0]) - 1, y0 + off + int(keep[0]) - 1,
            x0 + off + int(across[-1]) + 2, y0 + off + int(keep[-1]) + 2)


def _frame(grey: np.ndarray, box: Box, edge: int) -> Box | None:
    import numpy as np

    h, w = grey.shape
    x0, y0, x1, y1 = box
    th = y1 - y0
    if th < 4 or x1 - x0 < 4:
        return None
    ring = np.concatenate([grey[max(0, y0 - 1), x0:x1], grey[min(h - 1, y1), x0:x1]])
    face = float(np.median(ring))
    if abs(float(np.median(grey[y0:y1, x0:x1])) - face) > EDGE:
        return None  # the ring is not what the label is drawn on: the box took in a field's border (Nimbus)
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2

    def reach(line: np.ndarray) -> int | None:
        """Pixels from the start of `line` to the first edge pixel, or None if there is none."""
        off = np.nonzero(np.abs(line.astype(np.int16) - face) > edge)[0]
        return int(off[0]) if off.size else None

    # outward from the label's box, not from its middle: glyphs inside the box are not edges
    left = reach(grey[cy, max(0, x0 - int(MAX_PAD_X * th)):x0][::-1])
    right = reach(grey[cy, x1:min(w, x1 + int(MAX_PAD_X * th))])
    up = reach(grey[max(0, y0 - int(MAX_PAD_Y * th)):y0, cx][::-1])
    down = reach(grey[y1:min(h, y1 + int(MAX_PAD_Y * th)), cx])
    if None in (left, right, up, down):
        return None
    fx0, fx1, fy0, fy1 = x0 - left, x1 + right, y0 - up, y1 + down  # type: ignore[operator]
    pads = (left, right)
    if max(pads) > 0 and abs(pads[0] - pads[1]) > CENTRED * max(pads) + th / 2:  # type: ignore[operator]
        return None  # a label at one side of a wide box: a text field, a list row
    if not (_solid(grey, face, fy0 - 1, fx0, fx1, across=True, edge=edge)
            and _solid(grey, face, fy1, fx0, fx1, across=True, edge=edge)
            and _solid(grey, face, fx0 - 1, fy0, fy1, across=False, edge=edge)
            and _solid(grey, face, fx1, fy0, fy1, across=False, edge=edge)):
        return None
    if _runs_on(grey, face, (fx0, fy0, fx1, fy1), th):
        return None
    return fx0, fy0, fx1, fy1


def _solid(grey: np.ndarray, face: float, at: int, lo: int, hi: int, *, across: bool, edge: int = EDGE) -> bool:
    """The edge row (across) or column at `at` differs from the face along most of lo..hi.

    Rounded corners leave the ends of each side on the face colour, so only the middle 70 % counts.
    """
    import numpy as np

    h, w = grey.shape
    if not (0 <= at < (h if across else w)):
        return False
    trim = int((hi - lo) * 0.15)
    line = grey[at, lo + trim:hi - trim] if across else grey[lo + trim:hi - trim, at]
    return line.size > 0 and float(np.mean(np.abs(line.astype(np.int16) - face) > edge)) >= SOLID


def _runs_on(grey: np.ndarray, face: float, shape: Box, th: int) -> bool:
    """The top or bottom border of the shape runs straight on past its corners: a grid, not a button.

    A button's outline ends at its corners (rounded or square), with a gap before anything next to
    it; a table cell's border runs on without a break into the neighbouring cell.
    """
    import numpy as np

    h, w = grey.shape
    x0, y0, x1, y1 = shape
    run = max(4, th)
    for row, further in ((y0 - 1, y0 - 4), (y1, y1 + 3)):
        if not (0 <= row < h and 0 <= further < h):
            continue
        colour = float(np.median(grey[row, x0:x1]))
        if abs(float(np.median(grey[further, x0:x1])) - colour) <= EDGE / 2:
            continue  # not a thin line but the page around a filled shape: nothing can run on
        for beyond in (grey[row, x1:min(w, x1 + run)], grey[row, max(0, x0 - run):x0][::-1]):
            same = np.abs(beyond.astype(np.int16) - colour) <= EDGE / 2
            if same.size >= 4 and same[:4].all() and float(same.mean()) > CORNER:
                return True
    return False


def field_below(grey: np.ndarray, box: Box) -> bool:
    """An empty entry field sits just under the label in `box`: the evidence that makes a page a form.

    Its top edge runs level under the label's start for several label heights, and not on to the
    left of it (a rule or a band's edge across the window is no field), and the inside below that
    edge is one flat colour (nothing typed yet) or holds its own text further down.
    """
    import numpy as np

    h, w = grey.shape
    x0, y0, x1, y1 = box
    th = y1 - y0
    span = slice(x0 + 2, min(w, x0 + 2 + 6 * th))
    if th < 4 or span.stop - span.start < 4 * th:
        return False
    page = float(np.median(grey[y1:min(h, y1 + 2), x0:x1]))
    for row in range(y1 + 1, min(h - th, y1 + 2 * th)):
        differs = float(np.mean(np.abs(grey[row, span].astype(np.int16) - page) > EDGE / 2))
        if differs >= 0.95:
            if x0 >= th and abs(int(grey[row, x0 - th]) - page) > EDGE / 2:
                return False  # the edge runs on to the left: a rule or a band, not a field's top
            inside = grey[row + 3:row + 3 + th // 2, span.start + th:span.stop - th].astype(np.int16)
            if inside.size == 0 or int(inside.max()) - int(inside.min()) > EDGE / 2:
                return False
            return abs(float(np.median(inside)) - page) <= EDGE / 2 or _ends(grey, page, row, span, th)
        if differs > 0:
            return False  # other text comes first: the field below is that text's
    return False


def _ends(grey: np.ndarray, page: float, top: int, span: slice, th: int) -> bool:
    """A filled shape starting at row `top` under a label ends within an entry field's height: the page's
    colour comes back under it. The edge of a coloured band (a navigation bar) never does."""
    import numpy as np

    for row in range(top + 1, min(grey.shape[0], top + int(FIELD_HEIGHT[1] * th))):
        if float(np.mean(np.abs(grey[row, span].astype(np.int16) - page) <= EDGE / 2)) >= 0.95:
            return True
    return False


def field_beside(grey: np.ndarray, box: Box, edge: int = EDGE) -> Box | None:
    """The entry field on the right of the label in `box` (its outline), or None when there is none.

    A bordered box a little taller than the label and several times wider, starting a short way
    after it, whose left side stops at its corners: a table's column line runs on through the next
    rows. Its inside may hold typed text. The detector's box may reach over the field's left side
    when the field starts right after the label, so the search starts half a label height inside the
    box; strokes of letters (the label's own, or a word further along the row) are passed over, being
    shorter than any field. A drawn screen's flat colours let `edge` go down to FAINT, for dark themes
    whose fields are only a shade darker than the window (never on a photo, whose noise is that large).
    """
    import numpy as np

    h, w = grey.shape
    x0, y0, x1, y1 = box
    th = y1 - y0
    if th < 4 or x1 >= w:
        return None
    page = float(np.median(np.concatenate([grey[max(0, y0 - 1), x0:x1], grey[min(h - 1, y1), x0:x1]])))
    top0 = max(0, y0 - 4 * th)  # the field is near the label's row: only that band is looked at
    sx = max(x0, x1 - th // 2)
    differs = np.abs(grey[top0:min(h, y1 + 4 * th), sx:].astype(np.int16) - page) > edge
    cy = (y0 + y1) // 2 - top0
    need = math.ceil(FIELD_HEIGHT[0] * th)
    starts = np.nonzero(differs[cy, :int(FIELD_GAP * th + th // 2)])[0]
    tall = differs[max(0, cy - need):cy + need + 1, starts].sum(axis=0) >= need  # a quick first sieve
    for left in starts[tall]:
        top, bottom = cy, cy
        while top > 0 and differs[top - 1, left]:
            top -= 1
        while bottom < differs.shape[0] - 1 and differs[bottom + 1, left]:
            bottom += 1
        if bottom - top + 1 >= FIELD_HEIGHT[0] * th:
            break
    else:
        return None
    if bottom - top + 1 > FIELD_HEIGHT[1] * th:
        return None  # a column line running on through the rows: a table's
    width = max(_run_from(differs[row, left:]) for row in range(top, max(-1, top - 4), -1))
    if width - 1 < FIELD_WIDTH * th:
        return None
    fx0, fx1, top, bottom = sx + int(left), sx + int(left) + width - 1, top0 + top, top0 + bottom
    # a rounded corner ends the left side a row or two short of the bottom side, and the top side a
    # column or two short of the right side: each is looked for just beyond where the walk stopped
    # the bottom side may be drawn lighter than the others (a sunken field's lower bevel: Nimbus)
    if not (any(_solid(grey, page, bottom + k, fx0, fx1, across=True, edge=min(edge, EDGE // 2)) for k in range(3))
            and any(_solid(grey, page, fx1 + k, top, bottom, across=False, edge=edge) for k in range(3))):
        return None
    return fx0, top, fx1 + 1, bottom + 1


def _run_from(edge: np.ndarray) -> int:
    """How far a line drawn along `edge` reaches: from where it starts in the first few pixels (a
    rounded corner bends the top side up and in), to its first gap, counted from the start of `edge`."""
    import numpy as np

    starts = np.nonzero(edge[:ROUNDING])[0]
    if not starts.size:
        return 0
    gaps = np.nonzero(~edge[starts[0]:])[0]
    return int(starts[0] + (gaps[0] if gaps.size else edge.size - starts[0]))


def outlines_in(grey: np.ndarray, box: Box) -> list[Box]:
    """Two or more button outlines side by side inside one detected line, left to right; else [].

    Buttons packed a few pixels apart (xmessage, old toolkits) are found by the detector as one line
    "(Reload)(Keep mine)(Cancel)". Each outline is one thin closed ring as tall as the line: a
    connected shape much taller than the letters, wider than tall, and mostly hollow.
    """
    import cv2
    import numpy as np

    x0, y0, x1, y1 = box
    top = max(0, y0 - OUTLINE_PAD)
    region = grey[top:y1 + OUTLINE_PAD, x0:x1]
    if region.size == 0:
        return []
    ink = (np.abs(region.astype(np.int16) - float(np.median(region))) > EDGE).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)

    def ring(i: int) -> bool:
        sx, sy, sw, sh, area = stats[i]
        if sh < 0.7 * (y1 - y0) or sw < 1.5 * sh or area > 0.25 * sw * sh:
            return False
        # a closed outline runs along its top and bottom rows; letters joined by serifs do not
        edges = labels[sy, sx:sx + sw] == i, labels[sy + sh - 1, sx:sx + sw] == i
        return all(float(edge.mean()) >= 0.6 for edge in edges)

    rings = [(x0 + stats[i][0], top + stats[i][1], x0 + stats[i][0] + stats[i][2], top + stats[i][1] + stats[i][3])
             for i in range(1, count) if ring(i)]
    return sorted(rings) if len(rings) >= 2 else []


def mark_before(grey: np.ndarray, box: Box, edge: int = EDGE) -> str | None:
    """The check box or radio button drawn just before the label in `box` ("check box" or "radio
    button"), or None when there is none.

    The detector's box may or may not take the mark in, so the first shape from a little before the
    box is looked at: an outline (or a filled disc or square) about as tall as the letters and as wide
    as tall, set apart from the label by more than letters are from each other. The share of its box
    that its outline encloses tells a square (even with rounded corners) from a circle (pi / 4).
    Whether it is ticked is not said:
    themes draw that too differently to tell honestly. `edge` as for field_beside (FAINT for dark themes).
    """
    import cv2
    import numpy as np

    w = grey.shape[1]
    x0, y0, _, y1 = box
    th = y1 - y0
    if th < 8:
        return None
    lo, pad = max(0, x0 - int(1.5 * th)), max(3, int(0.15 * th + 1.5))  # the mark may stand higher, or be taller
    region = grey[max(0, y0 - pad):y1 + pad, lo:min(w, x0 + int(1.5 * th))]
    page = float(np.median(region))
    ink = (np.abs(region.astype(np.int16) - page) > edge).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    # what runs from the top of the region to its bottom is the edge of the window or of a panel (or the
    # desktop beyond it), never a mark: left out
    shapes = sorted((stats[i] for i in range(1, count) if stats[i][3] < ink.shape[0] - 1), key=lambda s: s[0])
    tall = [s for s in shapes if s[3] >= 0.4 * th]
    if not tall:
        return None
    sx, sy, sw, sh, _ = tall[0]
    if not (0.4 * th <= sh <= 1.3 * th and 0.8 <= sw / sh <= 1.25 and sx > 0 and sy > 0
            and sy + sh < region.shape[0]):  # a whole shape, not one cut off at the region's edge
        return None
    label = [s[0] for s in shapes if s[0] >= sx + sw]
    gap = (min(label) if label else ink.shape[1]) - (sx + sw)
    if not max(3, 0.2 * th) <= gap <= MARK_GAP * th or any(s[0] < sx for s in shapes):
        return None  # a letter close to the next one, a word ending before the next, or something before it
    outline = ink[sy:sy + sh, sx:sx + sw]
    sides = [float(side.mean()) for side in (outline[0], outline[-1], outline[:, 0], outline[:, -1])]
    if min(sides) < 0.3 and float(outline.mean()) < 0.6:
        return None  # neither a closed outline nor a filled disc or square: a letter such as e, O or C
    contours, _ = cv2.findContours(outline.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    area = max(cv2.contourArea(c) for c in contours) / max(1, (sw - 1) * (sh - 1))
    return "check box" if area >= SQUARE else "radio button"


def title_bar(grey: np.ndarray, box: Box) -> Box | None:
    """The window title bar the line in `box` is the title of (the bar's box), or None.

    A title bar is a band of one colour across the top of a window, a little taller than its title,
    with the title near its middle (window buttons may sit at its ends), closed by straight edges above
    and below along its whole width, and ending at both sides inside the screen: a window on a desktop,
    not a page-wide band. Whether other text shares the band is for the layout to see.
    """
    import numpy as np

    h = grey.shape[0]
    x0, y0, x1, y1 = box
    th = y1 - y0
    if th < 6 or y0 < 2 or y1 >= h - 2:
        return None
    band = float(np.median(np.concatenate([grey[y0 - 1, x0:x1], grey[y1, x0:x1]])))

    def off(row: int, lo: int = x0, hi: int = x1) -> float:
        return float(np.mean(np.abs(grey[row, lo:hi].astype(np.int16) - band) > EDGE / 2))

    reach = int(TITLE_PAD * th)
    top = next((r for r in range(y0 - 1, max(-1, y0 - reach), -1) if off(r) >= 0.9), None)
    bottom = next((r for r in range(y1, min(h, y1 + reach)) if off(r) >= 0.9), None)
    if top is None or bottom is None or top < 1 or not (y0 - 1 > top and bottom > y1):
        return None
    ends = []
    for row in (top + 1, bottom - 1):  # the band's first and last rows: clear of the title and window buttons
        line = np.abs(grey[row].astype(np.int16) - band) > EDGE / 2
        left, right = np.nonzero(line[:x0])[0], np.nonzero(line[x1:])[0]
        if not left.size or not right.size:
            return None  # the band runs to the screen's edge: a page's band, not a window's bar
        ends.append((int(left[-1]) + 1, x1 + int(right[0])))
    bx0, bx1 = max(e[0] for e in ends), min(e[1] for e in ends)
    width = bx1 - bx0
    if width < max(TITLE_WIDTH * th, 3 * (x1 - x0)) or abs((x0 - bx0) - (bx1 - x1)) > 0.25 * width:
        return None  # too short for a window, or the line is not near its middle
    if off(top, bx0, bx1) < 0.9 or off(bottom, bx0, bx1) < 0.9:
        return None  # not closed along its whole width
    return bx0, top + 1, bx1, bottom


def drop_down(grey: np.ndarray, entry: Box) -> bool:
    """The entry field `entry` is a drop-down: a small arrow (a triangle or a chevron, wider than tall)
    drawn alone at its right end, with empty space before it."""
    import cv2
    import numpy as np

    x0, y0, x1, y1 = entry
    fh = y1 - y0
    if fh < 8 or x1 - x0 < 3 * fh:
        return False
    end = grey[y0 + 2:y1 - 2, x1 - int(1.6 * fh):x1 - 2].astype(np.int16)
    ink = (np.abs(end - int(np.median(end))) > EDGE).astype(np.uint8)
    ink[:, -2:] = 0  # the field's own right side
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    # left out: what runs top to bottom (the side of the arrow's own button: Metal, Nimbus) and lines
    # a pixel thin (a bevel's piece of border)
    tall = 0.7 * end.shape[0]
    marks = [s for s in stats[1:count] if s[4] >= 4 and s[3] < tall and min(s[2], s[3]) > 1]
    if len(marks) == 2:  # an up and a down chevron stacked (Qt Quick's Basic style, macOS pop-up buttons)
        (ax, _, aw, _, _), (bx, _, bw, _, _) = marks
        return abs(ax - bx) <= 2 and abs(aw - bw) <= 2 and all(_arrow(m, fh) for m in marks)
    return len(marks) == 1 and _arrow(marks[0], fh)


def _arrow(stats: np.ndarray, fh: int) -> bool:
    """A connected shape (cv2 stats) is a small arrow head for a field `fh` high: wider than tall, partly filled."""
    sx, _, sw, sh, area = stats
    fill = area / max(1, sw * sh)
    return 0.15 * fh <= sh <= 0.6 * fh and 1.0 <= sw / sh <= 2.6 and 0.2 <= fill <= 0.75 and sx >= 0.4 * fh

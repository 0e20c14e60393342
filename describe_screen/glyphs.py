"""Letters the recogniser confuses in old bitmap fonts, told apart by their pixels.

X bitmap fonts (xmessage's bold 6x13, for one) draw text without anti-aliasing in cells so narrow
that a bold m keeps its middle stroke only under its top, and a bold w only over its bottom. The
recogniser reads them as n and u with full confidence ("docunent", "windou") at every scale, filter,
stroke thinning and padding tried. The pixels still tell them apart: just under the top of an m the
middle column is ink, where an n is open (in regular and bold bitmap fonts alike); w and u likewise
just over their bottom. So each n or u read on such a line is looked at once more, in its glyph.

Czech and Slovak ť is drawn by DejaVu Sans and Liberation Sans as a t with an apostrophe-like stroke after its
stem, and the recogniser mostly reads it as a plain t (ť scores 0.05 against t's 0.92 in its output); ď ľ Ľ,
drawn alike beside a tall stem, are read as a plain d l L at times ("dábelské", "lúbi"). The stroke is in the
pixels, so each t d l L of a Czech or Slovak line is looked at once more too (carons).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ALIASED = 0.97  # share of pixels in a crop's two commonest grey levels: text drawn without anti-aliasing
SQUARE = 1.2  # widest glyph, for its height, taken for one letter (m and w are about square)
DOUBLES = {"n": "m", "u": "w"}  # read as the key, drawn as the value when its middle stroke is there
STROKE_GAP = 3  # px: the caron stroke of a ť ď ľ starts within this of its stem (an accent on the next letter further)
NEAR = 0.6  # x-heights: the recogniser places a t d l (read) this near its stem at most (3.4 px of 7 measured)
QUOTES = frozenset("'’‘“”\"`")  # read after a t d l L: the stroke there is the quote mark, and scripts.carons judges it
TALL = frozenset("dlL")  # their stem rises to the ascender, and the caron's stroke starts at its top


def aliased(grey: np.ndarray) -> bool:
    """The crop holds two colours only (ink and paper): a bitmap font, not anti-aliased text."""
    import numpy as np

    counts = np.sort(np.bincount(grey.ravel(), minlength=256))
    return bool(counts[-2] > 0 and counts[-2:].sum() >= ALIASED * grey.size)


def ink(grey: np.ndarray) -> np.ndarray:
    """Where the crop is inked: nearer its second commonest grey level (the text's) than its commonest (paper)."""
    import numpy as np

    counts = np.bincount(grey.ravel(), minlength=256)
    paper, text = np.argsort(counts)[::-1][:2]
    return np.abs(grey.astype(np.int16) - int(paper)) > abs(int(text) - int(paper)) / 2


def doubled(grey: np.ndarray, text: str, xs: list[float]) -> str:
    """`text` with each n drawn as an m, and each u drawn as a w, corrected.

    `grey` is the line's crop (two colours, see aliased), `xs` the x of each non-space character in
    it, as the recogniser placed them. Each n or u is matched to the glyph nearest its x; a glyph
    without the letter's two open legs (n) or arms (u) means the match is off, and the letter stays.
    """
    import cv2
    import numpy as np

    if not any(c in DOUBLES for c in text):
        return text
    mask = ink(grey).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    # one letter each: glyphs that touch their neighbours (or a frame) are wider than tall, and left alone
    glyphs = [j for j in range(1, n) if stats[j, 3] < grey.shape[0] and stats[j, 2] <= SQUARE * stats[j, 3]]
    if not glyphs:
        return text
    letters = [c for c in text if not c.isspace()]
    out = list(text)
    spots = [i for i, c in enumerate(text) if not c.isspace()]
    for i, letter, x in zip(spots, letters, xs, strict=False):
        if letter not in DOUBLES:
            continue
        j = min(glyphs, key=lambda g: abs(stats[g, 0] + stats[g, 2] / 2 - x))
        gx, gy, gw, gh = stats[j, :4]
        if abs(gx + gw / 2 - x) > gw / 2:
            continue  # no glyph of its own where the letter was read
        glyph = labels[gy:gy + gh, gx:gx + gw] == j
        # n: open legs at the bottom, the stroke in question just under the top; u: upside down
        ends, near = (glyph[-1], glyph[1]) if letter == "n" else (glyph[0], glyph[-2])
        middle = slice((gw - 1) // 2, gw // 2 + 1)
        if gh >= 4 and ends[0] and ends[-1] and not ends[middle].any() and near[middle].all():
            out[i] = DOUBLES[letter]
    return "".join(out)


def carons(grey: np.ndarray, text: str, xs: list[float]) -> str:
    """`text` with each t, d, l and L that is drawn as ť, ď, ľ, Ľ (its caron an apostrophe-like stroke after the
    stem) corrected.

    `grey` is the line's crop (anti-aliased or not), `xs` the x of each non-space character in it, as the
    recogniser placed them. The stroke is a mark above the x-height starting within STROKE_GAP of the letter's
    stem, over no letter (a tall letter's stem, or the body of the next letter whose accent or caron it is, as in
    tí tř dá lú, has ink halfway down the x-height below it). After a t it reaches down to just above the
    crossbar; after the tall stem of d l L it starts at the stem's top, where a t's stroke rises above its stem.
    A plain letter has no such mark; a quote mark after one is read as one, and left to scripts.carons (drawn
    alike, they are told apart by the reading only). Measured in DejaVu Sans and Liberation Sans at 12-24 px (ť)
    and 13-20 px (ď ľ Ľ), regular and bold, dark on light and light on dark: no plain letter given a caron.
    """
    import cv2
    import numpy as np

    from describe_screen.scripts import CARONS

    spots = [i for i, c in enumerate(text) if not c.isspace()]
    letters = [(i, x) for i, x in zip(spots, xs, strict=False)
               if text[i] in CARONS and text[i + 1:i + 2] not in QUOTES]
    mask = ink(grey)
    rows = mask.sum(axis=1)
    if not letters or not rows.any():
        return text
    dense = np.flatnonzero(rows >= rows.max() / 2)  # the x-height band: most letters have ink there
    top, base = int(dense[0]), int(dense[-1])
    if top < 3 or base - top < 4:
        return text
    middle = (top + base) // 2
    # stems from above the x-height down through it: t, and the tall letters (l, h, k, b, d, f)
    columns = np.flatnonzero(mask[top - 1:(middle + base) // 2 + 1].all(axis=0))
    stems = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if columns.size else []
    if not stems:
        return text
    nearest = {i: min(range(len(stems)), key=lambda s: abs(stems[s].mean() - x)) for i, x in letters}
    out = list(text)
    for i, x in letters:
        stem = stems[nearest[i]]
        if abs(stem.mean() - x) > NEAR * (base - top + 1) or list(nearest.values()).count(nearest[i]) > 1:
            continue  # no stem of its own where the letter was read
        # the marks above the x-height right of the stem; the stroke is the one nearest to it
        after = slice(int(stem[-1]) + 1, int(stem[-1]) + 2 * (base - top + 1))
        marks = cv2.connectedComponents(mask[:top - 1, after].astype(np.uint8), connectivity=8)[1]
        ys, cols = np.nonzero(marks)
        if not cols.size or cols.min() >= STROKE_GAP:
            continue
        ys, cols = np.nonzero(marks == marks[ys[cols.argmin()], cols.min()])
        if text[i] in TALL and nearest[i] + 1 < len(stems):  # ďk: the stroke touches the next letter's stem
            own = cols < stems[nearest[i] + 1][0] - after.start
            ys, cols = ys[own], cols[own]
            if not cols.size:
                continue
        over_letter = mask[middle, after][np.unique(cols)].any()  # a tall letter's stem, or the next letter's accent
        stem_top = int(np.flatnonzero(mask[:, stem].any(axis=1))[0])
        placed = ys.min() <= stem_top + 1 if text[i] in TALL else ys.max() >= top - 2 - (base - top) // 10
        if not over_letter and placed:
            out[i] = CARONS[text[i]]
    return "".join(out)

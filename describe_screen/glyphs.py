"""Letters the recogniser confuses in old bitmap fonts, told apart by their pixels.

X bitmap fonts (xmessage's bold 6x13, for one) draw text without anti-aliasing in cells so narrow
that a bold m keeps its middle stroke only under its top, and a bold w only over its bottom. The
recogniser reads them as n and u with full confidence ("docunent", "windou") at every scale, filter,
stroke thinning and padding tried. The pixels still tell them apart: just under the top of an m the
middle column is ink, where an n is open (in regular and bold bitmap fonts alike); w and u likewise
just over their bottom. So each n or u read on such a line is looked at once more, in its glyph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ALIASED = 0.97  # share of pixels in a crop's two commonest grey levels: text drawn without anti-aliasing
SQUARE = 1.2  # widest glyph, for its height, taken for one letter (m and w are about square)
DOUBLES = {"n": "m", "u": "w"}  # read as the key, drawn as the value when its middle stroke is there


def aliased(grey: np.ndarray) -> bool:
    """The crop holds two colours only (ink and paper): a bitmap font, not anti-aliased text."""
    import numpy as np

    counts = np.sort(np.bincount(grey.ravel(), minlength=256))
    return bool(counts[-2] > 0 and counts[-2:].sum() >= ALIASED * grey.size)


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
    counts = np.bincount(grey.ravel(), minlength=256)
    paper, ink = np.argsort(counts)[::-1][:2]
    mask = (np.abs(grey.astype(np.int16) - int(paper)) > abs(int(ink) - int(paper)) / 2).astype(np.uint8)
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

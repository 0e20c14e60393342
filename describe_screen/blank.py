"""The honest blank-screen check: say "the screen is blank" only when it truly is one colour.

A screen curtain, a sleeping monitor or a capture of a locked session gives a uniform image; OCR and
vision models would then invent text or describe nothing useful. A single line of small text on a dark
screen is not blank, so the check counts every differing pixel at full resolution before saying blank;
a downscaled copy is only used to return quickly when content is obvious.
"""

from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING

from describe_screen.i18n import N_, _

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

TOLERANCE = 24  # per-channel difference from the dominant colour still counted as "the same colour"
MAX_OUTLIERS = 8  # differing pixels allowed on a blank screen (a stuck pixel, a stray cursor dot)
STRIDE = 4  # the quick look samples every 4th pixel in each direction


def describe_blank(image: Image.Image) -> str | None:
    """"The screen is blank: solid black." for a uniform image; None when anything is drawn on it."""
    import numpy as np

    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    if pixels.size == 0:
        return _("The screen is blank: the capture is empty.")
    sample = pixels[::STRIDE, ::STRIDE]
    colour = np.median(sample.reshape(-1, 3), axis=0).astype(np.int16)
    low = np.clip(colour - TOLERANCE, 0, 255).astype(np.uint8)
    high = np.clip(colour + TOLERANCE, 0, 255).astype(np.uint8)
    if _outliers(sample, low, high) > MAX_OUTLIERS:
        return None
    if _outliers(pixels, low, high) > MAX_OUTLIERS:
        return None
    return _("The screen is blank: solid {colour}.", colour=_(colour_name(tuple(int(c) for c in colour))))


# colour_name's words, each translated whole ("dark blue": "dunkelblau", "bleu foncé")
COLOURS = (N_("black"), N_("white"), N_("light grey"), N_("grey"), N_("dark grey"), N_("brown"),
           N_("red"), N_("dark red"), N_("light red"), N_("orange"), N_("dark orange"), N_("light orange"),
           N_("yellow"), N_("dark yellow"), N_("light yellow"), N_("green"), N_("dark green"), N_("light green"),
           N_("cyan"), N_("dark cyan"), N_("light cyan"), N_("blue"), N_("dark blue"), N_("light blue"),
           N_("purple"), N_("dark purple"), N_("light purple"), N_("pink"), N_("dark pink"), N_("light pink"))


def _outliers(pixels: np.ndarray, low: np.ndarray, high: np.ndarray) -> int:
    """How many pixels differ from the dominant colour by more than the tolerance in any channel."""
    import numpy as np

    off = (pixels < low) | (pixels > high)
    return int(np.count_nonzero(off[..., 0] | off[..., 1] | off[..., 2]))


def colour_name(rgb: tuple[int, ...]) -> str:
    """Plain words for a colour: "black", "dark grey", "light blue", "orange"."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb[:3]))
    if v < 0.12:
        return "black"
    if s < 0.15 or v < 0.2:
        if v > 0.92:
            return "white"
        return "light grey" if v > 0.7 else "grey" if v > 0.4 else "dark grey"
    hue = h * 360
    names = ((15, "red"), (40, "orange"), (70, "yellow"), (160, "green"), (190, "cyan"), (255, "blue"),
             (320, "purple"), (345, "pink"), (361, "red"))
    name = next(n for limit, n in names if hue < limit)
    if name == "orange" and v < 0.6:
        return "brown"
    if name == "red" and s < 0.45 and v > 0.8:
        return "pink"
    if v < 0.55:
        return f"dark {name}"
    if s < 0.45 and v > 0.8:
        return f"light {name}"
    return name

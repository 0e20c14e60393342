"""Drawn evidence (shapes.py) on small screens drawn here: what is, and what only looks like, a title bar."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from describe_screen import shapes

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def _screen(bar: tuple[int, int, int, int], title_at: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A grey screen with a band `bar` (x0, y0, x1, y1) holding a title; (the screen, the title's box)."""
    image = Image.new("L", (800, 500), 90)
    draw = ImageDraw.Draw(image)
    draw.rectangle((bar[0], bar[3], bar[2], bar[3] + 300), fill=240)  # the window's body under the band
    draw.rectangle(bar, fill=215)
    font = ImageFont.truetype(FONT, 14)
    box = draw.textbbox(title_at, "Save changes", font=font, anchor="mm")
    draw.text(title_at, "Save changes", fill=30, font=font, anchor="mm")
    return np.asarray(image), (box[0] - 2, box[1] - 3, box[2] + 2, box[3] + 3)


def test_a_band_across_a_window_with_its_title_in_the_middle_is_a_title_bar() -> None:
    grey, box = _screen((200, 100, 600, 132), (400, 116))
    assert shapes.title_bar(grey, box) == (200, 100, 601, 133)


def test_a_band_across_the_whole_screen_is_no_title_bar() -> None:
    grey, box = _screen((0, 100, 799, 132), (400, 116))  # a page's coloured band, edge to edge
    assert shapes.title_bar(grey, box) is None


def test_a_title_at_one_end_of_a_band_or_a_band_too_short_is_no_title_bar() -> None:
    grey, box = _screen((200, 100, 600, 132), (270, 116))  # a heading at the left of a band
    assert shapes.title_bar(grey, box) is None
    grey, box = _screen((340, 100, 460, 132), (400, 116))  # a filled label, a button
    assert shapes.title_bar(grey, box) is None
